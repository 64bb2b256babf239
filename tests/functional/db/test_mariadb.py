"""What only a real MariaDB (InnoDB) can show: constraints, precision,
upserts and concurrent writers, on the schema built by the migrations."""

import datetime
import threading
import time

import pytest
import sqlalchemy as sa
from oslo_db import exception as db_exc

from snapmanager_nova import context as sm_context
from snapmanager_nova import exception
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import migration
from snapmanager_nova.db import models
from tests.unit.db import fixtures

pytestmark = pytest.mark.functional

TABLES = {"instances", "schedules", "snapshots", "operations", "services"}


@pytest.fixture
def engine(mariadb_database_url):
    with fixtures.database(mariadb_database_url) as engine:
        migration.upgrade("head")
        yield engine


@pytest.fixture
def ctx(engine):
    return sm_context.get_admin_context()


@pytest.fixture
def instance(ctx):
    return fixtures.make_instance(ctx, host="cmp1", backend="rbd")


def test_tables_are_innodb_utf8mb4(engine):
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT table_name, engine, table_collation "
                "FROM information_schema.tables "
                "WHERE table_schema = DATABASE()"
            )
        ).all()
    ours = {name: (eng, coll) for name, eng, coll in rows if name in TABLES}
    assert set(ours) == TABLES
    for name, (eng, collation) in ours.items():
        assert eng == "InnoDB", name
        assert collation.startswith("utf8mb4"), name


def test_foreign_keys_are_enforced(ctx, engine):
    with pytest.raises(db_exc.DBReferenceError) as raised:
        with engine.begin() as conn:
            conn.execute(
                models.Snapshot.__table__.insert().values(
                    id="s1",
                    instance_uuid="no-such-instance",
                    project_id="p",
                    window_start=fixtures.WINDOW,
                    status="creating",
                    disks=[],
                    quiesced=False,
                    created_at=fixtures.WINDOW,
                )
            )
    assert raised.value.key == "instance_uuid"
    with pytest.raises(exception.InstanceNotFound):
        db_api.snapshot_create(ctx, {"instance_uuid": "no-such-instance"})


def test_schedule_owner_check_constraint(engine):
    # MariaDB reports a CHECK failure (4025) as an OperationalError that
    # oslo.db does not translate.
    with pytest.raises(sa.exc.OperationalError, match="default_xor_instance"):
        with engine.begin() as conn:
            conn.execute(
                models.Schedule.__table__.insert().values(
                    id="s1",
                    project_id="p",
                    is_project_default=False,
                    instance_uuid=None,
                    family="daily",
                    spec="daily@02:00",
                    timezone="UTC",
                    retention={},
                    enabled=True,
                    created_at=fixtures.WINDOW,
                )
            )


def test_duplicate_window(ctx, instance):
    schedule = fixtures.make_schedule(ctx, instance)
    fixtures.make_snapshot(
        ctx, instance, schedule, window_start=fixtures.WINDOW
    )
    with pytest.raises(exception.DuplicateWindow):
        fixtures.make_snapshot(
            ctx, instance, schedule, window_start=fixtures.WINDOW
        )
    # DATETIME(6): a window one microsecond later is another window, and
    # reads back exactly.
    later = fixtures.WINDOW + datetime.timedelta(microseconds=1)
    snapshot = fixtures.make_snapshot(
        ctx, instance, schedule, window_start=later
    )
    assert db_api.snapshot_get(ctx, snapshot.id).window_start == later


def test_deleting_a_schedule_keeps_its_snapshots(ctx, instance):
    schedule = fixtures.make_schedule(ctx, instance)
    snapshot = fixtures.make_snapshot(ctx, instance, schedule)
    db_api.schedule_delete(ctx, schedule.id)
    assert db_api.snapshot_get(ctx, snapshot.id).schedule_id is None


