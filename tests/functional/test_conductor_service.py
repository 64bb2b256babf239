"""snapmanager-conductor as a real process on real RabbitMQ and MariaDB.

The agents' side of the RPC API (conductor/rpcapi.py) is exercised from
this process exactly as an agent uses it; the running conductor must
record each result in the database.
"""

import datetime

import pytest

from snapmanager_nova import context as sm_context
from snapmanager_nova import exception
from snapmanager_nova.conductor import rpcapi as conductor_rpcapi
from snapmanager_nova.db import api as db_api
from tests.fixtures.services import unique_host
from tests.fixtures.services import wait_until
from tests.unit.db import fixtures as db_fixtures


@pytest.fixture(scope="module")
def conductor(snapmanager_env):
    host = unique_host("conductor")
    process = snapmanager_env.start("snapmanager-conductor", host)
    ctx = sm_context.get_admin_context()

    def registered():
        assert process.poll() is None, snapmanager_env.log_tails()
        return [
            s
            for s in db_api.service_list(ctx, binary="snapmanager-conductor")
            if s.host == host
        ]

    (service,) = wait_until(registered, what="conductor heartbeat")
    return conductor_rpcapi.ConductorAPI(), ctx, host, service


def status_of(ctx, snapshot_id, wanted):
    def check():
        snapshot = db_api.snapshot_get(ctx, snapshot_id)
        return snapshot if snapshot.status == wanted else None

    return wait_until(check, what=f"snapshot {snapshot_id} {wanted}")


def test_heartbeat_advances(conductor):
    _, ctx, host, first = conductor

    def newer():
        (service,) = [s for s in db_api.service_list(ctx) if s.host == host]
        return service.last_seen_at > first.last_seen_at

    wait_until(newer, timeout=10, what="a second heartbeat")


def test_snapshot_result_is_recorded(conductor):
    api, ctx, _, _ = conductor
    instance = db_fixtures.make_instance(ctx, backend="file")
    index = db_api.instance_allocate_snapshot_index(ctx, instance.uuid)
    snapshot = db_fixtures.make_snapshot(
        ctx,
        instance,
        snapshot_index=index,
        window_start=datetime.datetime(
            2026, 11, 22, 2, 0, tzinfo=datetime.UTC
        ),
    )
    api.instance_progress(ctx, instance.uuid, False, index)
    wait_until(
        lambda: not db_api.instance_get(ctx, instance.uuid).committed,
        what="committed=False",
    )
    api.instance_progress(ctx, instance.uuid, True, index)
    api.snapshot_created(
        ctx,
        snapshot.id,
        {
            "disks": [{"target": "vda", "path": "/store/x"}],
            "size_bytes": 4096,
            "quiesced": False,
            "pause_seconds": 0.05,
        },
    )
    recorded = status_of(ctx, snapshot.id, "available")
    assert recorded.disks == [{"target": "vda", "path": "/store/x"}]
    assert recorded.size_bytes == 4096
    assert recorded.quiesced is False
    assert recorded.completed_at is not None
    row = db_api.instance_get(ctx, instance.uuid)
    assert row.committed and row.root_index == index


def test_failure_and_late_results(conductor):
    api, ctx, _, _ = conductor
    instance = db_fixtures.make_instance(ctx)
    snapshot = db_fixtures.make_snapshot(ctx, instance)
    api.snapshot_failed(ctx, snapshot.id, "libvirt error 38: boom " * 200)
    failed = status_of(ctx, snapshot.id, "error")
    assert failed.error.startswith("libvirt error 38: boom")
    assert len(failed.error) <= 2000
    # A success arriving after the failure must not resurrect the row; the
    # conductor drops it and keeps serving the next message.
    api.snapshot_created(
        ctx,
        snapshot.id,
        {"disks": [], "size_bytes": 1, "quiesced": True, "pause_seconds": 0.0},
    )
    other = db_fixtures.make_snapshot(ctx, instance)
    api.snapshot_failed(ctx, other.id, "second")
    status_of(ctx, other.id, "error")
    assert db_api.snapshot_get(ctx, snapshot.id).status == "error"


