"""The ``incremental`` file mode on real libvirt/QEMU: chains of snapshots.

Each snapshot after the first stores only the clusters the guest wrote
since the previous one, over the previous stored file; every snapshot
still reads, and restores, exactly as the disk was at its instant.
Deleting one in the middle (or the oldest) merges it into its child.
Change tracking lost (QEMU killed, the disk replaced by a restore) makes
the next snapshot a full one that says why. After every step the domain
carries no checkpoint metadata (Nova's undefine works) and Nova's disk
no inconsistent bitmap (Nova's ``qemu-img resize`` works).
"""

import json
import os
import signal
import time

import libvirt
import pytest

from snapmanager_nova.compute import events
from snapmanager_nova.compute import manager as compute_manager
from snapmanager_nova.compute.backends import checkpoints
from tests.fixtures.services import wait_until
from tests.functional.compute import nova_like
from tests.functional.compute import test_qcow2
from tests.functional.compute import test_qcow2_recovery
from tests.functional.compute.test_manager_concurrency import Recorder

pytestmark = pytest.mark.functional

MiB = nova_like.MiB
CLUSTER = 64 * 1024
# Snapshot n holds pattern 0x30+n at n * 512 KiB (and every earlier
# one's).
CHAIN = 4
# Snapshot 2 and later read zeros there, over the base's data.
ZEROS = "3M"


def pattern(n):
    return 0x30 + n


def at(n):
    """Where snapshot n's cluster is: inside the base's data (4 MiB)."""
    return f"{n * 512}k"


def take_chain(backend, inst, count=CHAIN):
    """Snapshots 1..count, the guest writing one cluster before each."""
    results = {}
    for n in range(1, count + 1):
        inst.hmp_io("disk", f"write -P {pattern(n)} {at(n)} 64k")
        if n == 2:
            # Zeros over the base's data: no copy or restore may let the
            # base show through there.
            inst.hmp_io("disk", f"write -z {ZEROS} 64k")
        results[n] = backend.snapshot(inst.describe(), inst.dom, n, "prefer")
        test_qcow2.assert_nova_layout(inst)
    return results


def stored(result, name="disk"):
    return next(d for d in result.disks if d["name"] == name)


def assert_reads_as_snapshot(path, n, upto=CHAIN):
    """The image holds snapshot n's data: patterns 1..n, not later ones."""
    assert nova_like.has_pattern(path, "qcow2", 0xAB, "64k", "64k")
    zeros = 0 if n >= 2 else nova_like.BASE_PATTERN
    assert nova_like.has_pattern(path, "qcow2", zeros, ZEROS, "64k")
    assert nova_like.has_pattern(
        path, "qcow2", nova_like.BASE_PATTERN, "3584k", "64k"
    )
    for k in range(1, upto + 1):
        expected = pattern(k) if k <= n else nova_like.BASE_PATTERN
        assert nova_like.has_pattern(path, "qcow2", expected, at(k), "64k")


