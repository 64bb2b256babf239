"""Retention after each success, and the roll-off of snapshots no
schedule keeps: what is deleted (on SQLite, with a recording stand-in for
the agents; the real agents are in tests/functional/conductor)."""

import datetime

import pytest

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova.conductor import manager as manager_mod
from snapmanager_nova.conductor import retention
from snapmanager_nova.db import api as db_api
from tests.unit.conductor import compute_fakes
from tests.unit.db import conftest as db_conftest
from tests.unit.db import fixtures as db_fixtures

engine = db_conftest.engine
ctx = db_conftest.ctx

CONF = sm_conf.CONF
UTC = datetime.UTC
NOW = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
RESULT = {"disks": [{"target": "vda", "path": "/s"}], "size_bytes": 1}


def day(n, hour=2):
    return datetime.datetime(2026, 11, n, hour, 0, tzinfo=UTC)


@pytest.fixture
def compute():
    return compute_fakes.FakeComputeAPI()


@pytest.fixture
def keeper(compute):
    return retention.Retention(compute, now=lambda: NOW)


@pytest.fixture
def instance(ctx):
    compute_fakes.agent_up(ctx)
    return db_fixtures.make_instance(
        ctx, host="compute-1", backend="file", snapshot_enabled=True
    )


def make_schedule(ctx, instance, **retention_rules):
    return db_fixtures.make_schedule(
        ctx, instance, spec="daily@02:00", retention=retention_rules
    )


def snap(ctx, instance, schedule, window, status="available"):
    """A snapshot of ``window`` that reached ``status``."""
    index = db_api.instance_allocate_snapshot_index(ctx, instance.uuid)
    row = db_fixtures.make_snapshot(
        ctx,
        instance,
        schedule,
        window_start=window,
        snapshot_index=index,
        backend="file",
    )
    if status != "creating":
        db_api.snapshot_update_status(
            ctx,
            row.id,
            status,
            **(RESULT if status == "available" else {"error": "x"}),
        )
    return db_api.snapshot_get(ctx, row.id)


def statuses(ctx, rows):
    return [db_api.snapshot_get(ctx, row.id).status for row in rows]


def test_keep_count_deletes_the_oldest(ctx, keeper, compute, instance):
    schedule = make_schedule(ctx, instance, keep_count=2)
    rows = [snap(ctx, instance, schedule, day(n)) for n in (19, 20, 21)]
    assert keeper.after_success(ctx, rows[-1]) == [rows[0].id]
    assert statuses(ctx, rows) == ["deleting", "available", "available"]
    assert compute.of("delete") == [
        ("compute-1", instance.uuid, rows[0].id, rows[0].snapshot_index)
    ]
    # Applying it again deletes nothing more.
    assert keeper.after_success(ctx, rows[-1]) == []


def test_windows_not_row_times_order_the_snapshots(ctx, keeper, instance):
    schedule = make_schedule(ctx, instance, keep_count=1)
    # Recorded newest window first (a catch-up after a restore of the
    # database, say): the window decides which is older.
    newer = snap(ctx, instance, schedule, day(21))
    older = snap(ctx, instance, schedule, day(20))
    assert keeper.after_success(ctx, older) == [older.id]
    assert statuses(ctx, [newer, older]) == ["available", "deleting"]


def test_nothing_while_the_newest_failed(ctx, keeper, compute, instance):
    schedule = make_schedule(ctx, instance, keep_count=1)
    rows = [snap(ctx, instance, schedule, day(n)) for n in (18, 19, 20)]
    snap(ctx, instance, schedule, day(21), status="error")
    assert keeper.after_success(ctx, rows[-1]) == []
    assert compute.casts == []


def test_the_newest_available_is_never_deleted(ctx, keeper, instance):
    schedule = make_schedule(ctx, instance, max_age=60)
    rows = [snap(ctx, instance, schedule, day(n)) for n in (19, 20, 21)]
    assert keeper.after_success(ctx, rows[-1]) == [rows[0].id, rows[1].id]
    assert statuses(ctx, rows)[-1] == "available"


