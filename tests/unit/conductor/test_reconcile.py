"""Reconciliation: the pure decisions exhaustively, and a pass on SQLite
against a stand-in for the agents (the real ones, with real storage, are
in tests/functional/conductor/test_reconcile.py)."""

import datetime
import itertools
import types

import pytest

from snapmanager_nova import conf as sm_conf
from snapmanager_nova.conductor import reconcile
from snapmanager_nova.conductor import retries
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from tests.unit.conductor import compute_fakes
from tests.unit.db import conftest as db_conftest
from tests.unit.db import fixtures as db_fixtures

engine = db_conftest.engine
ctx = db_conftest.ctx

CONF = sm_conf.CONF
TIMEOUT = datetime.timedelta(seconds=3600)


# What to do with a stuck snapshot


@pytest.mark.parametrize(
    ("status", "stored", "expected"),
    [
        ("deleting", True, reconcile.DELETE_AGAIN),
        ("deleting", False, reconcile.MARK_DELETED),
        ("creating", True, reconcile.DISCARD),
        ("creating", False, reconcile.RETRY),
        ("available", True, None),
        ("available", False, None),
        ("error", True, None),
        ("error", False, None),
        ("deleted", True, None),
        ("deleted", False, None),
    ],
)
def test_plan_stuck(status, stored, expected):
    row = types.SimpleNamespace(id="s1", status=status, snapshot_index=7)
    actions = reconcile.plan_stuck([row], {7} if stored else {3, 8})
    assert actions == ([reconcile.Action(expected, "s1")] if expected else [])


@pytest.mark.parametrize(
    ("holder", "expected"),
    [
        # Held where it was listed, or by the cluster: as listed.
        ("compute-2", reconcile.MARK_DELETED),
        (None, reconcile.MARK_DELETED),
        # Held by the host the server left: asked there again.
        ("compute-1", reconcile.DELETE_AGAIN),
    ],
)
def test_a_deletion_held_elsewhere_is_asked_of_its_holder(holder, expected):
    row = types.SimpleNamespace(
        id="s1", status="deleting", snapshot_index=7, host=holder
    )
    actions = reconcile.plan_stuck([row], {3}, "compute-2")
    assert actions == [reconcile.Action(expected, "s1")]


def test_plan_stuck_keeps_the_order_and_each_row_on_its_own():
    rows = [
        types.SimpleNamespace(id=f"s{i}", status=status, snapshot_index=i)
        for i, status in enumerate(
            ["creating", "deleting", "creating", "deleting"]
        )
    ]
    assert [a.kind for a in reconcile.plan_stuck(rows, {0, 1})] == [
        reconcile.DISCARD,
        reconcile.DELETE_AGAIN,
        reconcile.RETRY,
        reconcile.MARK_DELETED,
    ]


# Orphans are deleted only once unknown for the timeout

T0 = datetime.datetime(2026, 11, 22, tzinfo=datetime.UTC)


def at(seconds):
    return T0 + datetime.timedelta(seconds=seconds)


def test_an_orphan_is_due_after_the_timeout():
    watch = reconcile.OrphanWatch()
    assert watch.observe("a", {5}, at(0), TIMEOUT) == []
    assert watch.observe("a", {5}, at(3599), TIMEOUT) == []
    assert watch.observe("a", {5, 6}, at(3600), TIMEOUT) == [5]
    assert watch.observe("a", {5, 6}, at(7200), TIMEOUT) == [5, 6]


def test_an_index_known_again_starts_over():
    watch = reconcile.OrphanWatch()
    watch.observe("a", {5}, at(0), TIMEOUT)
    # A row for it turned up (it was in flight after all).
    assert watch.observe("a", set(), at(100), TIMEOUT) == []
    assert watch.observe("a", {5}, at(3600), TIMEOUT) == []
    assert watch.observe("a", {5}, at(7200), TIMEOUT) == [5]


def test_instances_are_watched_apart_and_forgotten_on_deletion():
    watch = reconcile.OrphanWatch()
    watch.observe("a", {1}, at(0), TIMEOUT)
    watch.observe("b", {1}, at(1000), TIMEOUT)
    # Looking at b again does not reset a.
    watch.observe("b", {1}, at(2000), TIMEOUT)
    assert watch.observe("a", {1}, at(3600), TIMEOUT) == [1]
    assert watch.observe("b", {1}, at(3600), TIMEOUT) == []
    watch.forget("a", 1)
    assert watch.observe("a", {1}, at(3700), TIMEOUT) == []


def test_orphan_timing_exhaustively():
    # For every pattern of presence over five passes an hour apart: an
    # index is due exactly when it was unknown in this pass and in every
    # pass of the last hour, without a gap.
    times = [at(1800 * i) for i in range(5)]
    for pattern in itertools.product([False, True], repeat=5):
        watch = reconcile.OrphanWatch()
        since = None
        for present, now in zip(pattern, times, strict=True):
            due = watch.observe("x", {1} if present else set(), now, TIMEOUT)
            since = (since or now) if present else None
            expected = [1] if present and now - since >= TIMEOUT else []
            assert due == expected, pattern


