"""ComputeManager's own logic, with a recording backend and conductor.

libvirt's test driver stands in for the hypervisor here: the manager only
looks domains up and reads their XML, which the test driver does for
real. The storage work is the backends', tested against real libvirt and
Ceph in tests/functional/compute.
"""

import threading
import time
import uuid

import libvirt
import pytest

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova.compute import manager as compute_manager
from snapmanager_nova.compute.backends import base

CONF = sm_conf.CONF

DOMAIN_XML = """
<domain type='test'>
  <name>instance-{name}</name>
  <uuid>{uuid}</uuid>
  <memory>131072</memory>
  <os><type>hvm</type></os>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:name>{name}</nova:name>
      <nova:owner>
        <nova:user uuid="user-1">demo</nova:user>
        <nova:project uuid="project-1">demo</nova:project>
      </nova:owner>
    </nova:instance>
  </metadata>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/nova/instances/{uuid}/disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
"""


class RecordingConductor:
    """Collects the casts the agent makes to the conductor."""

    def __init__(self):
        self.calls = []
        self.event = threading.Event()

    def __getattr__(self, method):
        def record(context, *args, **kwargs):
            self.calls.append((method, args, kwargs))
            self.event.set()

        return record

    def methods(self):
        return [call[0] for call in self.calls]


class SlowBackend(base.Backend):
    """Records overlapping work; sleeps so overlaps would show."""

    name = "file"

    def __init__(self, delay=0.2):
        self.delay = delay
        self.active = set()
        self.max_parallel = 0
        self.overlaps_per_instance = 0
        self.log = []
        self.lock = threading.Lock()

    def _work(self, uuid_, what):
        with self.lock:
            if uuid_ in self.active:
                self.overlaps_per_instance += 1
            self.active.add(uuid_)
            self.max_parallel = max(self.max_parallel, len(self.active))
            self.log.append((uuid_, what))
        time.sleep(self.delay)
        with self.lock:
            self.active.discard(uuid_)

    def snapshot(self, instance, dom, index, quiesce):
        self._work(instance.uuid, ("snapshot", index))
        return base.SnapshotResult(
            disks=[{"target": "vda"}],
            size_bytes=1,
            quiesced=False,
            pause_seconds=0.0,
        )

    def restore(self, instance, dom, index, disks):
        self._work(instance.uuid, ("restore", index))

    def delete(self, instance_uuid, index, disks):
        self._work(instance_uuid, ("delete", index))
        return 0

    def list_indexes(self, instance_uuid):
        return [3, 1]

    def recover(self, instances):
        return [
            base.RecoveryAction(instance.uuid, 7, "committed")
            for instance in instances
        ] + [
            base.RecoveryAction(instance.uuid, 6, "completed")
            for instance in instances
        ]

    def describe(self, instance_uuid, index):
        return base.SnapshotResult(
            disks=[{"target": "vda", "index": index}],
            size_bytes=2,
            quiesced=True,
            pause_seconds=0.0,
        )


@pytest.fixture
def conn():
    conn = libvirt.open("test:///default")
    yield conn
    conn.close()


def define(conn, start=False):
    instance_uuid = str(uuid.uuid4())
    dom = conn.defineXML(
        DOMAIN_XML.format(uuid=instance_uuid, name=instance_uuid[:8])
    )
    if start:
        dom.create()
    return instance_uuid


@pytest.fixture
def agent(conn):
    CONF.set_override("workers", 4, group="compute")
    backend = SlowBackend()
    conductor = RecordingConductor()
    mgr = compute_manager.ComputeManager(
        "host-1", {"file": backend}, conductor, connect=lambda: conn
    )
    yield mgr, backend, conductor
    mgr.cleanup_host()
    CONF.clear_override("workers", group="compute")


def wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached in time")


