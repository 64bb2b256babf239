"""Schedules through the DB API (SQLite)."""

import datetime

import pytest

from snapmanager_nova import exception
from snapmanager_nova.db import api as db_api
from tests.unit.db import fixtures

UTC = datetime.UTC
T0 = datetime.datetime(2025, 1, 1, tzinfo=UTC)


def test_create_for_an_instance(ctx):
    instance = fixtures.make_instance(ctx)
    schedule = fixtures.make_schedule(
        ctx,
        instance,
        timezone="Europe/Berlin",
        retention={"count": 7, "tiers": {"daily": 7, "weekly": 4}},
        next_run_at=T0,
    )
    got = db_api.schedule_get(ctx, schedule.id)
    assert got.instance_uuid == instance.uuid
    assert got.project_id == instance.project_id
    assert got.is_project_default is False
    assert got.enabled is True
    assert got.timezone == "Europe/Berlin"
    assert got.retention == {"count": 7, "tiers": {"daily": 7, "weekly": 4}}
    assert got.next_run_at == T0
    assert got.last_run_at is None


def test_defaults(ctx):
    schedule = fixtures.make_schedule(ctx, fixtures.make_instance(ctx))
    assert schedule.timezone == "UTC"
    assert schedule.retention == {}


def test_project_default(ctx):
    schedule = db_api.schedule_create(
        ctx,
        {
            "project_id": "project-b",
            "is_project_default": True,
            "family": "weekly",
            "spec": "weekly@sun@03:00",
        },
    )
    assert schedule.instance_uuid is None
    defaults = db_api.schedule_list(
        ctx, project_id="project-b", is_project_default=True
    )
    assert [s.id for s in defaults] == [schedule.id]


@pytest.mark.parametrize(
    "values",
    [
        # A default has no instance ...
        {"is_project_default": True, "instance_uuid": "set-below"},
        # ... and needs a project.
        {"is_project_default": True},
        # A schedule of its own needs an instance.
        {"project_id": "p"},
        {"instance_uuid": "set-below", "family": "hourly"},
        {"instance_uuid": "set-below", "project_id": "not-its-project"},
        {"instance_uuid": "set-below", "committed": True},
    ],
)
def test_create_rejects(ctx, values):
    instance = fixtures.make_instance(ctx)
    values = {"family": "daily", "spec": "daily@02:30", **values}
    if values.get("instance_uuid") == "set-below":
        values["instance_uuid"] = instance.uuid
    with pytest.raises(exception.Invalid):
        db_api.schedule_create(ctx, values)


def test_create_for_an_unknown_instance(ctx):
    with pytest.raises(exception.InstanceNotFound):
        db_api.schedule_create(
            ctx,
            {"instance_uuid": "nope", "family": "cron", "spec": "0 2 * * *"},
        )


def test_several_schedules_per_instance_and_list_filters(ctx):
    instance = fixtures.make_instance(ctx)
    other = fixtures.make_instance(ctx, project_id="project-b")
    daily = fixtures.make_schedule(ctx, instance)
    weekly = fixtures.make_schedule(
        ctx, instance, family="weekly", spec="weekly@sun", enabled=False
    )
    theirs = fixtures.make_schedule(ctx, other)
    mine = db_api.schedule_list(ctx, instance_uuid=instance.uuid)
    assert [s.id for s in mine] == [daily.id, weekly.id]
    enabled = db_api.schedule_list(ctx, enabled=True)
    assert {s.id for s in enabled} == {daily.id, theirs.id}
    projects = db_api.schedule_list(ctx, project_id="project-b")
    assert [s.id for s in projects] == [theirs.id]


def test_update(ctx):
    schedule = fixtures.make_schedule(ctx, fixtures.make_instance(ctx))
    updated = db_api.schedule_update(
        ctx,
        schedule.id,
        {"spec": "daily@04:00", "enabled": False, "last_run_at": T0},
    )
    assert (updated.spec, updated.enabled) == ("daily@04:00", False)
    got = db_api.schedule_get(ctx, schedule.id)
    assert got.last_run_at == T0
    assert got.updated_at is not None


@pytest.mark.parametrize(
    "values",
    [{"instance_uuid": None}, {"project_id": "x"}, {"family": "yearly"}],
)
def test_update_rejects(ctx, values):
    schedule = fixtures.make_schedule(ctx, fixtures.make_instance(ctx))
    with pytest.raises(exception.Invalid):
        db_api.schedule_update(ctx, schedule.id, values)


def test_update_and_delete_unknown(ctx):
    with pytest.raises(exception.ScheduleNotFound):
        db_api.schedule_update(ctx, "nope", {"enabled": False})
    with pytest.raises(exception.ScheduleNotFound):
        db_api.schedule_delete(ctx, "nope")
    with pytest.raises(exception.ScheduleNotFound):
        db_api.schedule_get(ctx, "nope")


def test_delete_keeps_the_snapshots(ctx):
    instance = fixtures.make_instance(ctx)
    schedule = fixtures.make_schedule(ctx, instance)
    snapshot = fixtures.make_snapshot(
        ctx, instance, schedule, window_start=fixtures.WINDOW
    )
    db_api.schedule_delete(ctx, schedule.id)
    assert db_api.schedule_list(ctx) == []
    assert db_api.snapshot_get(ctx, snapshot.id).schedule_id is None


def test_get_due(ctx):
    instance = fixtures.make_instance(ctx)
    hour = datetime.timedelta(hours=1)

    def schedule(next_run_at, enabled=True):
        return fixtures.make_schedule(
            ctx, instance, next_run_at=next_run_at, enabled=enabled
        )

    later = schedule(T0 - hour)
    earliest = schedule(T0 - 2 * hour)
    exactly_now = schedule(T0)
    schedule(T0 + hour)
    schedule(T0 - 3 * hour, enabled=False)
    schedule(None)

    due = db_api.schedule_get_due(ctx, T0)
    assert [s.id for s in due] == [earliest.id, later.id, exactly_now.id]
    assert [s.id for s in db_api.schedule_get_due(ctx, T0, limit=1)] == [
        earliest.id
    ]
    # The same instant in another zone, and naive UTC, are the same now.
    berlin = T0.astimezone(datetime.timezone(datetime.timedelta(hours=1)))
    assert len(db_api.schedule_get_due(ctx, berlin)) == 3
    assert len(db_api.schedule_get_due(ctx, T0.replace(tzinfo=None))) == 3