# A pass against the stand-in agents


@pytest.fixture
def compute():
    return compute_fakes.FakeComputeAPI(backends=("file",))


@pytest.fixture
def later():
    """The reconciler's now: past the timeout of everything made now."""
    return models.utcnow() + datetime.timedelta(
        seconds=CONF.conductor.operation_timeout + 1
    )


@pytest.fixture
def reconciler(compute, later):
    dispatcher = retries.SnapshotDispatcher(
        compute, now=lambda: later, jitter=lambda: 0.0
    )
    return reconcile.Reconciler(compute, dispatcher, now=lambda: later)


@pytest.fixture
def instance(ctx):
    compute_fakes.agent_up(ctx)
    return db_fixtures.make_instance(
        ctx, host="compute-1", backend="file", snapshot_enabled=True
    )


def stuck(ctx, instance, status, schedule=True):
    sched = db_fixtures.make_schedule(ctx, instance) if schedule else None
    index = db_api.instance_allocate_snapshot_index(ctx, instance.uuid)
    row = db_fixtures.make_snapshot(
        ctx, instance, sched, snapshot_index=index, backend="file"
    )
    if status == "deleting":
        db_api.snapshot_update_status(
            ctx, row.id, "available", disks=[{"path": "/s"}]
        )
        db_api.snapshot_update_status(ctx, row.id, "deleting")
    return db_api.snapshot_get(ctx, row.id)


def test_each_stuck_row_is_settled(ctx, reconciler, compute, instance):
    lost_delete = stuck(ctx, instance, "deleting")
    done_delete = stuck(ctx, instance, "deleting")
    lost_create = stuck(ctx, instance, "creating")
    lost_result = stuck(ctx, instance, "creating")
    stored = compute.stored[(instance.uuid, "file")]
    stored.update({lost_delete.snapshot_index, lost_result.snapshot_index})

    done = reconciler.run(ctx)

    assert sorted(done) == sorted(
        [
            (reconcile.DELETE_AGAIN, lost_delete.id),
            (reconcile.MARK_DELETED, done_delete.id),
            (reconcile.RETRY, lost_create.id),
            (reconcile.DISCARD, lost_result.id),
        ]
    )
    rows = {
        row.id: row
        for row in db_api.snapshot_list(ctx, instance_uuid=instance.uuid)
    }
    assert rows[lost_delete.id].status == "deleting"
    assert rows[done_delete.id].status == "deleted"
    assert rows[lost_create.id].status == "creating"
    assert rows[lost_create.id].attempts == 1
    assert rows[lost_create.id].next_attempt_at is not None
    assert rows[lost_result.id].status == "deleting"
    assert "result was lost" in rows[lost_result.id].error
    assert sorted(call[2] for call in compute.of("delete")) == sorted(
        [lost_delete.id, lost_result.id]
    )


def test_a_lost_on_demand_snapshot_fails_with_its_operation(
    ctx, reconciler, instance
):
    row = stuck(ctx, instance, "creating", schedule=False)
    op = db_api.operation_create(
        ctx,
        {
            "type": "snapshot",
            "instance_uuid": instance.uuid,
            "snapshot_id": row.id,
        },
    )
    reconciler.run(ctx)
    assert db_api.snapshot_get(ctx, row.id).status == "error"
    assert db_api.operation_get(ctx, op.id).state == "failed"


def test_a_finished_delete_finishes_its_operation(ctx, reconciler, instance):
    row = stuck(ctx, instance, "deleting")
    op = db_api.operation_create(
        ctx,
        {
            "type": "delete",
            "instance_uuid": instance.uuid,
            "snapshot_id": row.id,
        },
    )
    reconciler.run(ctx)
    assert db_api.operation_get(ctx, op.id).state == "succeeded"


def test_rows_within_the_timeout_or_waiting_to_retry_are_not_stuck(
    ctx, compute, instance
):
    fresh = stuck(ctx, instance, "creating")
    waiting = stuck(ctx, instance, "creating")
    soon = models.utcnow() + datetime.timedelta(seconds=10)
    db_api.snapshot_defer(ctx, waiting.id, 0, soon, "busy")
    dispatcher = retries.SnapshotDispatcher(compute)
    assert reconcile.Reconciler(compute, dispatcher).run(ctx) == []
    much_later = models.utcnow() + datetime.timedelta(days=1)
    dispatcher = retries.SnapshotDispatcher(compute, now=lambda: much_later)
    done = reconcile.Reconciler(
        compute, dispatcher, now=lambda: much_later
    ).run(ctx)
    assert done == [(reconcile.RETRY, fresh.id)]


