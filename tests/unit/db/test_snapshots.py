"""Snapshots through the DB API (SQLite): window key, status, paging."""

import datetime
import itertools

import pytest
import sqlalchemy as sa
from oslo_db import exception as db_exc

from snapmanager_nova import exception
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from tests.unit.db import fixtures

STATUSES = models.SNAPSHOT_STATUSES
ALLOWED = [
    ("creating", "available"),
    ("creating", "error"),
    ("available", "deleting"),
    ("error", "deleting"),
    ("deleting", "deleted"),
    ("deleting", "error"),
]
DISALLOWED = [
    pair
    for pair in itertools.product(STATUSES, STATUSES)
    if pair not in ALLOWED
]
# How a new snapshot reaches each status by allowed moves.
PATHS = {
    "creating": [],
    "available": ["available"],
    "error": ["error"],
    "deleting": ["available", "deleting"],
    "deleted": ["available", "deleting", "deleted"],
}


@pytest.fixture
def instance(ctx):
    return fixtures.make_instance(ctx, backend="rbd")


@pytest.fixture
def schedule(ctx, instance):
    return fixtures.make_schedule(ctx, instance)


def snapshot_in(ctx, instance, status):
    snapshot = fixtures.make_snapshot(ctx, instance)
    for step in PATHS[status]:
        snapshot = db_api.snapshot_update_status(ctx, snapshot.id, step)
    assert snapshot.status == status
    return snapshot


def test_create(ctx, instance, schedule):
    snapshot = fixtures.make_snapshot(
        ctx,
        instance,
        schedule,
        window_start=fixtures.WINDOW,
        snapshot_index=1,
        backend="rbd",
    )
    got = db_api.snapshot_get(ctx, snapshot.id)
    assert got.status == "creating"
    assert got.project_id == instance.project_id
    assert got.schedule_id == schedule.id
    assert got.window_start == fixtures.WINDOW
    assert got.disks == []
    assert got.quiesced is False
    assert got.completed_at is None
    assert len(got.id) == 36


def test_on_demand_snapshot_defaults_its_window_to_now(ctx, instance):
    before = datetime.datetime.now(datetime.UTC)
    snapshot = fixtures.make_snapshot(ctx, instance)
    assert snapshot.schedule_id is None
    assert before <= snapshot.window_start <= snapshot.created_at


def test_window_keeps_microseconds_and_comes_back_in_utc(ctx, instance):
    berlin = datetime.timezone(datetime.timedelta(hours=2))
    window = datetime.datetime(2025, 7, 1, 4, 30, 0, 123456, tzinfo=berlin)
    snapshot = fixtures.make_snapshot(ctx, instance, window_start=window)
    got = db_api.snapshot_get(ctx, snapshot.id).window_start
    assert got == window
    assert got.tzinfo is datetime.UTC
    assert (got.hour, got.microsecond) == (2, 123456)


def test_duplicate_window_of_a_schedule(ctx, instance, schedule):
    fixtures.make_snapshot(
        ctx, instance, schedule, window_start=fixtures.WINDOW
    )
    with pytest.raises(exception.DuplicateWindow) as raised:
        fixtures.make_snapshot(
            ctx, instance, schedule, window_start=fixtures.WINDOW
        )
    assert schedule.id in str(raised.value)
    # The window is per schedule; on-demand snapshots never collide.
    other = fixtures.make_schedule(ctx, instance, family="every", spec="6")
    fixtures.make_snapshot(ctx, instance, other, window_start=fixtures.WINDOW)
    fixtures.make_snapshot(ctx, instance, window_start=fixtures.WINDOW)
    fixtures.make_snapshot(ctx, instance, window_start=fixtures.WINDOW)
    assert len(db_api.snapshot_list(ctx)) == 4


def test_create_checks_its_references(ctx, instance):
    other = fixtures.make_instance(ctx)
    theirs = fixtures.make_schedule(ctx, other)
    with pytest.raises(exception.InstanceNotFound):
        db_api.snapshot_create(ctx, {"instance_uuid": "nope"})
    with pytest.raises(exception.ScheduleNotFound):
        fixtures.make_snapshot(ctx, instance, schedule_id="nope")
    with pytest.raises(exception.Invalid):
        fixtures.make_snapshot(ctx, instance, theirs)
    with pytest.raises(exception.Invalid):
        fixtures.make_snapshot(ctx, instance, project_id="project-b")
    with pytest.raises(exception.Invalid):
        fixtures.make_snapshot(ctx, instance, status="broken")
    with pytest.raises(exception.Invalid):
        fixtures.make_snapshot(ctx, instance, id="chosen-by-caller")


