"""The DB API's batch functions the schedule clock records a busy window
with: each gives what its one-row counterpart gives, for many rows."""

import datetime

import pytest

from snapmanager_nova import exception
from snapmanager_nova.db import api as db_api
from tests.unit.db import fixtures

UTC = datetime.UTC
LATER = fixtures.WINDOW + datetime.timedelta(days=1)


def test_indexes_are_allocated_for_many_instances_at_once(ctx):
    first, second = fixtures.make_instance(ctx), fixtures.make_instance(ctx)
    db_api.instance_allocate_snapshot_index(ctx, first.uuid)
    assert db_api.instance_allocate_snapshot_indexes(
        ctx, [first.uuid, second.uuid]
    ) == {first.uuid: 2, second.uuid: 1}
    # Never given twice: the one-row function goes on from there.
    assert db_api.instance_allocate_snapshot_index(ctx, second.uuid) == 2


def test_allocating_for_a_missing_or_repeated_instance_is_refused(ctx):
    instance = fixtures.make_instance(ctx)
    with pytest.raises(exception.InstanceNotFound):
        db_api.instance_allocate_snapshot_indexes(
            ctx, [instance.uuid, "no-such-instance"]
        )
    with pytest.raises(exception.Invalid):
        db_api.instance_allocate_snapshot_indexes(
            ctx, [instance.uuid, instance.uuid]
        )


def test_only_instances_switched_on_and_alive_are_targets(ctx):
    on = fixtures.make_instance(ctx, snapshot_enabled=True)
    off = fixtures.make_instance(ctx, snapshot_enabled=False)
    gone = fixtures.make_instance(ctx, snapshot_enabled=True)
    db_api.instance_mark_deleted(ctx, gone.uuid, fixtures.WINDOW)
    found = db_api.instances_to_snapshot(ctx, [on.uuid, off.uuid, gone.uuid])
    assert [instance.uuid for instance in found] == [on.uuid]
    assert db_api.instances_to_snapshot(ctx, []) == []


def test_schedules_advance_together(ctx):
    instance = fixtures.make_instance(ctx)
    one = fixtures.make_schedule(ctx, instance)
    two = fixtures.make_schedule(ctx, instance, spec="daily@03:30")
    db_api.schedules_advance(
        ctx,
        [
            (one.id, LATER, fixtures.WINDOW),
            (two.id, LATER + datetime.timedelta(hours=1), None),
        ],
    )
    first, second = (db_api.schedule_get(ctx, s.id) for s in (one, two))
    assert (first.next_run_at, first.last_run_at) == (LATER, fixtures.WINDOW)
    assert second.next_run_at == LATER + datetime.timedelta(hours=1)
    assert second.last_run_at is None


def test_taken_windows_and_a_batch_that_would_take_one_again(ctx):
    instance = fixtures.make_instance(ctx)
    schedule = fixtures.make_schedule(ctx, instance)
    fixtures.make_snapshot(
        ctx, instance, schedule, window_start=fixtures.WINDOW
    )
    assert db_api.snapshot_windows_taken(
        ctx, [schedule.id], {fixtures.WINDOW, LATER}
    ) == {(schedule.id, instance.uuid, fixtures.WINDOW)}
    values = {
        "instance_uuid": instance.uuid,
        "project_id": instance.project_id,
        "schedule_id": schedule.id,
        "snapshot_index": 9,
    }
    with pytest.raises(exception.DuplicateWindow):
        with db_api.context_manager.writer.savepoint.using(ctx):
            db_api.snapshots_create_scheduled(
                ctx,
                [
                    dict(values, window_start=LATER),
                    dict(values, window_start=fixtures.WINDOW),
                ],
            )
    # Neither of the batch was recorded.
    assert len(db_api.snapshot_list(ctx, instance_uuid=instance.uuid)) == 1
    (made,) = db_api.snapshots_create_scheduled(
        ctx, [dict(values, window_start=LATER)]
    )
    assert (made.status, made.snapshot_index) == ("creating", 9)


def test_usage_and_overrides_of_many_projects(ctx):
    one = fixtures.make_instance(ctx, project_id="p1")
    fixtures.make_instance(ctx, project_id="p2")
    fixtures.make_snapshot(ctx, one)
    db_api.project_quota_set(ctx, "p2", {"snapshots": 5})
    assert db_api.snapshot_usage_many(ctx, {"p1", "p2"}) == {
        "p1": (1, 0),
        "p2": (0, 0),
    }
    assert db_api.project_quota_get_many(ctx, {"p1", "p2"}) == {
        "p2": {"snapshots": 5}
    }
