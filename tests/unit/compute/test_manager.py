"""ComputeManager's own logic, with a recording backend and conductor.

libvirt's test driver stands in for the hypervisor here: the manager only
looks domains up and reads their XML, which the test driver does for
real. The storage work is the backends', tested against real libvirt and
Ceph in tests/functional/compute.
"""

import contextlib
import threading
import time
import uuid

import libvirt
import pytest

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova.compute import manager as compute_manager
from snapmanager_nova.compute.backends import base
from snapmanager_nova.compute.backends import store

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
        # The file backend's store: the agent cleans its interrupted
        # transfers at start (none here).
        self.store = store.Store(CONF.compute.snapshot_store_path)

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


@contextlib.contextmanager
def running_agent(conn, backend, **compute_options):
    """(manager, backend, conductor) of an agent serving ``backend`` as
    the file backend, with ``compute_options`` set in [compute]."""
    for name, value in compute_options.items():
        CONF.set_override(name, value, group="compute")
    conductor = RecordingConductor()
    mgr = compute_manager.ComputeManager(
        "host-1", {"file": backend}, conductor, connect=lambda: conn
    )
    try:
        yield mgr, backend, conductor
    finally:
        mgr.cleanup_host()
        for name in compute_options:
            CONF.clear_override(name, group="compute")


@pytest.fixture
def agent(conn):
    with running_agent(conn, SlowBackend(), workers=4) as running:
        yield running


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


def test_snapshot_reports_its_result_and_nothing_else(agent, conn):
    mgr, _, conductor = agent
    instance_uuid = define(conn, start=True)
    mgr.create_snapshot(None, instance_uuid, "snap-1", 5, "prefer")
    wait_for(lambda: "snapshot_created" in conductor.methods())
    # No progress casts: nothing reads what they recorded.
    assert conductor.methods() == ["snapshot_created"]
    result = conductor.calls[0][1][1]
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


class VanishingConnection:
    """The real test driver, but Nova undefines ``gone`` right after the
    agent lists the domains and before it reads their XML."""

    def __init__(self, conn, gone):
        self.conn, self.gone = conn, gone

    def listAllDomains(self, flags):  # noqa: N802 (libvirt's name)
        domains = self.conn.listAllDomains(flags)
        self.conn.lookupByUUIDString(self.gone).undefine()
        return domains

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_init_host_skips_a_domain_undefined_while_it_starts(conn):
    kept = define(conn)
    gone = define(conn)
    backend = SlowBackend()
    conductor = RecordingConductor()
    mgr = compute_manager.ComputeManager(
        "host-1",
        {"file": backend},
        conductor,
        connect=lambda: VanishingConnection(conn, gone),
    )
    try:
        actions = mgr.init_host(None)
    finally:
        mgr.cleanup_host()
    recovered = {a.instance_uuid for a in actions}
    assert kept in recovered and gone not in recovered


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


# Batches (compute RPC 1.1, conductor RPC 1.2)


class UnmeasuredBackend(SlowBackend):
    """Reports snapshots without their size, measured on request (as the
    RBD backend does)."""

    def __init__(self):
        super().__init__(delay=0.05)
        self.measured = []

    def snapshot(self, instance, dom, index, quiesce):
        self._work(instance.uuid, ("snapshot", index))
        return base.SnapshotResult(
            disks=[{"target": "vda", "used_bytes": None}],
            size_bytes=None,
            quiesced=False,
            pause_seconds=0.0,
        )

    def measure(self, instance_uuid, index, disks):
        self.measured.append((instance_uuid, index))
        return [dict(disks[0], used_bytes=4096)], 4096


@pytest.fixture
def unmeasured_agent(conn):
    with running_agent(conn, UnmeasuredBackend()) as running:
        yield running


def reported(conductor):
    return [
        report
        for method, args, _kwargs in conductor.calls
        if method == "snapshots_reported"
        for report in args[0]
    ]


def test_a_batch_is_worked_and_reported_in_batches(unmeasured_agent, conn):
    mgr, backend, conductor = unmeasured_agent
    uuids = [define(conn, start=True) for _ in range(3)]
    missing = str(uuid.uuid4())
    mgr.create_snapshots(
        None,
        [
            {
                "instance_uuid": instance_uuid,
                "snapshot_id": f"s{n}",
                "index": n,
                "quiesce": "prefer",
            }
            for n, instance_uuid in enumerate([*uuids, missing], 1)
        ],
    )
    # Three results, a failure, and three sizes measured afterwards.
    wait_for(lambda: len(reported(conductor)) == 7)
    assert set(conductor.methods()) == {"snapshots_reported"}
    reports = reported(conductor)
    results = {r["snapshot_id"]: r["result"] for r in reports if "result" in r}
    assert sorted(results) == ["s1", "s2", "s3"]
    assert all(result["size_bytes"] is None for result in results.values())
    (failure,) = [r for r in reports if "error" in r]
    assert failure["snapshot_id"] == "s4" and missing in failure["error"]
    sizes = {
        r["snapshot_id"]: r["size_bytes"]
        for r in reports
        if "size_bytes" in r and "result" not in r
    }
    assert sizes == {"s1": 4096, "s2": 4096, "s3": 4096}
    # Each size after its snapshot's result.
    order = [(r["snapshot_id"], "result" in r) for r in reports]
    for snapshot_id in sizes:
        assert order.index((snapshot_id, True)) < order.index(
            (snapshot_id, False)
        )