def test_foreign_keys_are_enforced_on_sqlite(ctx, engine):
    # Below the API's own checks: the schema itself refuses.
    with pytest.raises(db_exc.DBReferenceError):
        with engine.begin() as conn:
            conn.execute(
                models.Snapshot.__table__.insert().values(
                    id="s1",
                    instance_uuid="nope",
                    project_id="p",
                    window_start=fixtures.WINDOW,
                    status="creating",
                    disks=[],
                    quiesced=False,
                    created_at=fixtures.WINDOW,
                )
            )


@pytest.mark.parametrize(("old", "new"), ALLOWED)
def test_allowed_transition(ctx, instance, old, new):
    snapshot = snapshot_in(ctx, instance, old)
    moved = db_api.snapshot_update_status(ctx, snapshot.id, new)
    assert moved.status == new
    assert db_api.snapshot_get(ctx, snapshot.id).status == new


@pytest.mark.parametrize(("old", "new"), DISALLOWED)
def test_disallowed_transition(ctx, instance, old, new):
    snapshot = snapshot_in(ctx, instance, old)
    with pytest.raises(exception.InvalidStatusTransition) as raised:
        db_api.snapshot_update_status(ctx, snapshot.id, new, error="x")
    assert f"from {old} to {new}" in str(raised.value)
    assert raised.value.kwargs["from_status"] == old
    got = db_api.snapshot_get(ctx, snapshot.id)
    assert got.status == old
    assert got.error is None


def test_transition_records_the_results(ctx, instance):
    snapshot = fixtures.make_snapshot(ctx, instance)
    disks = [{"target": "vda", "pool": "vms", "image": "x_disk", "snap": "s1"}]
    done = db_api.snapshot_update_status(
        ctx,
        snapshot.id,
        "available",
        disks=disks,
        size_bytes=5 * 2**40,
        quiesced=True,
    )
    assert done.disks == disks
    assert done.size_bytes == 5 * 2**40
    assert done.quiesced is True
    completed = done.completed_at
    assert completed is not None
    # Failing a delete later keeps when the snapshot was completed.
    db_api.snapshot_update_status(ctx, snapshot.id, "deleting")
    failed = db_api.snapshot_update_status(
        ctx, snapshot.id, "error", error="rbd: busy"
    )
    assert failed.completed_at == completed
    assert failed.error == "rbd: busy"
    db_api.snapshot_update_status(ctx, snapshot.id, "deleting")
    gone = db_api.snapshot_update_status(ctx, snapshot.id, "deleted")
    assert gone.deleted_at is not None


def test_a_batch_moves_what_may_move_and_says_what_it_found(ctx, instance):
    creating = [fixtures.make_snapshot(ctx, instance) for _ in range(3)]
    deleting = snapshot_in(ctx, instance, "deleting")
    disks = [{"target": "vda", "pool": "vms", "image": "x_disk"}]
    changes = {
        creating[2].id: {"disks": disks, "size_bytes": 7},
        deleting.id: {"disks": disks},
        "gone": {"disks": disks},
        creating[0].id: {"disks": disks, "quiesced": True},
    }
    moved, found = db_api.snapshots_update_status(ctx, changes, "available")
    # In the order given, each with its own fields.
    assert [row.id for row in moved] == [creating[2].id, creating[0].id]
    assert [row.status for row in moved] == ["available", "available"]
    assert (moved[0].size_bytes, moved[0].quiesced) == (7, False)
    assert (moved[1].size_bytes, moved[1].quiesced) == (None, True)
    assert all(row.completed_at is not None for row in moved)
    assert found == {deleting.id: "deleting", "gone": None}
    assert db_api.snapshot_get(ctx, deleting.id).disks != disks
    assert db_api.snapshot_get(ctx, creating[1].id).status == "creating"
    # Recorded again (a report sent twice): nothing moves.
    again, found = db_api.snapshots_update_status(
        ctx, {creating[0].id: {}}, "available"
    )
    assert (again, found) == ([], {creating[0].id: "available"})
    with pytest.raises(exception.Invalid):
        db_api.snapshots_update_status(
            ctx, {creating[1].id: {"schedule_id": None}}, "available"
        )
    assert db_api.snapshot_get(ctx, creating[1].id).status == "creating"


def test_sizes_are_recorded_in_one_go(ctx, instance):
    first, second = (fixtures.make_snapshot(ctx, instance) for _ in range(2))
    db_api.snapshots_set_sizes(ctx, {first.id: 10, second.id: 2**41, "x": 1})
    assert db_api.snapshot_get(ctx, first.id).size_bytes == 10
    assert db_api.snapshot_get(ctx, second.id).size_bytes == 2**41
    db_api.snapshots_set_sizes(ctx, {})