def test_failed_ones_go_once_a_newer_one_succeeded(ctx, keeper, instance):
    schedule = make_schedule(ctx, instance, keep_count=5)
    failed = snap(ctx, instance, schedule, day(20), status="error")
    taking = snap(ctx, instance, schedule, day(22), status="creating")
    done = snap(ctx, instance, schedule, day(21))
    assert keeper.after_success(ctx, done) == [failed.id]
    assert statuses(ctx, [failed, taking]) == ["deleting", "creating"]


def test_a_project_default_keeps_per_instance(ctx, keeper, instance):
    other = db_fixtures.make_instance(
        ctx, host="compute-1", backend="file", snapshot_enabled=True
    )
    default = db_api.schedule_create(
        ctx,
        {
            "project_id": instance.project_id,
            "is_project_default": True,
            "family": "daily",
            "spec": "daily@02:00",
            "retention": {"keep_count": 2},
        },
    )
    mine = [snap(ctx, instance, default, day(n)) for n in (20, 21)]
    theirs = [snap(ctx, other, default, day(n)) for n in (19, 20, 21)]
    assert keeper.after_success(ctx, mine[-1]) == []
    assert keeper.after_success(ctx, theirs[-1]) == [theirs[0].id]


def test_an_unusable_policy_deletes_nothing(ctx, keeper, instance):
    schedule = make_schedule(ctx, instance, keep_count=1)
    db_api.schedule_update(ctx, schedule.id, {"retention": {"keep": 1}})
    rows = [snap(ctx, instance, schedule, day(n)) for n in (20, 21)]
    assert keeper.after_success(ctx, rows[-1]) == []


def test_a_down_agent_leaves_them_for_later(ctx, compute, instance):
    schedule = make_schedule(ctx, instance, keep_count=1)
    rows = [snap(ctx, instance, schedule, day(n)) for n in (20, 21)]
    db_api.instance_create_or_update(ctx, instance.uuid, {"host": "gone"})
    keeper = retention.Retention(compute, now=lambda: NOW)
    assert keeper.after_success(ctx, rows[-1]) == []
    assert statuses(ctx, rows) == ["available", "available"]


def test_nothing_stored_is_simply_deleted(ctx, keeper, compute, instance):
    db_api.instance_create_or_update(ctx, instance.uuid, {"backend": None})
    schedule = make_schedule(ctx, instance, keep_count=1)
    index = db_api.instance_allocate_snapshot_index(ctx, instance.uuid)
    never = db_fixtures.make_snapshot(
        ctx, instance, schedule, window_start=day(20), snapshot_index=index
    )
    db_api.snapshot_update_status(ctx, never.id, "error", error="x")
    done = snap(ctx, instance, schedule, day(21))
    assert keeper.after_success(ctx, done) == [never.id]
    assert statuses(ctx, [never]) == ["deleted"]
    assert compute.casts == []


def test_unscheduled_and_deleted_instances_are_left_to_roll_off(
    ctx, keeper, instance
):
    schedule = make_schedule(ctx, instance, keep_count=1)
    on_demand = snap(ctx, instance, None, day(21))
    assert keeper.after_success(ctx, on_demand) == []
    rows = [snap(ctx, instance, schedule, day(n)) for n in (20, 21)]
    db_api.instance_mark_deleted(ctx, instance.uuid, NOW)
    assert keeper.after_success(ctx, rows[-1]) == []


# The roll-off


def set_max_age(days):
    CONF.set_override("unscheduled_max_age", days, group="conductor")


@pytest.fixture
def max_age_10_days():
    set_max_age(10)
    yield
    CONF.clear_override("unscheduled_max_age", group="conductor")


def test_unscheduled_ones_roll_off_by_age_keeping_the_newest(
    ctx, keeper, instance, max_age_10_days
):
    old = [snap(ctx, instance, None, day(n)) for n in (1, 2)]
    failed_old = snap(ctx, instance, None, day(3), status="error")
    recent = snap(ctx, instance, None, day(20))
    assert sorted(keeper.roll_off(ctx)) == sorted(
        [old[0].id, old[1].id, failed_old.id]
    )
    assert statuses(ctx, [recent]) == ["available"]