def qemu_pid(inst):
    """PID of the domain's QEMU process, found by its guest name."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as stream:
                argv = stream.read().split(b"\0")
        except OSError:
            continue
        if f"guest={inst.name},".encode() in b",".join(argv) + b",":
            return int(entry)
    raise AssertionError(f"no QEMU process for {inst.name}")


def kill_qemu(inst):
    os.kill(qemu_pid(inst), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while inst.dom.isActive():
        assert time.monotonic() < deadline, "QEMU did not die"
        time.sleep(0.05)


def image_info(path):
    return json.loads(
        nova_like.run("qemu-img", "info", "-U", "--output=json", path)
    )


def nova_can_resize(inst):
    """What Nova's resize does to a shut-off instance's disk."""
    nova_like.run(
        "qemu-img", "resize", "-f", "qcow2", inst.path("disk"), "64M"
    )


@pytest.fixture
def chain_instance(make_instance, file_mode):
    file_mode("incremental")
    return make_instance(disk_names=("disk",))


def test_chain_stores_only_changes_and_restores_any_snapshot(
    backend, chain_instance, nova_host
):
    inst = chain_instance
    results = take_chain(backend, inst)

    first = stored(results[1])
    assert first["parent"] is None
    assert first["full_reason"] == "first snapshot of the instance"
    for n in range(2, CHAIN + 1):
        disk = stored(results[n])
        assert disk["parent"] == n - 1
        assert disk["full_reason"] is None
        # One cluster written: the file holds it plus qcow2 metadata,
        # far from the full copy the first snapshot is.
        assert disk["allocated_bytes"] < first["allocated_bytes"] / 4
        assert nova_like.backing_chain(disk["path"])[1][0] == os.path.join(
            os.path.dirname(disk["path"]), "..", str(n - 1), "disk"
        )
        assert_reads_as_snapshot(disk["path"], n)
    assert_reads_as_snapshot(first["path"], 1)
    # Everything a copy to another store needs, parents first.
    files = backend.store.chain_files(inst.uuid, 3)
    assert [f for f in files if f.endswith("/disk")] == [
        stored(results[n])["path"] for n in (1, 2, 3)
    ]
    assert all(os.path.exists(f) for f in files)

    inst.hmp_io("disk", f"write -P 0xEE {at(CHAIN + 1)} 64k")
    inst.dom.destroy()
    for n in (1, CHAIN):
        backend.restore(inst.describe(), inst.dom, n, results[n].disks)
        test_qcow2.assert_nova_layout(inst)
        assert_reads_as_snapshot(inst.path("disk"), n)
        assert nova_like.has_pattern(
            inst.path("disk"),
            "qcow2",
            nova_like.BASE_PATTERN,
            at(CHAIN + 1),
            "64k",
        )
    nova_like.undefine_as_nova(inst.dom)


def test_tracking_survives_a_stop_and_start(backend, chain_instance):
    inst = chain_instance
    take_chain(backend, inst, 1)
    inst.dom.destroy()  # QEMU closes the disk and keeps the bitmap
    inst.dom.create()
    inst.hmp_io("disk", f"write -P 0x77 {at(2)} 64k")

    result = backend.snapshot(inst.describe(), inst.dom, 2, "prefer")

    assert stored(result)["parent"] == 1
    assert nova_like.has_pattern(
        stored(result)["path"], "qcow2", 0x77, at(2), "64k"
    )
    test_qcow2.assert_nova_layout(inst)
    nova_like.undefine_as_nova(inst.dom)


def test_lost_tracking_makes_a_full_copy_and_says_so(backend, chain_instance):
    inst = chain_instance
    take_chain(backend, inst, 2)
    kill_qemu(inst)
    inst.dom.create()
    inst.hmp_io("disk", f"write -P {pattern(3)} {at(3)} 64k")

    result = backend.snapshot(inst.describe(), inst.dom, 3, "prefer")

    disk = stored(result)
    assert disk["parent"] is None
    assert "tracking was lost" in disk["full_reason"]
    assert_reads_as_snapshot(disk["path"], 3, upto=3)
    # The next one chains again.
    inst.hmp_io("disk", f"write -P {pattern(4)} {at(4)} 64k")
    result = backend.snapshot(inst.describe(), inst.dom, 4, "prefer")
    assert stored(result)["parent"] == 3
    test_qcow2.assert_nova_layout(inst)
    # Only the current bitmap is left in Nova's file, consistent.
    inst.dom.destroy()
    assert checkpoints.our_bitmaps(image_info(inst.path("disk"))) == [
        "snapmanager-4"
    ]
    nova_can_resize(inst)
    nova_like.undefine_as_nova(inst.dom)


def test_recovery_removes_a_bitmap_a_killed_qemu_left(backend, chain_instance):
    inst = chain_instance
    take_chain(backend, inst, 1)
    # QEMU writes the bitmap into the file when it closes it, and marks
    # it in use when it opens it again.
    inst.dom.destroy()
    inst.dom.create()
    kill_qemu(inst)
    info = image_info(inst.path("disk"))
    assert checkpoints.our_bitmaps(info, in_use_only=True) == ["snapmanager-1"]

    backend.recover([inst.describe()])

    # Nova's resize would fail on the inconsistent bitmap; now it works.
    assert checkpoints.our_bitmaps(image_info(inst.path("disk"))) == []
    nova_can_resize(inst)
    nova_like.undefine_as_nova(inst.dom)


def test_nova_undefines_a_running_domain_with_a_checkpoint_record(
    chain_instance,
):
    """Why the record the agent holds during a job's start cannot fail
    Nova: libvirt refuses Nova's undefine (no CHECKPOINTS_METADATA) only
    for a domain that is shut off, and the record is only ever on a
    running one (doc/source/compute.rst)."""
    inst = chain_instance
    conn = inst.dom.connect()
    xml = inst.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    record = "<domaincheckpoint><name>{}</name></domaincheckpoint>"
    inst.dom.checkpointCreateXML(record.format("snapmanager-probe"), 0)
    assert inst.dom.isActive()
    nova_like.undefine_as_nova(inst.dom)  # undefines, then destroys

    # Shut off, the same record stops Nova's undefine.
    inst.dom = conn.defineXML(xml)
    inst.dom.create()
    inst.dom.checkpointCreateXML(record.format("snapmanager-probe-2"), 0)
    inst.dom.destroy()
    with pytest.raises(libvirt.libvirtError, match="checkpoint"):
        nova_like.undefine_as_nova(inst.dom)
    for checkpoint in inst.dom.listAllCheckpoints():
        checkpoint.delete(libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY)
    nova_like.undefine_as_nova(inst.dom)


def test_the_agent_removes_a_bitmap_as_soon_as_qemu_dies(
    backend, chain_instance, nova_host
):
    inst = chain_instance
    take_chain(backend, inst, 1)
    inst.dom.destroy()
    inst.dom.create()
    # As the agent's start does: the loop first, then the connection.
    events.start_loop()
    conn = libvirt.open(nova_host["uri"])
    agent = compute_manager.ComputeManager(
        "host-1", {"file": backend}, Recorder(), connect=lambda: conn
    )
    seen = []
    on_crash = agent.crash_watch.on_crash

    def noted(instance_uuid):
        seen.append(instance_uuid)
        on_crash(instance_uuid)

    agent.crash_watch.on_crash = noted
    try:
        agent.crash_watch.ensure(conn)
        kill_qemu(inst)
        wait_until(
            lambda: not checkpoints.our_bitmaps(image_info(inst.path("disk"))),
            what="the bitmap removed",
        )
        assert seen == [inst.uuid]
        # Nova's resize works, with no restart of the agent.
        nova_can_resize(inst)
        # A stop of Nova's own (destroy) is not a death: nothing is done.
        inst.dom.create()
        inst.dom.destroy()
        time.sleep(1)
        assert seen == [inst.uuid]
    finally:
        agent.cleanup_host()
        conn.close()
    nova_like.undefine_as_nova(inst.dom)


def test_a_restore_loses_tracking(backend, chain_instance):
    inst = chain_instance
    results = take_chain(backend, inst, 2)
    inst.dom.destroy()
    backend.restore(inst.describe(), inst.dom, 1, results[1].disks)
    inst.dom.create()

    result = backend.snapshot(inst.describe(), inst.dom, 3, "prefer")

    assert stored(result)["parent"] is None
    assert "tracking was lost" in stored(result)["full_reason"]
    assert_reads_as_snapshot(stored(result)["path"], 1)
    nova_like.undefine_as_nova(inst.dom)


def test_delete_in_the_middle_and_the_oldest_keeps_the_others(
    backend, chain_instance
):
    inst = chain_instance
    results = take_chain(backend, inst)

    freed = backend.delete(inst.uuid, 2, results[2].disks)

    assert freed > 0
    assert backend.list_indexes(inst.uuid) == [1, 3, 4]
    manifest = backend.store.read_manifest(inst.uuid, 3)
    assert manifest["parent"] == 1
    for n in (1, 3, 4):
        assert_reads_as_snapshot(stored(results[n])["path"], n)

    # The oldest, a full copy: its child becomes the full one.
    before = image_info(stored(results[1])["path"])
    backend.delete(inst.uuid, 1, results[1].disks)
    assert backend.list_indexes(inst.uuid) == [3, 4]
    assert backend.store.read_manifest(inst.uuid, 3)["parent"] is None
    assert nova_like.backing_chain(stored(results[3])["path"]) == [
        (stored(results[3])["path"], "qcow2")
    ]
    assert before["virtual-size"] == nova_like.DISK_SIZE
    for n in (3, 4):
        assert_reads_as_snapshot(stored(results[n])["path"], n)

    # The newest (no child): removed; the next snapshot is full.
    backend.delete(inst.uuid, 4, results[4].disks)
    result = backend.snapshot(inst.describe(), inst.dom, 5, "prefer")
    assert stored(result)["parent"] is None
    assert_reads_as_snapshot(stored(result)["path"], CHAIN)
    test_qcow2.assert_nova_layout(inst)
    nova_like.undefine_as_nova(inst.dom)


SNAPSHOT_STEPS = {
    # step: recovery actions on the crashed snapshot 3
    "checkpoint-created": [(3, "discarded")],
    "backup-started": [(3, "discarded")],
    "incremental-published": [],
}


@pytest.mark.parametrize("step", sorted(SNAPSHOT_STEPS))
def test_kill_during_an_incremental_snapshot(
    backend, chain_instance, nova_host, step
):
    inst = chain_instance
    take_chain(backend, inst, 2)
    inst.hmp_io("disk", f"write -P {pattern(3)} {at(3)} 64k")
    test_qcow2_recovery.crash_at(
        nova_host, inst, step, mode="incremental", index=3
    )

    actions = backend.recover([inst.describe()])

    assert (
        test_qcow2_recovery.actions_of(actions, inst) == SNAPSHOT_STEPS[step]
    )
    test_qcow2.assert_nova_layout(inst)
    test_qcow2.assert_store_clean(nova_host, inst)
    assert inst.dom.jobInfo()[0] == 0
    done = step == "incremental-published"
    assert backend.list_indexes(inst.uuid) == ([1, 2, 3] if done else [1, 2])
    # The next snapshot is right whatever the crash left: chained when
    # tracking is intact, full otherwise.
    inst.hmp_io("disk", f"write -P {pattern(4)} {at(4)} 64k")
    result = backend.snapshot(inst.describe(), inst.dom, 4, "prefer")
    assert_reads_as_snapshot(stored(result)["path"], 4)
    assert stored(result)["parent"] == (3 if done else 2)
    nova_like.undefine_as_nova(inst.dom)


@pytest.mark.parametrize("step", ["merge-committed", "merge-renamed"])
def test_kill_during_a_delete_in_the_middle(
    backend, chain_instance, nova_host, step
):
    inst = chain_instance
    take_chain(backend, inst, 3)
    test_qcow2_recovery.crash_at(
        nova_host, inst, step, mode="incremental", index=2, operation="delete"
    )
    # Snapshot 2 is not listed any more, and the others read right.
    assert backend.list_indexes(inst.uuid) == [1, 3]

    actions = backend.recover([inst.describe()])

    assert test_qcow2_recovery.actions_of(actions, inst) == [(2, "discarded")]
    assert backend.list_indexes(inst.uuid) == [1, 3]
    assert backend.store.read_manifest(inst.uuid, 3)["parent"] == 1
    for n in (1, 3):
        path = os.path.join(nova_host["store"], inst.uuid, str(n), "disk")
        assert_reads_as_snapshot(path, n, upto=3)
    assert not os.path.exists(os.path.join(nova_host["store"], inst.uuid, "2"))
    nova_like.undefine_as_nova(inst.dom)


def test_nova_live_snapshot_and_hard_reboot_with_tracking(
    backend, chain_instance, nova_host
):
    """What Nova does to a running domain whose disk has our bitmap."""
    inst = chain_instance
    take_chain(backend, inst, 1)
    nova_xml = inst.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    # Nova's live snapshot: the domain made transient, a shallow block
    # copy of the disk into a new delta, the copy aborted, the domain
    # defined again.
    delta = os.path.join(nova_host["instances"], f"{inst.uuid}.delta")
    create = "qemu-img create -q -f qcow2 -F raw -b".split()
    size = str(nova_like.DISK_SIZE)
    nova_like.run(*create, inst.bases["disk"], delta, size)
    inst.dom.undefineFlags(
        libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    )
    inst.dom.blockCopy(
        "vda",
        f"<disk type='file'><driver type='qcow2'/><source file='{delta}'/>"
        "</disk>",
        None,
        libvirt.VIR_DOMAIN_BLOCK_COPY_SHALLOW
        | libvirt.VIR_DOMAIN_BLOCK_COPY_REUSE_EXT,
    )
    deadline = time.monotonic() + 60
    while True:
        job = inst.dom.blockJobInfo("vda", 0)
        if job and job["cur"] == job["end"] and job["end"] > 0:
            break
        assert time.monotonic() < deadline, "block copy never got ready"
        time.sleep(0.05)
    inst.dom.blockJobAbort("vda", 0)
    inst.dom = inst.dom.connect().defineXML(nova_xml)
    assert nova_like.has_pattern(delta, "qcow2", pattern(1), at(1), "64k")
    os.unlink(delta)
    inst.hmp_io("disk", f"write -P {pattern(2)} {at(2)} 64k")
    inst.hmp_io("disk", f"write -z {ZEROS} 64k")

    result = backend.snapshot(inst.describe(), inst.dom, 2, "prefer")

    assert stored(result)["parent"] == 1
    assert_reads_as_snapshot(stored(result)["path"], 2)
    # Nova's hard reboot: destroy, define from its records, start.
    nova_like.redefine_as_nova(inst, nova_xml)
    inst.hmp_io("disk", f"write -P {pattern(3)} {at(3)} 64k")
    result = backend.snapshot(inst.describe(), inst.dom, 3, "prefer")
    assert stored(result)["parent"] == 2
    assert_reads_as_snapshot(stored(result)["path"], 3)
    test_qcow2.assert_nova_layout(inst)
    nova_like.undefine_as_nova(inst.dom)
