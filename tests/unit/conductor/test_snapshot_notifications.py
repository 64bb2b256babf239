"""What the conductor announces about snapshots, and when.

On SQLite, with the recording stand-in for the agents, into
oslo.messaging's in-memory ``test`` driver; the real RabbitMQ is in
tests/functional/test_versioned_notifications.py.
"""

import datetime

import pytest

from snapmanager_nova import conf as sm_conf
from snapmanager_nova.conductor import clock as clock_mod
from snapmanager_nova.conductor import manager as manager_mod
from snapmanager_nova.conductor import retention
from snapmanager_nova.conductor import retries
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from tests.unit.conductor import compute_fakes
from tests.unit.db import conftest as db_conftest
from tests.unit.db import fixtures as db_fixtures

engine = db_conftest.engine
ctx = db_conftest.ctx

CONF = sm_conf.CONF
UTC = datetime.UTC
RESULT = {
    "disks": [{"target": "vda", "path": "/store/1/vda"}],
    "size_bytes": 2048,
    "quiesced": True,
    "backend": "file",
}


@pytest.fixture
def compute():
    return compute_fakes.FakeComputeAPI()


@pytest.fixture
def instance(ctx):
    compute_fakes.agent_up(ctx)
    return db_fixtures.make_instance(
        ctx, host="compute-1", backend="file", snapshot_enabled=True
    )


def recorded(ctx, instance, schedule=None):
    index = db_api.instance_allocate_snapshot_index(ctx, instance.uuid)
    return db_fixtures.make_snapshot(
        ctx, instance, schedule, snapshot_index=index
    )


def events(sent):
    return [n["event_type"] for n in sent()]


def data(notification):
    return notification["payload"]["nova_object.data"]


def test_the_clock_announces_what_it_records(
    ctx, instance, compute, notifications_sent
):
    now = datetime.datetime(2026, 11, 22, 2, 0, 30, tzinfo=UTC)
    schedule = db_fixtures.make_schedule(
        ctx, instance, spec="daily@02:00", next_run_at=now
    )
    homeless = db_fixtures.make_instance(
        ctx, host=None, backend="file", snapshot_enabled=True
    )
    db_fixtures.make_schedule(
        ctx, homeless, spec="daily@02:00", next_run_at=now
    )
    clock = clock_mod.ScheduleClock(compute, now=lambda: now)
    dispatches = {d.instance_uuid: d for d in clock.tick(ctx)}

    sent = notifications_sent()
    by_snapshot = {}
    for notification in sent:
        by_snapshot.setdefault(data(notification)["snapshot_id"], []).append(
            notification["event_type"]
        )
    assert by_snapshot == {
        dispatches[instance.uuid].snapshot_id: [
            "snapmanager.snapshot.create.start"
        ],
        # No host to cast to: failed at once, after its start.
        dispatches[homeless.uuid].snapshot_id: [
            "snapmanager.snapshot.create.start",
            "snapmanager.snapshot.create.error",
        ],
    }
    start = next(
        n
        for n in sent
        if data(n)["snapshot_id"] == dispatches[instance.uuid].snapshot_id
    )
    assert data(start)["schedule_id"] == schedule.id
    assert data(start)["window_start"] == "2026-11-22T02:00:00Z"
    assert start["publisher_id"] == f"snapmanager-conductor:{CONF.host}"
    # Replaying the tick records nothing, and announces nothing.
    clock.tick(ctx)
    assert len(notifications_sent()) == len(sent)


def test_results_are_announced_once(ctx, instance, notifications_sent):
    manager = manager_mod.ConductorManager()
    snapshot = recorded(ctx, instance)
    manager.snapshot_created(ctx, snapshot.id, RESULT)
    # The agent reports again after a restart: dropped, not announced.
    manager.snapshot_created(ctx, snapshot.id, RESULT)
    (end,) = notifications_sent()
    assert end["event_type"] == "snapmanager.snapshot.create.end"
    assert data(end)["size_bytes"] == 2048
    assert data(end)["quiesced"] is True
    assert data(end)["duration_seconds"] >= 0


def test_a_failure_is_told_by_what_failed(ctx, instance, notifications_sent):
    manager = manager_mod.ConductorManager()
    creating = recorded(ctx, instance)
    manager.snapshot_failed(ctx, creating.id, "guest agent not responding")
    deleting = recorded(ctx, instance)
    db_api.snapshot_update_status(
        ctx, deleting.id, models.SNAPSHOT_AVAILABLE, **RESULT
    )
    db_api.snapshot_update_status(ctx, deleting.id, models.SNAPSHOT_DELETING)
    operation = db_api.operation_create(
        ctx,
        {
            "type": "delete",
            "instance_uuid": instance.uuid,
            "snapshot_id": deleting.id,
        },
    )
    manager.snapshot_failed(ctx, deleting.id, "rbd: image busy")

    create_error, delete_error = notifications_sent()
    assert create_error["event_type"] == "snapmanager.snapshot.create.error"
    assert data(create_error)["error"] == "guest agent not responding"
    assert delete_error["event_type"] == "snapmanager.snapshot.delete.error"
    assert data(delete_error)["error"] == "rbd: image busy"
    # The operation the tenant follows, finished with it.
    assert data(delete_error)["operation_id"] == operation.id
    assert db_api.operation_get(ctx, operation.id).state == "failed"


def test_a_deletion_is_announced_with_what_it_freed(
    ctx, instance, compute, notifications_sent
):
    snapshot = recorded(ctx, instance)
    db_api.snapshot_update_status(
        ctx, snapshot.id, models.SNAPSHOT_AVAILABLE, **RESULT
    )
    keeper = retention.Retention(compute)
    row = db_api.snapshot_get(ctx, snapshot.id)
    assert keeper.delete(ctx, instance, [row], "test") == [snapshot.id]
    manager_mod.ConductorManager().snapshot_deleted(ctx, snapshot.id, 4096)
    start, end = notifications_sent()
    assert start["event_type"] == "snapmanager.snapshot.delete.start"
    assert end["event_type"] == "snapmanager.snapshot.delete.end"
    assert data(end)["freed_bytes"] == 4096
    assert data(end)["status"] == "deleted"
    assert data(end)["finished_at"] is not None


def test_retries_are_not_announced_until_given_up(
    ctx, instance, compute, notifications_sent
):
    CONF.set_override("max_retries", 1, "conductor")
    try:
        schedule = db_fixtures.make_schedule(ctx, instance)
        snapshot = recorded(ctx, instance, schedule)
        dispatcher = retries.SnapshotDispatcher(compute, jitter=lambda: 0.0)
        busy = "Nova is busy with it (task_state image_snapshot)"
        dispatcher.dispatch(
            ctx, snapshot.id, instance.uuid, "compute-1", 1, busy=busy
        )
        assert notifications_sent() == []
        dispatcher.dispatch(
            ctx,
            snapshot.id,
            instance.uuid,
            "compute-1",
            1,
            busy=busy,
            attempts=1,
        )
    finally:
        CONF.clear_override("max_retries", "conductor")
    (error,) = notifications_sent()
    assert error["event_type"] == "snapmanager.snapshot.create.error"
    assert "given up after 2 tries" in data(error)["error"]
