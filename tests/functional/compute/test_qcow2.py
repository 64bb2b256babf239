"""The qcow2 backend on real libvirt/QEMU, with Nova-like instances.

Data is written at known offsets and checked byte for byte with qemu-io:
what was on the disks at the snapshot is what the store holds and what a
restore brings back; what the guest wrote after the snapshot is in Nova's
files until the restore, and gone after it. After every operation the
domain looks exactly as Nova left it: disks on Nova's paths, the chain
``disk -> _base/<name>``, no libvirt snapshot or checkpoint metadata.
"""

import json
import logging
import os
import pwd

import libvirt
import pytest

from snapmanager_nova import exception
from snapmanager_nova.compute.backends import crashpoints
from snapmanager_nova.compute.backends import overlay
from tests.functional.compute import nova_like

pytestmark = pytest.mark.functional

# What each Nova disk of a Nova-like instance holds (see nova_like).
DATA = {"disk": 0xAB, "disk.local": 0xBA}
LATER = 0xCD


def base_pattern(name):
    return (
        nova_like.BASE_PATTERN
        if name == "disk"
        else nova_like.EPHEMERAL_PATTERN
    )


def assert_nova_layout(inst):
    """The domain and its files are exactly as Nova made them."""
    assert inst.sources() == inst.nova_sources()
    assert inst.sources(libvirt.VIR_DOMAIN_XML_INACTIVE) == inst.nova_sources()
    assert inst.own_files() == []
    assert inst.dom.snapshotNum(0) == 0
    assert inst.dom.listAllCheckpoints(0) == []
    for name in inst.disk_names:
        chain = nova_like.backing_chain(inst.path(name), inst.fmt)
        if inst.fmt == "raw":
            assert chain == [(inst.path(name), "raw")]
        else:
            assert chain == [
                (inst.path(name), "qcow2"),
                (inst.bases[name], "raw"),
            ]


def assert_store_clean(nova_host, inst):
    """No partial copy left of the instance's snapshots."""
    directory = os.path.join(nova_host["store"], inst.uuid)
    if os.path.isdir(directory):
        assert [n for n in os.listdir(directory) if "partial" in n] == []


def write(inst, name, command, running):
    if running:
        inst.hmp_io(name, command)
    else:
        nova_like.qemu_io(inst.path(name), inst.fmt, command)


ROUND_TRIPS = [
    ("external", True, ("disk",), "qcow2"),
    ("external", True, ("disk", "disk.local"), "qcow2"),
    ("external", False, ("disk",), "qcow2"),
    ("external", False, ("disk", "disk.local"), "qcow2"),
    ("backup", True, ("disk",), "qcow2"),
    ("backup", True, ("disk", "disk.local"), "qcow2"),
    # Nova with use_cow_images=False: flat raw disks, no base.
    ("external", True, ("disk", "disk.local"), "raw"),
    ("external", False, ("disk",), "raw"),
    ("backup", True, ("disk",), "raw"),
    # The first snapshot of a chain: a full copy, as in backup mode; a
    # flat raw disk has no bitmaps and gets a backup.
    ("incremental", True, ("disk", "disk.local"), "qcow2"),
    ("incremental", True, ("disk",), "raw"),
]