def test_the_newest_of_a_live_server_stays_whatever_its_age(
    ctx, keeper, instance, max_age_10_days
):
    schedule = make_schedule(ctx, instance, keep_count=3)
    only = snap(ctx, instance, schedule, day(1))
    db_api.schedule_delete(ctx, schedule.id)
    assert db_api.snapshot_get(ctx, only.id).schedule_id is None
    older = snap(ctx, instance, None, day(2), status="error")
    assert keeper.roll_off(ctx) == [older.id]
    assert statuses(ctx, [only]) == ["available"]


def test_kept_snapshots_of_a_deleted_server_go_after_the_max_age(
    ctx, keeper, instance, max_age_10_days
):
    db_api.instance_create_or_update(
        ctx, instance.uuid, {"keep_after_delete": True}
    )
    schedule = make_schedule(ctx, instance, keep_count=3)
    old = snap(ctx, instance, schedule, day(1))
    recent = snap(ctx, instance, schedule, day(20))
    db_api.instance_mark_deleted(ctx, instance.uuid, NOW)
    # The newest goes too once old enough: the server is gone.
    assert keeper.roll_off(ctx) == [old.id]
    assert statuses(ctx, [recent]) == ["available"]


def test_a_deleted_server_that_keeps_nothing_loses_them_at_once(
    ctx, keeper, instance, max_age_10_days
):
    schedule = make_schedule(ctx, instance, keep_count=3)
    rows = [snap(ctx, instance, schedule, day(n)) for n in (20, 21)]
    db_api.instance_mark_deleted(ctx, instance.uuid, NOW)
    assert sorted(keeper.roll_off(ctx)) == sorted(row.id for row in rows)


def test_max_age_zero_keeps_them_until_deleted_by_hand(ctx, keeper, instance):
    set_max_age(0)
    try:
        db_api.instance_create_or_update(
            ctx, instance.uuid, {"keep_after_delete": True}
        )
        snap(ctx, instance, None, day(1))
        assert keeper.roll_off(ctx) == []
        db_api.instance_mark_deleted(ctx, instance.uuid, NOW)
        assert keeper.roll_off(ctx) == []
    finally:
        CONF.clear_override("unscheduled_max_age", group="conductor")


# Through the conductor's RPC endpoint


@pytest.fixture
def conductor(keeper):
    return manager_mod.ConductorManager(retention=keeper)


def test_a_result_applies_retention_and_finishes_its_operation(
    ctx, conductor, compute, instance
):
    schedule = make_schedule(ctx, instance, keep_count=1)
    older = snap(ctx, instance, schedule, day(20))
    taking = snap(ctx, instance, schedule, day(21), status="creating")
    operation = db_api.operation_create(
        ctx,
        {
            "type": "snapshot",
            "instance_uuid": instance.uuid,
            "snapshot_id": taking.id,
        },
    )
    conductor.snapshot_created(
        ctx, taking.id, dict(RESULT, quiesced=True, pause_seconds=0.1)
    )
    assert statuses(ctx, [older, taking]) == ["deleting", "available"]
    assert db_api.operation_get(ctx, operation.id).state == "succeeded"
    assert [call[2] for call in compute.of("delete")] == [older.id]


def test_batched_reports_are_each_recorded_and_retention_runs_once(
    ctx, conductor, compute, instance, monkeypatch
):
    schedule = make_schedule(ctx, instance, keep_count=1)
    older = snap(ctx, instance, schedule, day(19))
    first = snap(ctx, instance, schedule, day(20), status="creating")
    second = snap(ctx, instance, schedule, day(21), status="creating")
    other = db_fixtures.make_instance(
        ctx, host="compute-1", backend="file", snapshot_enabled=True
    )
    failing = snap(ctx, other, None, day(21), status="creating")
    runs = []
    after_successes = conductor.retention.after_successes
    monkeypatch.setattr(
        conductor.retention,
        "after_successes",
        lambda context, rows: (
            runs.append([row.id for row in rows])
            or after_successes(context, rows)
        ),
    )
    result = dict(RESULT, size_bytes=None, quiesced=False, pause_seconds=0)
    conductor.snapshots_reported(
        ctx,
        [
            {"snapshot_id": first.id, "result": result},
            {"snapshot_id": second.id, "result": result},
            {"snapshot_id": failing.id, "error": "Disks unsupported: x"},
            # Measured after the report.
            {"snapshot_id": second.id, "size_bytes": 4096},
        ],
    )
    assert statuses(ctx, [older, first, second, failing]) == [
        "deleting",
        "deleting",
        "available",
        "error",
    ]
    # Once for the instance and schedule, after the newest of the batch.
    assert runs == [[second.id]]
    assert db_api.snapshot_get(ctx, second.id).size_bytes == 4096
    assert sorted(call[2] for call in compute.of("delete")) == sorted(
        [older.id, first.id]
    )