def test_upserts(ctx, instance):
    again = db_api.instance_create_or_update(
        ctx,
        instance.uuid,
        {"project_id": instance.project_id, "snapshot_enabled": True},
    )
    assert (again.host, again.snapshot_enabled) == ("cmp1", True)
    first = db_api.service_heartbeat(ctx, "snapmanager-compute", "cmp1")
    second = db_api.service_heartbeat(ctx, "snapmanager-compute", "cmp1")
    assert second.id == first.id
    assert second.last_seen_at > first.last_seen_at
    assert len(db_api.service_list(ctx)) == 1


def test_schedule_get_due(ctx, instance):
    now = datetime.datetime.now(datetime.UTC)
    due = fixtures.make_schedule(ctx, instance, next_run_at=now)
    fixtures.make_schedule(
        ctx, instance, next_run_at=now + datetime.timedelta(microseconds=1)
    )
    assert [s.id for s in db_api.schedule_get_due(ctx, now)] == [due.id]


def run_threads(count, target):
    """Start ``count`` threads at the same moment; return their results."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(i):
        barrier.wait()
        try:
            results[i] = target()
        except Exception as exc:  # collected for the assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_transitions_have_one_winner(ctx, instance):
    for _ in range(10):
        snapshot = fixtures.make_snapshot(ctx, instance)
        db_api.snapshot_update_status(ctx, snapshot.id, "available")
        results = run_threads(
            2,
            lambda sid=snapshot.id: db_api.snapshot_update_status(
                sm_context.get_admin_context(), sid, "deleting"
            ),
        )
        won = [r for r in results if isinstance(r, models.Snapshot)]
        lost = [
            r
            for r in results
            if isinstance(r, exception.InvalidStatusTransition)
        ]
        assert (len(won), len(lost)) == (1, 1), results
        assert "from deleting to deleting" in str(lost[0])


def test_a_blocked_writer_sees_the_winners_status(ctx, instance):
    """The loser waits on the row lock, then its WHERE no longer holds."""
    snapshot = fixtures.make_snapshot(ctx, instance)
    db_api.snapshot_update_status(ctx, snapshot.id, "available")
    loser = []

    def delete_too():
        try:
            db_api.snapshot_update_status(
                sm_context.get_admin_context(), snapshot.id, "deleting"
            )
        except exception.InvalidStatusTransition as exc:
            loser.append(exc)

    with db_api.context_manager.writer.using(ctx):
        db_api.snapshot_update_status(ctx, snapshot.id, "deleting")
        other = threading.Thread(target=delete_too)
        other.start()
        time.sleep(0.5)
        assert other.is_alive(), "the second writer did not wait"
    other.join(timeout=60)
    assert len(loser) == 1
    assert db_api.snapshot_get(ctx, snapshot.id).status == "deleting"


def test_batches_sharing_rows_move_each_row_once(ctx, instance):
    """Two conductors recording the same results at once (an agent that
    sent its batch again), their rows given in opposite orders: each row
    moves once, both calls succeed, and what one moved the other reports
    as already there."""
    rows = [fixtures.make_snapshot(ctx, instance) for _ in range(40)]
    ids = [row.id for row in rows]
    fields = {"disks": [], "quiesced": False, "backend": "rbd"}

    def record(order):
        return db_api.snapshots_update_status(
            sm_context.get_admin_context(),
            {snapshot_id: fields for snapshot_id in order},
            "available",
        )

    orders = iter([ids, ids[::-1]])
    results = run_threads(2, lambda: record(next(orders)))
    assert not [r for r in results if isinstance(r, Exception)], results
    moved = [[row.id for row in result[0]] for result in results]
    assert sorted(moved[0] + moved[1]) == sorted(ids)
    for (_rows, found), others in zip(results, reversed(moved), strict=True):
        assert found == dict.fromkeys(others, "available")
    assert {db_api.snapshot_get(ctx, i).status for i in ids} == {"available"}


def test_concurrent_index_allocation_never_repeats(ctx, instance):
    def allocate_ten():
        context = sm_context.get_admin_context()
        return [
            db_api.instance_allocate_snapshot_index(context, instance.uuid)
            for _ in range(10)
        ]

    results = run_threads(4, allocate_ten)
    allocated = sorted(sum(results, []))
    assert allocated == list(range(1, 41))
    assert db_api.instance_get(ctx, instance.uuid).snapshot_index == 40