@pytest.mark.parametrize(
    "mode,running,disk_names,fmt",
    ROUND_TRIPS,
    ids=[
        f"{mode}-{'running' if running else 'shutoff'}-{len(names)}{fmt}"
        for mode, running, names, fmt in ROUND_TRIPS
    ],
)
def test_snapshot_and_restore_round_trip(
    backend, make_instance, file_mode, mode, running, disk_names, fmt
):
    file_mode(mode)
    inst = make_instance(disk_names=disk_names, running=running, fmt=fmt)
    for name in disk_names:
        # Zeros over the base's data: a copy must not let the base show
        # through where the guest wrote zeros.
        write(inst, name, "write -z 2M 64k", running)

    result = backend.snapshot(inst.describe(), inst.dom, 1, "prefer")

    assert_nova_layout(inst)
    assert inst.dom.isActive() == running
    assert result.quiesced is False
    if running and mode == "external":
        assert 0 < result.pause_seconds < 10
    else:
        assert result.pause_seconds == 0.0
    assert json.loads(json.dumps(result.disks)) == result.disks
    assert [d["name"] for d in result.disks] == list(disk_names)
    assert result.size_bytes == sum(d["allocated_bytes"] for d in result.disks)
    assert backend.list_indexes(inst.uuid) == [1]

    for disk in result.disks:
        name = disk["name"]
        assert disk["target"] == inst.target(name)
        assert disk["virtual_size"] == nova_like.DISK_SIZE
        stored, stored_format = disk["path"], disk["stored_format"]
        assert disk["format"] == fmt
        # The store holds exactly the snapshotted bytes...
        assert nova_like.has_pattern(
            stored, stored_format, DATA[name], "64k", "64k"
        )
        assert nova_like.has_pattern(stored, stored_format, 0, "2M", "64k")
        assert nova_like.has_pattern(
            stored, stored_format, base_pattern(name), "1M", "64k"
        )
        # ...and does not depend on Nova's _base file.
        # The agent's, private, whoever wrote it (QEMU, for a backup).
        info = os.stat(stored)
        assert (info.st_uid, info.st_mode & 0o777) == (os.geteuid(), 0o600)
        chain = nova_like.backing_chain(stored, stored_format)
        if disk["layout"] == "delta":
            assert chain == [
                (stored, "qcow2"),
                (disk["backing"]["stored_path"], "raw"),
            ]
        else:
            assert chain == [(stored, stored_format)]

    # The guest goes on writing: into Nova's files.
    for name in disk_names:
        write(inst, name, f"write -P {LATER} 1M 64k", running)
    if running:
        inst.dom.destroy()
    for name in disk_names:
        assert nova_like.has_pattern(inst.path(name), fmt, LATER, "1M", "64k")

    backend.restore(inst.describe(), inst.dom, 1, result.disks)

    assert_nova_layout(inst)
    for name in disk_names:
        path = inst.path(name)
        assert nova_like.has_pattern(path, fmt, DATA[name], "64k", "64k")
        assert nova_like.has_pattern(path, fmt, 0, "2M", "64k")
        # The later write is gone: what was there before is back.
        assert nova_like.has_pattern(
            path, fmt, base_pattern(name), "1M", "64k"
        )
    # Nova's next start boots the restored data.
    inst.dom.create()
    for name in disk_names:
        inst.hmp_io(name, f"read -P {DATA[name]} 64k 64k")
    assert backend.list_indexes(inst.uuid) == [1]
    nova_like.undefine_as_nova(inst.dom)


def test_restore_puts_back_a_base_nova_deleted(backend, make_instance):
    inst = make_instance()
    base = inst.bases["disk"]
    checksum = nova_like.sha256(base)
    result = backend.snapshot(inst.describe(), inst.dom, 1, "prefer")
    inst.dom.destroy()
    # Nova's image cache removes bases no instance uses any more.
    os.unlink(base)

    backend.restore(inst.describe(), inst.dom, 1, result.disks)

    assert nova_like.sha256(base) == checksum
    assert oct(os.stat(base).st_mode & 0o777) == oct(0o644)
    assert_nova_layout(inst)
    assert nova_like.has_pattern(inst.path(), "qcow2", 0xAB, "64k", "64k")


def test_restore_keeps_owner_and_permissions(backend, make_instance):
    inst = make_instance(running=False)
    os.chown(inst.path(), 4242, 4343)
    os.chmod(inst.path(), 0o640)
    result = backend.snapshot(inst.describe(), inst.dom, 1, "prefer")

    backend.restore(inst.describe(), inst.dom, 1, result.disks)

    info = os.stat(inst.path())
    assert (info.st_uid, info.st_gid) == (4242, 4343)
    assert info.st_mode & 0o777 == 0o640


def test_restore_refuses_a_running_domain(backend, make_instance):
    inst = make_instance()
    result = backend.snapshot(inst.describe(), inst.dom, 1, "prefer")
    with pytest.raises(exception.InstanceNotShutOff):
        backend.restore(inst.describe(), inst.dom, 1, result.disks)


def test_delete_frees_space_and_drops_the_unused_base(
    backend, make_instance, nova_host, file_mode
):
    # Snapshots that are not a chain (see test_qcow2_chain for those).
    file_mode("backup")
    inst = make_instance()
    first = backend.snapshot(inst.describe(), inst.dom, 1, "prefer")
    backend.snapshot(inst.describe(), inst.dom, 2, "prefer")
    stored_base = first.disks[0]["backing"]["stored_path"]
    assert os.path.exists(stored_base)
    assert backend.list_indexes(inst.uuid) == [1, 2]

    assert backend.delete(inst.uuid, 1, first.disks) >= first.size_bytes
    assert backend.list_indexes(inst.uuid) == [2]
    assert os.path.exists(stored_base)  # snapshot 2 still uses it
    assert backend.delete(inst.uuid, 1, first.disks) == 0  # idempotent

    freed = backend.delete(inst.uuid, 2, [])
    assert freed >= 4 * nova_like.MiB  # the base copy's data went too
    assert not os.path.exists(stored_base)
    assert not os.path.exists(os.path.join(nova_host["store"], inst.uuid))
    assert backend.list_indexes(inst.uuid) == []
    assert_nova_layout(inst)


