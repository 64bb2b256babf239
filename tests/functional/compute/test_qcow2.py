"""The qcow2 backend on real libvirt/QEMU, with Nova-like instances.

Data is written at known offsets and checked byte for byte with qemu-io:
what was on the disks at the snapshot is what the store holds and what a
restore brings back; what the guest wrote after the snapshot is in Nova's
files until the restore, and gone after it. After every operation the
domain looks exactly as Nova left it: disks on Nova's paths, the chain
``disk -> _base/<name>``, no libvirt snapshot or checkpoint metadata.
"""

import json
import os

import libvirt
import pytest

from snapmanager_nova import exception
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
    backend, make_instance, nova_host
):
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