def test_transition_rejects_bad_input(ctx, instance):
    snapshot = fixtures.make_snapshot(ctx, instance)
    with pytest.raises(exception.Invalid):
        db_api.snapshot_update_status(ctx, snapshot.id, "gone")
    with pytest.raises(exception.Invalid):
        db_api.snapshot_update_status(
            ctx, snapshot.id, "available", schedule_id=None
        )
    with pytest.raises(exception.SnapshotNotFound):
        db_api.snapshot_update_status(ctx, "nope", "available")


def test_update_details_but_not_status(ctx, instance):
    snapshot = fixtures.make_snapshot(ctx, instance)
    expiry = fixtures.WINDOW + datetime.timedelta(days=7)
    updated = db_api.snapshot_update(ctx, snapshot.id, {"expires_at": expiry})
    assert updated.expires_at == expiry
    with pytest.raises(exception.Invalid):
        db_api.snapshot_update(ctx, snapshot.id, {"status": "available"})
    with pytest.raises(exception.SnapshotNotFound):
        db_api.snapshot_update(ctx, "nope", {"expires_at": expiry})


def test_list_filters(ctx, instance, schedule):
    other = fixtures.make_instance(ctx, project_id="project-b")
    scheduled = fixtures.make_snapshot(ctx, instance, schedule)
    failed = snapshot_in(ctx, instance, "error")
    theirs = fixtures.make_snapshot(ctx, other)

    def ids(**filters):
        return {s.id for s in db_api.snapshot_list(ctx, **filters)}

    assert ids() == {scheduled.id, failed.id, theirs.id}
    assert ids(instance_uuid=instance.uuid) == {scheduled.id, failed.id}
    assert ids(project_id="project-b") == {theirs.id}
    assert ids(schedule_id=schedule.id) == {scheduled.id}
    assert ids(status="error") == {failed.id}
    assert ids(status=["creating", "error"], project_id=fixtures.PROJECT) == {
        scheduled.id,
        failed.id,
    }
    assert ids(instance_uuid=[instance.uuid, other.uuid]) == {
        scheduled.id,
        failed.id,
        theirs.id,
    }
    assert ids(schedule_id=[schedule.id], instance_uuid=[other.uuid]) == set()


def walk(ctx, limit, sort_dir="asc", **filters):
    pages, marker = [], None
    while True:
        page = db_api.snapshot_list(
            ctx, limit=limit, marker=marker, sort_dir=sort_dir, **filters
        )
        if not page:
            return pages
        pages.append([s.id for s in page])
        marker = page[-1].id


def test_pagination_orders_by_created_at_then_id(ctx, engine, instance):
    snapshots = [fixtures.make_snapshot(ctx, instance) for _ in range(7)]
    # Three rows created in the same microsecond: the id breaks the tie.
    with engine.begin() as conn:
        conn.execute(
            sa.update(models.Snapshot)
            .where(models.Snapshot.id.in_([s.id for s in snapshots[2:5]]))
            .values(created_at=snapshots[2].created_at)
        )
    ordered = [
        s.id
        for s in sorted(
            db_api.snapshot_list(ctx), key=lambda s: (s.created_at, s.id)
        )
    ]
    assert [s.id for s in db_api.snapshot_list(ctx)] == ordered

    pages = walk(ctx, limit=3)
    assert [len(page) for page in pages] == [3, 3, 1]
    assert sum(pages, []) == ordered
    assert sum(walk(ctx, limit=2, sort_dir="desc"), []) == ordered[::-1]
    assert walk(ctx, limit=5, instance_uuid="nope") == []


def test_pagination_errors(ctx, instance):
    with pytest.raises(exception.MarkerNotFound):
        db_api.snapshot_list(ctx, marker="nope")
    with pytest.raises(exception.Invalid):
        db_api.snapshot_list(ctx, sort_dir="sideways")


def test_project_default_schedule_has_a_window_per_instance(ctx, instance):
    default = db_api.schedule_create(
        ctx,
        {
            "project_id": instance.project_id,
            "is_project_default": True,
            "family": "daily",
            "spec": "daily@02:30",
        },
    )
    second = fixtures.make_instance(ctx, project_id=instance.project_id)
    fixtures.make_snapshot(
        ctx, instance, default, window_start=fixtures.WINDOW
    )
    fixtures.make_snapshot(ctx, second, default, window_start=fixtures.WINDOW)
    with pytest.raises(exception.DuplicateWindow) as raised:
        fixtures.make_snapshot(
            ctx, second, default, window_start=fixtures.WINDOW
        )
    assert second.uuid in str(raised.value)