def test_one_batch_applies_each_instances_retention(
    ctx, conductor, compute, instance
):
    """A batch over several instances and schedules: each pair's own
    policy, read together, decides; a result that no longer fits its
    row changes nothing."""
    other = db_fixtures.make_instance(
        ctx, host="compute-1", backend="file", snapshot_enabled=True
    )
    mine = make_schedule(ctx, instance, keep_count=1)
    theirs = make_schedule(ctx, other, keep_count=2)
    my_old = snap(ctx, instance, mine, day(19))
    their_old = [snap(ctx, other, theirs, day(n)) for n in (18, 19)]
    my_new = snap(ctx, instance, mine, day(20), status="creating")
    their_new = snap(ctx, other, theirs, day(20), status="creating")
    late = snap(ctx, other, None, day(20), status="error")
    result = dict(RESULT, size_bytes=None, quiesced=False, pause_seconds=0)
    conductor.snapshots_reported(
        ctx,
        [
            {"snapshot_id": my_new.id, "result": result},
            {"snapshot_id": late.id, "result": result},
            {"snapshot_id": their_new.id, "result": result},
        ],
    )
    assert statuses(ctx, [my_old, my_new, late, their_new]) == [
        "deleting",
        "available",
        "error",
        "available",
    ]
    assert statuses(ctx, their_old) == ["deleting", "available"]
    assert sorted(call[2] for call in compute.of("delete")) == sorted(
        [my_old.id, their_old[0].id]
    )


def test_a_size_reported_first_is_not_overwritten(ctx, conductor, instance):
    taking = snap(ctx, instance, None, day(21), status="creating")
    conductor.snapshots_reported(
        ctx, [{"snapshot_id": taking.id, "size_bytes": 8192}]
    )
    result = dict(RESULT, size_bytes=None, quiesced=False, pause_seconds=0)
    conductor.snapshots_reported(
        ctx, [{"snapshot_id": taking.id, "result": result}]
    )
    row = db_api.snapshot_get(ctx, taking.id)
    assert (row.status, row.size_bytes) == ("available", 8192)


@pytest.mark.parametrize("outcome", ["deleted", "failed"])
def test_a_delete_result_finishes_its_operation(
    ctx, conductor, instance, outcome
):
    row = snap(ctx, instance, None, day(20))
    db_api.snapshot_update_status(ctx, row.id, "deleting")
    operation = db_api.operation_create(
        ctx,
        {
            "type": "delete",
            "instance_uuid": instance.uuid,
            "snapshot_id": row.id,
        },
    )
    # No restore can name a snapshot being deleted (the restore would
    # hold it), so none is ever the delete's to finish.
    with pytest.raises(exception.SnapshotNotRestorable):
        db_api.operation_create(
            ctx,
            {
                "type": "restore",
                "instance_uuid": instance.uuid,
                "snapshot_id": row.id,
            },
        )
    if outcome == "deleted":
        conductor.snapshot_deleted(ctx, row.id, 4096)
    else:
        conductor.snapshot_failed(ctx, row.id, "rbd error 2: gone")
    op = db_api.operation_get(ctx, operation.id)
    if outcome == "deleted":
        assert op.state == "succeeded"
    else:
        assert op.state == "failed" and op.error == "rbd error 2: gone"