def test_restore_of_a_missing_snapshot_fails(backend, make_instance):
    inst = make_instance(running=False)
    with pytest.raises(exception.StoredSnapshotNotFound):
        backend.restore(inst.describe(), inst.dom, 9, [])
    assert_nova_layout(inst)


# -- Quiesce ------------------------------------------------------------

QUIESCE_CASES = [
    # (agent channel in the XML, libvirt's error code, snapshot mode)
    (False, 74, "external"),
    (True, 86, "external"),
    (False, 74, "backup"),
    (True, 86, "backup"),
]


@pytest.mark.parametrize(
    "channel,code,mode",
    QUIESCE_CASES,
    ids=[f"{mode}-{code}" for _channel, code, mode in QUIESCE_CASES],
)
def test_quiesce_policies_when_the_guest_cannot_freeze(
    backend, make_instance, file_mode, nova_host, channel, code, mode
):
    file_mode(mode)
    inst = make_instance(agent_channel=channel)
    if channel:
        # Fail fast when libvirt does wait for the (missing) agent.
        inst.dom.agentSetResponseTimeout(1, 0)
    assert inst.describe().has_agent_channel == channel

    with pytest.raises(exception.QuiesceFailed) as raised:
        backend.snapshot(inst.describe(), inst.dom, 1, "require")
    assert raised.value.kwargs["origin_code"] == code
    assert f"error {code}" in str(raised.value)
    assert backend.list_indexes(inst.uuid) == []
    assert_store_clean(nova_host, inst)
    assert_nova_layout(inst)

    result = backend.snapshot(inst.describe(), inst.dom, 2, "prefer")
    assert result.quiesced is False
    assert backend.list_indexes(inst.uuid) == [2]

    skipped = backend.snapshot(inst.describe(), inst.dom, 3, "skip")
    assert skipped.quiesced is False
    assert_nova_layout(inst)
    nova_like.undefine_as_nova(inst.dom)


# -- Nova redefines the domain during an external snapshot ---------------


def _nova_redefines(inst, nova_xml, start):
    """Nova's hard reboot (start) or stop-and-redefine; the guest then
    writes into Nova's disk, which is its active layer again."""
    nova_like.redefine_as_nova(inst, nova_xml, start=start)
    if start:
        inst.hmp_io("disk", f"write -P {LATER} 1M 64k")


@pytest.mark.parametrize("start", [True, False], ids=["reboot", "stop"])
def test_external_snapshot_leaves_nova_disk_alone_after_redefinition(
    backend, make_instance, file_mode, nova_host, monkeypatch, start
):
    file_mode("external")
    inst = make_instance()
    base = inst.bases["disk"]
    checksum = nova_like.sha256(base)
    nova_xml = inst.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)

    def during_copy(step):
        if step == "overlay-created":
            _nova_redefines(inst, nova_xml, start)

    monkeypatch.setattr(crashpoints, "reached", during_copy)

    with pytest.raises(exception.DisksChanged):
        backend.snapshot(inst.describe(), inst.dom, 1, "prefer")

    # Nova's disk was not merged into the base the instances share, and
    # the overlay Nova dropped is gone with nothing committed from it.
    assert nova_like.sha256(base) == checksum
    assert inst.dom.isActive() == start
    assert_nova_layout(inst)
    assert backend.list_indexes(inst.uuid) == []
    assert_store_clean(nova_host, inst)
    if start:
        inst.hmp_io("disk", f"read -P {LATER} 1M 64k")
        inst.dom.destroy()
        assert nova_like.has_pattern(inst.path(), "qcow2", LATER, "1M", "64k")
    assert nova_like.has_pattern(inst.path(), "qcow2", 0xAB, "64k", "64k")
    assert actions_of_recovery(backend, inst) == []
    nova_like.undefine_as_nova(inst.dom)


