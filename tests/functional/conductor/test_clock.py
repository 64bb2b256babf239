"""The schedule clock on a real database (SQLite and MariaDB).

The compute side is a recorder here: what matters is which snapshot rows
a tick writes and what it would cast. The RPC boundary itself is tested in
tests/functional/test_conductor_service.py and the agent's tests.
"""

import datetime
import threading

import oslo_messaging as messaging
import pytest

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import context as sm_context
from snapmanager_nova.conductor import clock as clock_mod
from snapmanager_nova.db import api as db_api
from tests.unit.db import fixtures as db_fixtures

CONF = sm_conf.CONF
UTC = datetime.UTC


class RecordingComputeAPI:
    def __init__(self):
        self.casts = []
        self.lock = threading.Lock()

    def create_snapshot(
        self, context, host, instance_uuid, snapshot_id, index, quiesce
    ):
        with self.lock:
            self.casts.append((host, instance_uuid, snapshot_id, index))


@pytest.fixture
def ctx(database_url):
    with db_fixtures.database(database_url, create_schema=True):
        yield sm_context.get_admin_context()


def at(*args):
    return datetime.datetime(*args, tzinfo=UTC)


def make_clock(when):
    compute = RecordingComputeAPI()
    return clock_mod.ScheduleClock(compute, now=lambda: when), compute


def enabled_instance(ctx, host="compute-1", project_id="p1"):
    if host:
        # The clock casts only to an agent that is up.
        db_api.service_heartbeat(ctx, "snapmanager-compute", host)
    return db_fixtures.make_instance(
        ctx,
        project_id=project_id,
        host=host,
        backend="file",
        snapshot_enabled=True,
    )


def daily(ctx, instance, next_run_at, spec="daily@02:00", tz="UTC"):
    return db_fixtures.make_schedule(
        ctx, instance, spec=spec, timezone=tz, next_run_at=next_run_at
    )


def test_tick_takes_a_due_window_once(ctx):
    instance = enabled_instance(ctx)
    sched = daily(ctx, instance, at(2026, 11, 22, 2, 0))

    clock, compute = make_clock(at(2026, 11, 22, 1, 59))
    assert clock.tick(ctx) == []

    clock, compute = make_clock(at(2026, 11, 22, 2, 0, 30))
    (dispatch,) = clock.tick(ctx)
    snapshot = db_api.snapshot_get(ctx, dispatch.snapshot_id)
    assert snapshot.status == "creating"
    assert snapshot.window_start == at(2026, 11, 22, 2, 0)
    assert snapshot.snapshot_index == 1
    assert compute.casts == [("compute-1", instance.uuid, snapshot.id, 1)]
    row = db_api.schedule_get(ctx, sched.id)
    assert row.next_run_at == at(2026, 11, 23, 2, 0)
    assert row.last_run_at == at(2026, 11, 22, 2, 0)
    # The same moment again: nothing is due any more.
    assert clock.tick(ctx) == []


def test_missed_windows_are_caught_up_once(ctx):
    instance = enabled_instance(ctx)
    sched = daily(ctx, instance, at(2026, 11, 17, 2, 0))
    clock, _ = make_clock(at(2026, 11, 22, 9, 0))
    (dispatch,) = clock.tick(ctx)
    snapshot = db_api.snapshot_get(ctx, dispatch.snapshot_id)
    assert snapshot.window_start == at(2026, 11, 22, 2, 0)
    assert db_api.schedule_get(ctx, sched.id).next_run_at == at(
        2026, 11, 23, 2, 0
    )
    assert len(db_api.snapshot_list(ctx)) == 1


def test_windows_follow_the_schedule_timezone(ctx):
    instance = enabled_instance(ctx)
    # 02:30 Berlin does not exist on 2026-03-29: the run is at 03:00 CEST.
    daily(
        ctx,
        instance,
        at(2026, 3, 29, 0, 0),
        spec="daily@02:30",
        tz="Europe/Berlin",
    )
    clock, _ = make_clock(at(2026, 3, 29, 1, 0, 5))
    (dispatch,) = clock.tick(ctx)
    snapshot = db_api.snapshot_get(ctx, dispatch.snapshot_id)
    assert snapshot.window_start == at(2026, 3, 29, 1, 0)