def test_delete_result_is_recorded(conductor):
    api, ctx, _, _ = conductor
    instance = db_fixtures.make_instance(ctx)
    snapshot = db_fixtures.make_snapshot(ctx, instance)
    db_api.snapshot_update_status(ctx, snapshot.id, "available")
    db_api.snapshot_update_status(ctx, snapshot.id, "deleting")
    api.snapshot_deleted(ctx, snapshot.id, 1024)
    assert status_of(ctx, snapshot.id, "deleted").deleted_at is not None


def test_operation_progress_and_finish(conductor):
    api, ctx, _, _ = conductor
    instance = db_fixtures.make_instance(ctx)
    # An on-demand snapshot's operation: the agent's reports on it are
    # recorded as they come (a restore's drive the conductor's restore
    # orchestration instead, tests/functional/conductor/test_restore.py).
    operation = db_api.operation_create(
        ctx,
        {
            "type": "snapshot",
            "instance_uuid": instance.uuid,
            "project_id": instance.project_id,
        },
    )
    api.operation_progress(ctx, operation.id, 40, "restoring disks")

    def running():
        op = db_api.operation_get(ctx, operation.id)
        return op if op.progress == 40 else None

    op = wait_until(running, what="progress 40")
    assert op.state == "running" and op.step == "restoring disks"
    api.operation_finished(ctx, operation.id)

    def finished():
        op = db_api.operation_get(ctx, operation.id)
        return op if op.state == "succeeded" else None

    op = wait_until(finished, what="operation succeeded")
    assert op.progress == 100 and op.finished_at is not None


def test_recovery_report_fails_the_interrupted_snapshot(conductor):
    api, ctx, host, _ = conductor
    instance = db_fixtures.make_instance(ctx)
    index = db_api.instance_allocate_snapshot_index(ctx, instance.uuid)
    db_api.instance_set_progress(ctx, instance.uuid, False)
    interrupted = db_fixtures.make_snapshot(
        ctx, instance, snapshot_index=index
    )
    api.recovery_report(
        ctx,
        "compute-1",
        [
            {
                "instance_uuid": instance.uuid,
                "snapshot_index": index,
                "action": "committed",
                "detail": "overlay merged",
            }
        ],
    )
    failed = status_of(ctx, interrupted.id, "error")
    assert "compute-1 restarted" in failed.error
    row = db_api.instance_get(ctx, instance.uuid)
    assert row.committed and row.root_index == index


def test_recovery_report_counts_a_completed_copy(conductor):
    api, ctx, _, _ = conductor
    instance = db_fixtures.make_instance(ctx)
    index = db_api.instance_allocate_snapshot_index(ctx, instance.uuid)
    finished = db_fixtures.make_snapshot(ctx, instance, snapshot_index=index)
    result = {
        "disks": [{"target": "vda", "name": "disk"}],
        "size_bytes": 512,
        "quiesced": False,
        "pause_seconds": 0.0,
    }
    api.recovery_report(
        ctx,
        "compute-1",
        [
            {
                "instance_uuid": instance.uuid,
                "snapshot_index": index,
                "action": "completed",
                "detail": "",
                "result": result,
            }
        ],
    )
    recorded = status_of(ctx, finished.id, "available")
    assert recorded.disks == result["disks"]
    assert recorded.size_bytes == 512


def test_unknown_snapshot_is_dropped_not_fatal(conductor):
    api, ctx, _, _ = conductor
    api.snapshot_failed(ctx, "00000000-0000-0000-0000-000000000000", "x")
    instance = db_fixtures.make_instance(ctx)
    snapshot = db_fixtures.make_snapshot(ctx, instance)
    api.snapshot_failed(ctx, snapshot.id, "after the unknown one")
    status_of(ctx, snapshot.id, "error")
    with pytest.raises(exception.SnapshotNotFound):
        db_api.snapshot_get(ctx, "00000000-0000-0000-0000-000000000000")