def test_external_snapshot_of_a_guest_that_powers_off_during_the_copy(
    backend, make_instance, file_mode, nova_host, monkeypatch
):
    """No redefinition: the definition still names the overlay, whose
    writes are merged offline, and the snapshot counts."""
    file_mode("external")
    inst = make_instance()
    checksum = nova_like.sha256(inst.bases["disk"])

    def during_copy(step):
        if step == "overlay-created":
            inst.hmp_io("disk", f"write -P {LATER} 1M 64k")
            inst.dom.destroy()

    monkeypatch.setattr(crashpoints, "reached", during_copy)

    result = backend.snapshot(inst.describe(), inst.dom, 1, "prefer")

    assert backend.list_indexes(inst.uuid) == [1]
    assert nova_like.sha256(inst.bases["disk"]) == checksum
    assert not inst.dom.isActive()
    assert_nova_layout(inst)
    # The write made into the overlay is in Nova's disk, not the copy.
    assert nova_like.has_pattern(inst.path(), "qcow2", LATER, "1M", "64k")
    stored = result.disks[0]["path"]
    assert nova_like.has_pattern(
        stored, "qcow2", nova_like.BASE_PATTERN, "1M", "64k"
    )
    assert_store_clean(nova_host, inst)
    nova_like.undefine_as_nova(inst.dom)


def test_backup_of_a_guest_nova_destroys_during_the_job(
    backend, make_instance, file_mode, nova_host, monkeypatch, caplog
):
    """A hard reboot or a stop while the backup job runs: QEMU ends the
    job with it. The snapshot fails and leaves nothing, Nova's files are
    untouched, and the job gone with its domain is no error of ours."""
    file_mode("backup")
    inst = make_instance()
    checksum = nova_like.sha256(inst.bases["disk"])

    def while_the_job_runs(step):
        if step == "backup-started":
            inst.dom.destroy()

    monkeypatch.setattr(crashpoints, "reached", while_the_job_runs)

    with caplog.at_level(logging.DEBUG, logger="snapmanager_nova"):
        with pytest.raises(exception.SnapmanagerException):
            backend.snapshot(inst.describe(), inst.dom, 1, "prefer")

    assert backend.list_indexes(inst.uuid) == []
    assert nova_like.sha256(inst.bases["disk"]) == checksum
    assert_nova_layout(inst)
    assert_store_clean(nova_host, inst)
    assert [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.ERROR
    ] == []
    nova_like.undefine_as_nova(inst.dom)


def test_external_snapshot_commit_races_a_redefinition(
    backend, make_instance, file_mode, nova_host, monkeypatch
):
    """Nova redefines the domain after the agent last read its XML and
    before the commit starts: libvirt must refuse the commit."""
    file_mode("external")
    inst = make_instance()
    base = inst.bases["disk"]
    checksum = nova_like.sha256(base)
    nova_xml = inst.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    start_commit = overlay.start_commit
    raced = []

    def racing(*args, **kwargs):
        if not raced:
            raced.append(True)
            _nova_redefines(inst, nova_xml, True)
        return start_commit(*args, **kwargs)

    monkeypatch.setattr(overlay, "start_commit", racing)

    with pytest.raises(exception.DisksChanged):
        backend.snapshot(inst.describe(), inst.dom, 1, "prefer")

    assert raced
    assert nova_like.sha256(base) == checksum
    assert inst.dom.isActive()
    assert_nova_layout(inst)
    assert backend.list_indexes(inst.uuid) == []
    assert_store_clean(nova_host, inst)
    inst.hmp_io("disk", f"read -P {LATER} 1M 64k")
    assert actions_of_recovery(backend, inst) == []
    nova_like.undefine_as_nova(inst.dom)


def actions_of_recovery(backend, inst):
    return [
        a
        for a in backend.recover([inst.describe()])
        if a.instance_uuid == inst.uuid
    ]


def qemu_uid(domain_name):
    """The real uid of the QEMU process running ``domain_name``."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/status", encoding="utf-8") as f:
                status = f.read()
        except OSError:
            continue
        if f"guest={domain_name},".encode() in b" ".join(argv):
            return int(status.split("\nUid:")[1].split()[0])
    raise AssertionError(f"no QEMU process for {domain_name}")


def test_qemu_runs_as_the_configured_user(make_instance, nova_host):
    """On libvirt-production QEMU is libvirt-qemu and libvirt hands it
    the disk it uses, as on a compute host."""
    inst = make_instance()
    user = pwd.getpwnam(nova_host["qemu_user"])
    assert qemu_uid(inst.name) == user.pw_uid
    assert os.stat(inst.path()).st_uid == user.pw_uid
    inst.dom.destroy()
    # Dynamic ownership gives the file back to its owner (the test's).
    assert os.stat(inst.path()).st_uid == os.geteuid()
    nova_like.undefine_as_nova(inst.dom)