def test_a_replayed_window_is_not_taken_twice(ctx):
    instance = enabled_instance(ctx)
    sched = daily(ctx, instance, at(2026, 11, 22, 2, 0))
    clock, compute = make_clock(at(2026, 11, 22, 2, 1))
    assert len(clock.tick(ctx)) == 1
    # As if a conductor had crashed before its commit was seen, or an
    # operator had moved next_run_at back: the window is refused.
    db_api.schedule_update(
        ctx, sched.id, {"next_run_at": at(2026, 11, 22, 2, 0)}
    )
    assert clock.tick(ctx) == []
    assert len(compute.casts) == 1
    assert len(db_api.snapshot_list(ctx)) == 1
    # The refused window did not use up a snapshot index.
    assert db_api.instance_get(ctx, instance.uuid).snapshot_index == 1


def test_two_schedules_of_one_server_due_together_take_one_each(ctx):
    # Daily and weekly at the same minute: the batch records one of
    # them, the other is recorded on its own, each with its own index.
    instance = enabled_instance(ctx)
    daily(ctx, instance, at(2026, 11, 22, 2, 0))
    daily(ctx, instance, at(2026, 11, 22, 2, 0), spec="weekly@sun@02:00")
    clock, compute = make_clock(at(2026, 11, 22, 2, 0, 30))
    dispatches = clock.tick(ctx)
    rows = [db_api.snapshot_get(ctx, d.snapshot_id) for d in dispatches]
    assert sorted(row.snapshot_index for row in rows) == [1, 2]
    assert len({row.schedule_id for row in rows}) == 2
    assert {row.window_start for row in rows} == {at(2026, 11, 22, 2, 0)}
    assert len(compute.casts) == 2
    assert clock.tick(ctx) == []


def test_project_default_covers_instances_without_their_own(ctx):
    own = enabled_instance(ctx)
    covered = [enabled_instance(ctx) for _ in range(2)]
    switched_off = db_fixtures.make_instance(
        ctx, project_id="p1", host="compute-1"
    )
    other_project = enabled_instance(ctx, project_id="p2")
    daily(ctx, own, at(2026, 11, 23, 2, 0))
    db_api.schedule_create(
        ctx,
        {
            "project_id": "p1",
            "is_project_default": True,
            "family": "daily",
            "spec": "daily@02:00",
            "next_run_at": at(2026, 11, 22, 2, 0),
        },
    )
    clock, _ = make_clock(at(2026, 11, 22, 2, 0))
    dispatched = {d.instance_uuid for d in clock.tick(ctx)}
    assert dispatched == {i.uuid for i in covered}
    assert own.uuid not in dispatched
    assert switched_off.uuid not in dispatched
    assert other_project.uuid not in dispatched


def test_instance_without_host_fails_clearly(ctx):
    instance = enabled_instance(ctx, host=None)
    daily(ctx, instance, at(2026, 11, 22, 2, 0))
    clock, compute = make_clock(at(2026, 11, 22, 2, 0))
    (dispatch,) = clock.tick(ctx)
    snapshot = db_api.snapshot_get(ctx, dispatch.snapshot_id)
    assert snapshot.status == "error"
    assert "no compute host" in snapshot.error
    assert compute.casts == []


def test_a_spec_that_no_longer_parses_disables_its_schedule(ctx):
    instance = enabled_instance(ctx)
    sched = daily(ctx, instance, at(2026, 11, 22, 2, 0), tz="Mars/Base")
    clock, _ = make_clock(at(2026, 11, 22, 2, 0))
    assert clock.tick(ctx) == []
    assert db_api.schedule_get(ctx, sched.id).enabled is False


def test_deleted_instances_are_not_snapshotted(ctx):
    instance = enabled_instance(ctx)
    daily(ctx, instance, at(2026, 11, 22, 2, 0))
    db_api.instance_create_or_update(
        ctx, instance.uuid, {"deleted_at": at(2026, 11, 21)}
    )
    clock, _ = make_clock(at(2026, 11, 22, 2, 0))
    assert clock.tick(ctx) == []


@pytest.fixture
def small_batches():
    CONF.set_override("claim_batch_size", 3, group="conductor")
    yield
    CONF.clear_override("claim_batch_size", group="conductor")


def test_a_tick_claims_batch_after_batch_until_nothing_is_due(
    ctx, small_batches
):
    for _ in range(7):
        daily(ctx, enabled_instance(ctx), at(2026, 11, 22, 2, 0))
    clock, compute = make_clock(at(2026, 11, 22, 2, 0))
    # Three transactions of at most 3 claims: 3, 3 and 1 (not full).
    assert len(clock.tick(ctx)) == 7
    assert len(compute.casts) == 7
    assert clock.tick(ctx) == []


