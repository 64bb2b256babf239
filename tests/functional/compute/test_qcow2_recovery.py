"""kill -9 of the agent in the middle of a snapshot, then recovery.

A child process (crash_child) takes the snapshot and SIGKILLs itself at
one step. While no agent runs, the guest keeps writing, into the
overlay where one is active. Then this process runs ``recover()`` as a
restarted agent would, and the domain must be exactly as Nova left it,
with every write the guest made in Nova's ``disk``.
"""

import json
import os
import signal
import subprocess
import sys

import libvirt
import pytest

from snapmanager_nova.compute.backends import overlay
from tests.functional.compute import nova_like
from tests.functional.compute import test_qcow2

pytestmark = pytest.mark.functional

REPO = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
)
INDEX = 7
# Written while the agent is dead (into the overlay, if one is active).
DURING = 0xEE


def crash_at(
    nova_host, inst, step, mode="external", index=INDEX, operation=None
):
    params = {
        "operation": operation,
        "uri": nova_host["uri"],
        "instances_path": nova_host["instances"],
        "snapshot_store_path": nova_host["store"],
        "mode": mode,
        "uuid": inst.uuid,
        "index": index,
        "step": step,
    }
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.functional.compute.crash_child",
            json.dumps(params),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr


def overlays_in_xml(inst, flags=0):
    return sorted(
        os.path.basename(path)
        for path in inst.sources(flags).values()
        if overlay.MARK in path
    )


def actions_of(actions, inst):
    return sorted(
        (a.snapshot_index, a.action)
        for a in actions
        if a.instance_uuid == inst.uuid
    )


EXTERNAL_STEPS = {
    # step: (copy complete in the store, partial copy to discard)
    "overlay-created": (False, True),
    "copy-half": (False, True),
    "commit-started": (True, False),
    "commit-ready": (True, False),
}


@pytest.mark.parametrize("step", sorted(EXTERNAL_STEPS))
def test_recovery_after_kill_during_external_snapshot(
    backend, make_instance, nova_host, step
):
    complete, partial = EXTERNAL_STEPS[step]
    inst = make_instance(disk_names=("disk", "disk.local"))
    crash_at(nova_host, inst, step)

    # The agent is dead with the overlays active; the guest writes on.
    assert overlays_in_xml(inst) == [
        f"disk.local.snapmanager-{INDEX}",
        f"disk.snapmanager-{INDEX}",
    ]
    # A commit the agent started runs on in libvirtd without it.
    jobs = [inst.dom.blockJobInfo(t, 0).get("type") for t in ("vda", "vdb")]
    if step.startswith("commit"):
        assert jobs == [libvirt.VIR_DOMAIN_BLOCK_JOB_TYPE_ACTIVE_COMMIT] * 2
    else:
        assert jobs == [None, None]
    for name in inst.disk_names:
        inst.hmp_io(name, f"write -P {DURING} 3M 64k")

    actions = backend.recover([inst.describe()])

    expected = [(INDEX, "committed")]
    if complete:
        expected.append((INDEX, "completed"))
    if partial:
        expected.append((INDEX, "discarded"))
    assert actions_of(actions, inst) == sorted(expected)
    test_qcow2.assert_nova_layout(inst)
    test_qcow2.assert_store_clean(nova_host, inst)
    assert backend.list_indexes(inst.uuid) == ([INDEX] if complete else [])
    if complete:
        described = backend.describe(inst.uuid, INDEX)
        assert [d["name"] for d in described.disks] == ["disk", "disk.local"]
    # A second recovery finds nothing left to do.
    assert actions_of(backend.recover([inst.describe()]), inst) == []

    inst.dom.destroy()
    for name in inst.disk_names:
        path = inst.path(name)
        assert nova_like.has_pattern(path, "qcow2", DURING, "3M", "64k")
        assert nova_like.has_pattern(
            path, "qcow2", test_qcow2.DATA[name], "64k", "64k"
        )
    nova_like.undefine_as_nova(inst.dom)


def test_recovery_commits_offline_when_the_domain_stopped(
    backend, make_instance, nova_host
):
    inst = make_instance()
    crash_at(nova_host, inst, "copy-half")
    inst.hmp_io("disk", f"write -P {DURING} 3M 64k")
    # Stopped with the overlay active: QEMU (and its commit job, had one
    # run) is gone, the persistent definition names the overlay.
    inst.dom.destroy()
    assert overlays_in_xml(inst) == [f"disk.snapmanager-{INDEX}"]

    actions = backend.recover([inst.describe()])

    assert actions_of(actions, inst) == [
        (INDEX, "committed"),
        (INDEX, "discarded"),
    ]
    test_qcow2.assert_nova_layout(inst)
    assert nova_like.has_pattern(inst.path(), "qcow2", DURING, "3M", "64k")
    assert nova_like.has_pattern(inst.path(), "qcow2", 0xAB, "64k", "64k")
    # Nova's next start runs on its own disk, with the guest's writes.
    inst.dom.create()
    inst.hmp_io("disk", f"read -P {DURING} 3M 64k")
    nova_like.undefine_as_nova(inst.dom)


def test_next_snapshot_first_finishes_a_leftover_overlay(
    backend, make_instance, nova_host
):
    inst = make_instance()
    crash_at(nova_host, inst, "commit-ready")
    inst.hmp_io("disk", f"write -P {DURING} 3M 64k")

    # No recovery ran (say it failed): the next snapshot cleans up first.
    result = backend.snapshot(inst.describe(), inst.dom, INDEX + 1, "prefer")

    test_qcow2.assert_nova_layout(inst)
    stored = result.disks[0]["path"]
    assert nova_like.has_pattern(stored, "qcow2", DURING, "3M", "64k")
    assert backend.list_indexes(inst.uuid) == [INDEX, INDEX + 1]
    nova_like.undefine_as_nova(inst.dom)


def test_recovery_after_kill_during_backup(backend, make_instance, nova_host):
    inst = make_instance(disk_names=("disk", "disk.local"))
    crash_at(nova_host, inst, "backup-started", mode="backup")
    # The backup never moved the domain off Nova's files.
    test_qcow2.assert_nova_layout(inst)

    actions = backend.recover([inst.describe()])

    assert actions_of(actions, inst) == [(INDEX, "discarded")]
    test_qcow2.assert_nova_layout(inst)
    test_qcow2.assert_store_clean(nova_host, inst)
    assert backend.list_indexes(inst.uuid) == []
    assert inst.dom.jobInfo()[0] == 0  # no job left running
    nova_like.undefine_as_nova(inst.dom)


def test_recovery_removes_an_unused_overlay_file(
    backend, make_instance, nova_host
):
    inst = make_instance(running=False)
    # As libvirt may leave it when a snapshot fails half way: a file no
    # XML names, so no guest write can be in it.
    stray = inst.path(overlay.overlay_name("disk", 3))
    nova_like.run("qemu-img", "create", "-q", "-f", "qcow2", stray, "1M")
    restore = inst.path(overlay.restore_name("disk"))
    nova_like.run("qemu-img", "create", "-q", "-f", "qcow2", restore, "1M")

    actions = backend.recover([inst.describe()])

    assert actions_of(actions, inst) == [(3, "discarded")]
    assert inst.own_files() == []
    test_qcow2.assert_nova_layout(inst)