def test_operations_on_one_instance_are_serialized(agent, conn):
    mgr, backend, conductor = agent
    instance_uuid = define(conn, start=True)
    for index in range(1, 5):
        mgr.create_snapshot(
            None, instance_uuid, f"snap-{index}", index, "prefer"
        )
    wait_for(lambda: conductor.methods().count("snapshot_created") == 4)
    assert backend.overlaps_per_instance == 0
    # Arrival order is kept.
    assert [what for _, what in backend.log] == [
        ("snapshot", i) for i in range(1, 5)
    ]


def test_different_instances_run_in_parallel(agent, conn):
    mgr, backend, conductor = agent
    uuids = [define(conn, start=True) for _ in range(4)]
    for index, instance_uuid in enumerate(uuids, 1):
        mgr.create_snapshot(None, instance_uuid, f"s{index}", index, "prefer")
    wait_for(lambda: conductor.methods().count("snapshot_created") == 4)
    assert backend.max_parallel > 1


def test_worker_pool_is_bounded(agent, conn):
    mgr, backend, conductor = agent
    uuids = [define(conn, start=True) for _ in range(8)]
    for index, instance_uuid in enumerate(uuids, 1):
        mgr.create_snapshot(None, instance_uuid, f"s{index}", index, "prefer")
    wait_for(lambda: conductor.methods().count("snapshot_created") == 8)
    assert backend.max_parallel <= CONF.compute.workers


def test_snapshot_reports_progress_then_result(agent, conn):
    mgr, _, conductor = agent
    instance_uuid = define(conn, start=True)
    mgr.create_snapshot(None, instance_uuid, "snap-1", 5, "prefer")
    wait_for(lambda: "snapshot_created" in conductor.methods())
    assert conductor.methods() == [
        "instance_progress",
        "instance_progress",
        "snapshot_created",
    ]
    assert conductor.calls[0][1] == (instance_uuid, False, 5)
    assert conductor.calls[1][1] == (instance_uuid, True, 5)
    result = conductor.calls[2][1][1]
    assert result["disks"] == [{"target": "vda"}]
    # Restore and delete are routed by it: the conductor records it.
    assert result["backend"] == "file"


def test_snapshot_of_unknown_instance_fails_with_reason(agent):
    mgr, _, conductor = agent
    missing = str(uuid.uuid4())
    mgr.create_snapshot(None, missing, "snap-1", 1, "prefer")
    wait_for(lambda: "snapshot_failed" in conductor.methods())
    snapshot_id, error = conductor.calls[-1][1]
    assert snapshot_id == "snap-1"
    assert missing in error and "host-1" in error


def test_restore_of_running_domain_is_refused(agent, conn):
    mgr, backend, conductor = agent
    instance_uuid = define(conn, start=True)
    mgr.restore_snapshot(None, "op-1", instance_uuid, "file", 1, [])
    wait_for(lambda: "operation_finished" in conductor.methods())
    operation_id, error = conductor.calls[-1][1]
    assert operation_id == "op-1"
    assert "must be shut off" in error and "running" in error
    assert backend.log == []


def test_restore_of_shut_off_domain_runs(agent, conn):
    mgr, backend, conductor = agent
    instance_uuid = define(conn, start=False)
    mgr.restore_snapshot(None, "op-1", instance_uuid, "file", 2, [])
    wait_for(lambda: "operation_finished" in conductor.methods())
    assert conductor.methods() == ["operation_progress", "operation_finished"]
    assert conductor.calls[-1][1] == ("op-1",)
    assert backend.log == [(instance_uuid, ("restore", 2))]


def test_delete_needs_no_domain(agent):
    mgr, backend, conductor = agent
    gone = str(uuid.uuid4())
    mgr.delete_snapshot(None, "snap-9", gone, "file", 9, [])
    wait_for(lambda: "snapshot_deleted" in conductor.methods())
    assert backend.log == [(gone, ("delete", 9))]


def test_unknown_backend_is_a_clear_error(agent):
    mgr, _, conductor = agent
    mgr.delete_snapshot(None, "snap-9", str(uuid.uuid4()), "lvm", 9, [])
    wait_for(lambda: "snapshot_failed" in conductor.methods())
    assert "Backend 'lvm' is not enabled" in conductor.calls[-1][1][1]