def test_a_tick_stops_claiming_once_its_time_slice_is_used(
    ctx, small_batches, monkeypatch
):
    for _ in range(5):
        daily(ctx, enabled_instance(ctx), at(2026, 11, 22, 2, 0))
    # Every look at the clock finds a slice's worth of time gone.
    seconds = iter(range(0, 10**6, CONF.conductor.claim_time_slice))
    monkeypatch.setattr(clock_mod.time, "monotonic", lambda: next(seconds))
    clock, _ = make_clock(at(2026, 11, 22, 2, 0))
    assert len(clock.tick(ctx)) == 3
    assert len(clock.tick(ctx)) == 2
    assert clock.tick(ctx) == []


class BatchingComputeAPI(RecordingComputeAPI):
    """An agent API of RPC 1.1: records each create_snapshots message."""

    def __init__(self, refuse=False):
        super().__init__()
        self.messages = []
        self.refuse = refuse

    def create_snapshots(self, context, host, snapshots):
        if self.refuse:
            raise messaging.MessagingException("the bus is down")
        self.messages.append((host, [s["snapshot_id"] for s in snapshots]))


def test_casts_go_to_each_host_in_batches(ctx):
    CONF.set_override("cast_batch_size", 2, group="conductor")
    try:
        hosts = ["compute-1"] * 3 + ["compute-2"] * 2
        for host in hosts:
            daily(ctx, enabled_instance(ctx, host), at(2026, 11, 22, 2, 0))
        compute = BatchingComputeAPI()
        clock = clock_mod.ScheduleClock(
            compute, now=lambda: at(2026, 11, 22, 2, 0)
        )
        dispatches = clock.tick(ctx)
    finally:
        CONF.clear_override("cast_batch_size", group="conductor")
    assert compute.casts == []  # no single casts
    sizes = sorted((host, len(ids)) for host, ids in compute.messages)
    assert sizes == [("compute-1", 1), ("compute-1", 2), ("compute-2", 2)]
    sent = {i for _host, ids in compute.messages for i in ids}
    assert sent == {dispatch.snapshot_id for dispatch in dispatches}
    for host, ids in compute.messages:
        for snapshot_id in ids:
            snapshot = db_api.snapshot_get(ctx, snapshot_id)
            assert db_api.instance_get(ctx, snapshot.instance_uuid).host == (
                host
            )


def test_a_refused_batch_puts_its_snapshots_back_for_a_retry(ctx):
    for _ in range(2):
        daily(ctx, enabled_instance(ctx), at(2026, 11, 22, 2, 0))
    compute = BatchingComputeAPI(refuse=True)
    clock = clock_mod.ScheduleClock(
        compute, now=lambda: at(2026, 11, 22, 2, 0)
    )
    dispatches = clock.tick(ctx)
    assert len(dispatches) == 2
    for dispatch in dispatches:
        snapshot = db_api.snapshot_get(ctx, dispatch.snapshot_id)
        assert snapshot.status == "creating"
        assert snapshot.next_attempt_at is not None
        assert "could not be sent to the agent on compute-1" in snapshot.error


def test_concurrent_conductors_take_each_window_once(mariadb_database_url):
    """Four conductors tick at once over 40 due schedules on MariaDB."""
    CONF.set_override("claim_batch_size", 5, group="conductor")
    with db_fixtures.database(mariadb_database_url, create_schema=True):
        ctx = sm_context.get_admin_context()
        uuids = set()
        for _ in range(40):
            instance = enabled_instance(ctx)
            uuids.add(instance.uuid)
            daily(ctx, instance, at(2026, 11, 22, 2, 0))
        compute = RecordingComputeAPI()
        barrier = threading.Barrier(4)
        errors = []

        def conductor():
            clock = clock_mod.ScheduleClock(
                compute, now=lambda: at(2026, 11, 22, 2, 0, 1)
            )
            my_ctx = sm_context.get_admin_context()
            try:
                barrier.wait()
                while clock.tick(my_ctx):
                    pass
            except Exception as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=conductor) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        CONF.clear_override("claim_batch_size", group="conductor")
        assert errors == []
        snapshots = db_api.snapshot_list(ctx)
        assert len(snapshots) == 40
        assert {s.instance_uuid for s in snapshots} == uuids
        assert sorted(c[1] for c in compute.casts) == sorted(uuids)