def test_a_single_cast_reports_the_size_with_the_result(
    unmeasured_agent, conn
):
    mgr, backend, conductor = unmeasured_agent
    instance_uuid = define(conn, start=True)
    mgr.create_snapshot(None, instance_uuid, "snap-1", 2, "prefer")
    wait_for(lambda: "snapshot_created" in conductor.methods())
    result = conductor.calls[0][1][1]
    assert result["size_bytes"] == 4096
    assert result["disks"] == [{"target": "vda", "used_bytes": 4096}]
    assert backend.measured == [(instance_uuid, 2)]


def test_batched_reports_go_when_full_or_on_flush():
    sent = []
    reports = compute_manager.BatchedReports(
        lambda context, batch: sent.append((context, batch)),
        batch=2,
        delay=3600,
    )
    for n in range(3):
        reports.add("ctx", {"snapshot_id": n})
    assert sent == [("ctx", [{"snapshot_id": 0}, {"snapshot_id": 1}])]
    reports.flush()
    assert sent[1] == ("ctx", [{"snapshot_id": 2}])
    reports.flush()
    assert len(sent) == 2  # nothing left: nothing sent


def test_batched_reports_do_not_wait_for_a_full_batch():
    sent = threading.Event()
    reports = compute_manager.BatchedReports(
        lambda context, batch: sent.set(), batch=100, delay=0.01
    )
    reports.add(None, {"snapshot_id": 1})
    assert sent.wait(10)


def test_the_last_expected_outcome_goes_at_once():
    sent = []
    reports = compute_manager.BatchedReports(
        lambda context, batch: sent.append(batch), batch=100, delay=3600
    )
    reports.expect(2)
    reports.add(None, {"snapshot_id": 1}, outcome=True)
    assert sent == []
    reports.add(None, {"snapshot_id": 1, "size_bytes": 4096})
    assert sent == []  # a size is no outcome
    reports.add(None, {"snapshot_id": 2}, outcome=True)
    assert [len(batch) for batch in sent] == [3]


class StorageBoundBackend(SlowBackend):
    """A backend whose snapshot only waits on storage, as RBD's."""

    waits_on_storage = True


@pytest.fixture
def storage_agent(conn):
    with running_agent(
        conn, StorageBoundBackend(), workers=1, snapshot_workers=4
    ) as running:
        yield running


def test_snapshots_that_wait_on_storage_run_beside_the_workers(
    storage_agent, conn
):
    mgr, backend, conductor = storage_agent
    uuids = [define(conn) for _ in range(8)]
    mgr.create_snapshots(
        None,
        [
            {
                "instance_uuid": instance_uuid,
                "snapshot_id": f"s{index}",
                "index": index,
                "quiesce": "prefer",
            }
            for index, instance_uuid in enumerate(uuids, 1)
        ],
    )

    wait_for(lambda: len(reported(conductor)) == 8)
    assert sorted(
        report["snapshot_id"]
        for report in reported(conductor)
        if "result" in report
    ) == sorted(f"s{index}" for index in range(1, 9))
    # One worker finds the disks; up to snapshot_workers snapshots run.
    assert 1 < backend.max_parallel <= CONF.compute.snapshot_workers


def test_snapshots_that_wait_on_storage_stay_serialized_per_instance(
    storage_agent, conn
):
    mgr, backend, conductor = storage_agent
    instance_uuid = define(conn)
    for index in range(1, 5):
        mgr.create_snapshot(None, instance_uuid, f"s{index}", index, "skip")
    mgr.delete_snapshot(None, "s1", instance_uuid, "file", 1, [])
    wait_for(lambda: conductor.methods().count("snapshot_created") == 4)
    wait_for(lambda: len(backend.log) == 5)
    assert backend.overlaps_per_instance == 0
    assert [what for _, what in backend.log] == [
        ("snapshot", 1),
        ("snapshot", 2),
        ("snapshot", 3),
        ("snapshot", 4),
        ("delete", 1),
    ]