def test_list_snapshots_is_sorted(agent):
    mgr, _, _ = agent
    assert mgr.list_snapshots(None, "any", "file") == [1, 3]


def test_init_host_recovers_and_reports(agent, conn):
    mgr, _, conductor = agent
    instance_uuid = define(conn, start=True)
    actions = mgr.init_host(None)
    assert any(a.instance_uuid == instance_uuid for a in actions)
    ((method, (host, reported), _),) = conductor.calls
    assert method == "recovery_report" and host == "host-1"
    mine = [r for r in reported if r["instance_uuid"] == instance_uuid]
    assert {
        "instance_uuid": instance_uuid,
        "snapshot_index": 7,
        "action": "committed",
        "detail": "",
    } in mine
    # A copy that had completed carries the result it would have reported.
    (completed,) = [r for r in mine if r["action"] == "completed"]
    assert completed["result"]["disks"] == [{"target": "vda", "index": 6}]
    assert completed["result"]["quiesced"] is True


def test_a_failing_work_item_does_not_stall_the_queue():
    queues = compute_manager.InstanceQueues(2)
    done = threading.Event()

    def boom():
        raise RuntimeError("bug")

    queues.submit("i-1", boom)
    queues.submit("i-1", done.set)
    assert done.wait(5)
    queues.shutdown()


def test_urgent_work_needs_no_free_worker():
    queues = compute_manager.InstanceQueues(1)
    gate = threading.Event()
    order = []
    queues.submit("i-1", gate.wait, 30)
    queues.submit("i-2", order.append, "queued")
    urgent = queues.submit("i-3", order.append, "urgent", urgent=True)
    # The only worker is held by i-1; the release of i-3 runs anyway.
    urgent.result(timeout=30)
    assert order == ["urgent"]
    gate.set()
    queues.shutdown()
    assert order == ["urgent", "queued"]


def test_urgent_work_follows_the_running_operation_of_its_instance():
    queues = compute_manager.InstanceQueues(2)
    gate = threading.Event()
    started = threading.Event()
    order = []

    def running():
        started.set()
        gate.wait(30)
        order.append("running")

    queues.submit("i-1", running)
    assert started.wait(30)
    queues.submit("i-1", order.append, "queued")
    first = queues.submit("i-1", order.append, "urgent-1", urgent=True)
    second = queues.submit("i-1", order.append, "urgent-2", urgent=True)
    gate.set()
    first.result(timeout=30)
    second.result(timeout=30)
    queues.shutdown()
    # Never beside the operation in progress; ahead of waiting work.
    assert order == ["running", "urgent-1", "urgent-2", "queued"]


def test_urgent_work_hands_the_rest_back_to_the_workers():
    queues = compute_manager.InstanceQueues(1)
    gate = threading.Event()
    order = []
    queues.submit("i-1", gate.wait, 30)
    # i-2's queue waits for the busy worker; its release does not.
    queued = queues.submit("i-2", order.append, "queued")
    queues.submit("i-2", order.append, "urgent", urgent=True).result(30)
    assert order == ["urgent"]
    gate.set()
    queued.result(timeout=30)
    queues.shutdown()
    assert order == ["urgent", "queued"]


def test_mixed_backends_are_refused(agent):
    mgr, _, _ = agent
    from snapmanager_nova.compute import domain

    instance = domain.Instance(
        uuid="u",
        domain_name="d",
        project_id=None,
        user_id=None,
        display_name=None,
        disks=(
            domain.FileDisk("vda", "/x/u/disk", "qcow2", "disk"),
            domain.RbdDisk(
                "vdb", "vms", "u_disk.local", "disk.local", None, None
            ),
        ),
    )
    with pytest.raises(exception.UnsupportedDisks, match="mix"):
        mgr._backend_for(instance)
