"""A restore holds its server and its snapshot, on SQLite and MariaDB.

From the request until the restore succeeds or is abandoned, the
snapshot it restores from is deleted by nobody (retention, roll-off, a
tenant) and the schedule clock leaves the server alone: the server is
stopped and locked for the restore, and a snapshot taken meanwhile would
both race the agent's restore and run retention over the snapshot in
use. The agents are recorders here; the restore itself is in
test_restore.py.
"""

import datetime

import pytest

from snapmanager_nova import context as sm_context
from snapmanager_nova import exception
from snapmanager_nova.conductor import clock as clock_mod
from snapmanager_nova.conductor import retention
from snapmanager_nova.db import api as db_api
from tests.unit.conductor import compute_fakes
from tests.unit.db import fixtures as db_fixtures

UTC = datetime.UTC
NOW = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
RESULT = {"disks": [{"target": "vda", "path": "/s"}], "size_bytes": 1}


@pytest.fixture
def ctx(database_url):
    with db_fixtures.database(database_url, create_schema=True):
        ctx = sm_context.get_admin_context()
        compute_fakes.agent_up(ctx)
        yield ctx


def server(ctx):
    return db_fixtures.make_instance(
        ctx, host="compute-1", backend="file", snapshot_enabled=True
    )


def available(ctx, instance, schedule=None, day=20):
    index = db_api.instance_allocate_snapshot_index(ctx, instance.uuid)
    row = db_fixtures.make_snapshot(
        ctx,
        instance,
        schedule,
        window_start=datetime.datetime(2026, 11, day, 2, 0, tzinfo=UTC),
        snapshot_index=index,
        backend="file",
    )
    return db_api.snapshot_update_status(ctx, row.id, "available", **RESULT)


def request_restore(ctx, snapshot):
    return db_api.operation_create(
        ctx,
        {
            "type": "restore",
            "instance_uuid": snapshot.instance_uuid,
            "snapshot_id": snapshot.id,
        },
    )


def status(ctx, snapshot):
    return db_api.snapshot_get(ctx, snapshot.id).status


def test_retention_passes_over_the_snapshot_being_restored(ctx):
    instance = server(ctx)
    schedule = db_fixtures.make_schedule(
        ctx, instance, spec="daily@02:00", retention={"keep_count": 1}
    )
    oldest, middle, newest = (
        available(ctx, instance, schedule, day) for day in (19, 20, 21)
    )
    request_restore(ctx, oldest)
    compute = compute_fakes.FakeComputeAPI()
    keeper = retention.Retention(compute, now=lambda: NOW)
    assert keeper.after_success(ctx, newest) == [middle.id]
    assert [status(ctx, row) for row in (oldest, middle, newest)] == [
        "available",
        "deleting",
        "available",
    ]
    assert [call[2] for call in compute.of("delete")] == [middle.id]


def test_nobody_moves_the_snapshot_being_restored_to_deleting(ctx):
    instance = server(ctx)
    snapshot = available(ctx, instance)
    operation = request_restore(ctx, snapshot)
    with pytest.raises(exception.SnapshotInUse) as caught:
        db_api.snapshot_update_status(ctx, snapshot.id, "deleting")
    assert operation.id in str(caught.value)
    assert status(ctx, snapshot) == "available"


def test_a_failed_restore_still_holds_until_abandoned(ctx):
    instance = server(ctx)
    snapshot = available(ctx, instance)
    operation = request_restore(ctx, snapshot)
    db_api.operation_update_step(
        ctx, operation.id, None, {"state": "failed", "error": "agent died"}
    )
    with pytest.raises(exception.SnapshotInUse):
        db_api.snapshot_update_status(ctx, snapshot.id, "deleting")
    abandon = db_api.operation_take_over_restore(ctx, operation.id, "abandon")
    assert (abandon.type, abandon.snapshot_id) == ("abandon", snapshot.id)
    db_api.operation_update_step(
        ctx, abandon.id, None, {"state": "succeeded", "step": "done"}
    )
    assert db_api.operation_holding(ctx, instance.uuid) is None
    db_api.snapshot_update_status(ctx, snapshot.id, "deleting")


def test_the_clock_skips_a_server_its_restore_holds(ctx):
    held, free = server(ctx), server(ctx)
    for instance in (held, free):
        db_fixtures.make_schedule(
            ctx,
            instance,
            spec="daily@02:00",
            next_run_at=NOW - datetime.timedelta(hours=1),
        )
    request_restore(ctx, available(ctx, held))
    compute = compute_fakes.FakeComputeAPI()
    clock = clock_mod.ScheduleClock(compute, now=lambda: NOW)
    dispatched = clock.tick(ctx)
    assert [d.instance_uuid for d in dispatched] == [free.uuid]
    assert [call[1] for call in compute.of("create")] == [free.uuid]
    taken = db_api.snapshot_list(ctx, instance_uuid=held.uuid)
    assert len(taken) == 1  # only the one being restored


def test_nova_deleting_the_server_ends_the_hold(ctx):
    instance = server(ctx)
    snapshot = available(ctx, instance)
    operation = request_restore(ctx, snapshot)
    db_api.operation_update_step(
        ctx, operation.id, None, {"state": "failed", "error": "agent died"}
    )
    assert db_api.instance_begin_release(ctx, instance.uuid, NOW, NOW)
    assert db_api.operation_holding(ctx, instance.uuid) is None
    # The release may now delete what the failed restore kept.
    db_api.snapshot_update_status(ctx, snapshot.id, "deleting")