@pytest.mark.parametrize("trouble", ["down", "silent"])
def test_an_agent_that_cannot_answer_is_left_alone(
    ctx, reconciler, compute, instance, trouble
):
    row = stuck(ctx, instance, "deleting")
    if trouble == "down":
        db_api.instance_create_or_update(ctx, instance.uuid, {"host": "gone"})
    else:
        compute.silent_hosts.add("compute-1")
    assert reconciler.run(ctx) == []
    assert db_api.snapshot_get(ctx, row.id).status == "deleting"
    assert compute.casts == []


def test_an_unknown_backend_is_looked_for_on_every_one_the_agent_has(
    ctx, reconciler, compute, instance
):
    db_api.instance_create_or_update(ctx, instance.uuid, {"backend": None})
    index = db_api.instance_allocate_snapshot_index(ctx, instance.uuid)
    row = db_fixtures.make_snapshot(ctx, instance, snapshot_index=index)
    compute.stored[(instance.uuid, "file")].add(index)
    # The agent has only "file": asking for "rbd" is refused, and that
    # is not a failure of the pass.
    assert reconciler.run(ctx) == [(reconcile.DISCARD, row.id)]


def test_an_orphan_is_deleted_with_a_row_of_its_own(
    ctx, compute, instance, later
):
    known = stuck(ctx, instance, "creating")
    db_api.snapshot_update_status(ctx, known.id, "available")
    gone = stuck(ctx, instance, "deleting")
    db_api.snapshot_update_status(ctx, gone.id, "deleted")
    # 41: no row at all; the deleted row's index: still in storage.
    orphans = {41, gone.snapshot_index}
    compute.stored[(instance.uuid, "file")].update(
        {known.snapshot_index, *orphans}
    )
    dispatcher = retries.SnapshotDispatcher(compute)
    reconciler = reconcile.Reconciler(compute, dispatcher, now=lambda: later)
    # First seen: not yet.
    assert reconciler.run(ctx) == []
    reconciler.now = lambda: later + TIMEOUT
    done = reconciler.run(ctx)
    assert [kind for kind, _ in done] == ["orphan", "orphan"]
    adopted = [db_api.snapshot_get(ctx, row_id) for _, row_id in done]
    assert {row.snapshot_index for row in adopted} == orphans
    for row in adopted:
        assert row.status == "deleting" and row.schedule_id is None
        assert "no record" in row.error
    assert sorted(compute.of("delete")) == sorted(
        ("compute-1", instance.uuid, row.id, row.snapshot_index)
        for row in adopted
    )
    # Their rows know them now: not adopted twice (the fake storage
    # still has them, so their deletes are asked for again instead).
    assert sorted(reconciler.run(ctx)) == sorted(
        (reconcile.DELETE_AGAIN, row.id) for row in adopted
    )


def test_only_instances_that_can_have_snapshots_are_asked(
    ctx, reconciler, compute, instance
):
    never = db_fixtures.make_instance(ctx, host="compute-1", backend="file")
    gone = stuck(ctx, instance, "deleting")
    db_api.snapshot_update_status(ctx, gone.id, "deleted")
    keeping = db_fixtures.make_instance(ctx, host="compute-1", backend="file")
    kept = stuck(ctx, keeping, "deleting")
    db_api.snapshot_update_status(ctx, kept.id, "deleted")
    stuck(ctx, keeping, "creating")
    for row in (instance, keeping):
        db_api.instance_mark_deleted(ctx, row.uuid, models.utcnow())
    reconciler.run(ctx)
    # Not the one never snapshotted, nor the deleted one with nothing
    # left; the one still keeping a snapshot, twice (stuck row, orphans).
    assert compute.listed == [keeping.uuid, keeping.uuid]
    assert never.uuid not in compute.listed


def test_a_pass_asks_about_a_bounded_slice_and_the_next_goes_on(
    ctx, reconciler, compute
):
    compute_fakes.agent_up(ctx)
    uuids = []
    for _ in range(5):
        row = db_fixtures.make_instance(ctx, host="compute-1", backend="file")
        db_api.instance_allocate_snapshot_index(ctx, row.uuid)
        uuids.append(row.uuid)
    CONF.set_override("reconcile_batch_size", 2, group="conductor")
    try:
        passes = []
        for _ in range(4):
            compute.listed.clear()
            reconciler.run(ctx)
            passes.append(list(compute.listed))
    finally:
        CONF.clear_override("reconcile_batch_size", group="conductor")
    # Two a pass, in UUID order, then over again from the start: never
    # more than the slice, and each instance once per round.
    assert [len(listed) for listed in passes] == [2, 2, 1, 2]
    assert passes[0] + passes[1] + passes[2] == sorted(uuids)
    assert passes[3] == sorted(uuids)[:2]
