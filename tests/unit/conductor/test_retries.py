"""Retries: the backoff, which failures are transient, and the dispatcher
(on SQLite, with a recording stand-in for the agents' RPC API)."""

import datetime
import errno
import itertools

import libvirt
import pytest
import sqlalchemy as sa

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import context as sm_context
from snapmanager_nova import exception
from snapmanager_nova.conductor import manager as manager_mod
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
NOW = datetime.datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


# The backoff


@pytest.mark.parametrize(
    ("retry", "jitter", "expected"),
    [
        (1, 0.0, 15.0),
        (2, 0.0, 30.0),
        (3, 0.0, 60.0),
        (4, 0.0, 120.0),
        (5, 0.0, 240.0),
        (6, 0.0, 450.0),  # 30 * 2**5 = 960 is over the cap of 900
        (7, 0.0, 450.0),
        (1, 0.5, 22.5),
        (4, 0.5, 180.0),
        (6, 0.5, 675.0),
        (1, 0.999, 29.985),
        (6, 0.999, 899.55),
        (10**6, 0.0, 450.0),
    ],
)
def test_backoff_table(retry, jitter, expected):
    assert retries.backoff_delay(retry, 30, 900, jitter) == pytest.approx(
        expected
    )


def test_backoff_stays_in_the_upper_half_of_its_ceiling():
    jitters = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999999]
    for base, cap in itertools.product([1, 7, 30, 60], [1, 10, 900, 3600]):
        for retry in range(1, 40):
            ceiling = min(cap, base * 2 ** (retry - 1))
            delays = [
                retries.backoff_delay(retry, base, cap, jitter)
                for jitter in jitters
            ]
            assert all(ceiling / 2 <= d < ceiling for d in delays)
            # More jitter, longer wait: the draw decides, nothing else.
            assert delays == sorted(delays)


def test_backoff_never_shrinks_from_one_retry_to_the_next():
    for jitter in (0.0, 0.3, 0.99):
        delays = [
            retries.backoff_delay(retry, 30, 900, jitter)
            for retry in range(1, 30)
        ]
        assert delays == sorted(delays)
        assert max(delays) < 900


@pytest.mark.parametrize(
    ("retry", "base", "cap", "jitter", "message"),
    [
        (0, 30, 900, 0.5, "retry 0"),
        (-1, 30, 900, 0.5, "retry -1"),
        (1.5, 30, 900, 0.5, "retry 1.5"),
        (True, 30, 900, 0.5, "retry True"),
        (1, 0, 900, 0.5, "base 0"),
        (1, 30, 0, 0.5, "cap 0"),
        (1, -5, 900, 0.5, "base -5"),
        (1, 30, 900, 1.0, "jitter 1.0"),
        (1, 30, 900, -0.1, "jitter -0.1"),
    ],
)
def test_backoff_refuses_nonsense(retry, base, cap, jitter, message):
    with pytest.raises(ValueError, match=message):
        retries.backoff_delay(retry, base, cap, jitter)


# Which agent errors are transient


def backend_error(origin, code, operation="blockCommit vda"):
    return exception.BackendError(
        operation=operation, origin=origin, origin_code=code, detail="boom"
    )


UUID = "3f1e7c52-8a0e-4c6b-9d0a-2b1f5e4c7a10"

TRANSIENT = [
    exception.BackendTimeout(
        operation="virDomainSnapshotCreateXML",
        timeout=60,
        origin="timeout",
        origin_code=None,
        detail="deadline passed",
    ),
    exception.InstanceBusy(instance_uuid=UUID),
    exception.BlockJobActive(
        instance_uuid=UUID, target="vda", job_type="copy"
    ),
    exception.DisksChanged(instance_uuid=UUID, reason="vda grew"),
    exception.InstanceNotRunningHere(instance_uuid=UUID, host="compute-1"),
    exception.ImageInUse(pool="vms", image=f"{UUID}_disk", watchers="1"),
    backend_error("libvirt", 68, "snapshot of vda: took\nlong failed"),
    backend_error("libvirt", 55),
    backend_error("libvirt", 5),
    backend_error("libvirt", 39),
    backend_error("libvirt", 86),
    backend_error("rbd", errno.EBUSY),
    backend_error("rbd", -errno.EBUSY),
    backend_error("rados", errno.ETIMEDOUT),
    backend_error("rbd", errno.EAGAIN),
    backend_error("rados", errno.ESHUTDOWN),
    exception.QuiesceFailed(instance_uuid=UUID, origin_code=86, detail="x"),
]
PERMANENT = [
    exception.UnsupportedDisks(instance_uuid=UUID, reason="volumes only"),
    exception.QuiesceFailed(instance_uuid=UUID, origin_code=74, detail="x"),
    exception.SnapshotIndexInUse(instance_uuid=UUID, index=3),
    exception.SnapshotStoreError(path="/store", reason="No space left"),
    exception.PathNotAllowed(operation="copy", path="/etc", reason="no"),
    exception.Invalid(reason="backend: 'rbd' is not enabled on this host"),
    exception.InstanceNotShutOff(instance_uuid=UUID, state="running"),
    backend_error("libvirt", 38),
    backend_error("libvirt", 1),
    backend_error("libvirt", None),
    backend_error("rbd", errno.ENOENT),
    backend_error("rbd", errno.ENOSPC),
    backend_error("process", errno.EBUSY),
    backend_error("OSError", errno.ETIMEDOUT),
    "agent on compute-1 restarted while taking it; recovery: discarded",
    "libvirt error 68 somewhere in free text",
    "",
]


@pytest.mark.parametrize("error", TRANSIENT, ids=str)
def test_transient_errors(error):
    assert retries.is_transient(str(error))


@pytest.mark.parametrize("error", PERMANENT, ids=repr)
def test_permanent_errors(error):
    assert not retries.is_transient(str(error))


def test_every_transient_exception_is_recognised_from_its_own_template():
    # A template that changes keeps being recognised: the pattern is built
    # from it. (Its placeholders filled with text that has regex
    # specials, to show they are escaped.)
    for cls in retries.TRANSIENT_EXCEPTIONS:
        names = retries._template(cls).groupindex
        text = cls(**{name: "a.b*(c)" for name in names}).message
        assert retries.is_transient(text), cls


def test_libvirt_codes_are_libvirts():
    assert retries.TRANSIENT_LIBVIRT_CODES == {
        libvirt.VIR_ERR_NO_CONNECT,
        libvirt.VIR_ERR_RPC,
        libvirt.VIR_ERR_OPERATION_INVALID,
        libvirt.VIR_ERR_OPERATION_TIMEOUT,
        libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
    }


# The dispatcher


@pytest.fixture
def compute():
    return compute_fakes.FakeComputeAPI()


@pytest.fixture
def dispatcher(compute):
    return retries.SnapshotDispatcher(
        compute, now=lambda: NOW, jitter=lambda: 0.5
    )


@pytest.fixture
def scheduled(ctx):
    """A scheduled snapshot in flight, of an instance on compute-1."""
    compute_fakes.agent_up(ctx)
    instance = db_fixtures.make_instance(
        ctx, host="compute-1", backend="file", snapshot_enabled=True
    )
    schedule = db_fixtures.make_schedule(ctx, instance)
    index = db_api.instance_allocate_snapshot_index(ctx, instance.uuid)
    return db_fixtures.make_snapshot(
        ctx, instance, schedule, snapshot_index=index
    )


def dispatch(dispatcher, snapshot, busy=None, attempts=0, host="compute-1"):
    return dispatcher.dispatch(
        sm_context.get_admin_context(),
        snapshot.id,
        snapshot.instance_uuid,
        host,
        snapshot.snapshot_index,
        busy=busy,
        attempts=attempts,
    )


def test_an_up_agent_gets_the_cast(ctx, dispatcher, compute, scheduled):
    assert dispatch(dispatcher, scheduled)
    assert compute.of("create") == [
        (
            "compute-1",
            scheduled.instance_uuid,
            scheduled.id,
            scheduled.snapshot_index,
        )
    ]
    assert db_api.snapshot_get(ctx, scheduled.id).attempts == 0


@pytest.mark.parametrize(
    ("why", "reason"),
    [
        ("busy", "Nova task resize_migrating in progress"),
        ("down", "the compute agent on compute-9 is down"),
        ("bus", "the request could not be sent to the agent"),
    ],
)
def test_a_snapshot_that_cannot_go_now_waits_for_a_retry(
    ctx, dispatcher, compute, scheduled, why, reason
):
    host = "compute-1"
    busy = None
    if why == "busy":
        busy = reason
    elif why == "down":
        host = "compute-9"  # never heartbeated
    else:
        compute.refuse_casts = True
    assert not dispatch(dispatcher, scheduled, busy=busy, host=host)
    assert compute.casts == []
    row = db_api.snapshot_get(ctx, scheduled.id)
    assert row.status == "creating"
    assert row.attempts == 1
    # 30 s base, jitter 0.5: 22.5 s.
    assert row.next_attempt_at == NOW + datetime.timedelta(seconds=22.5)
    assert reason in row.error and "try 1 failed" in row.error


def test_a_stale_heartbeat_is_a_down_agent(ctx, engine, dispatcher, scheduled):
    compute_fakes.agent_up(ctx, "old")
    with engine.begin() as connection:
        connection.execute(
            sa.update(models.Service)
            .where(models.Service.host == "old")
            .values(last_seen_at=models.utcnow() - datetime.timedelta(days=1))
        )
    assert not dispatch(dispatcher, scheduled, host="old")
    assert "is down" in db_api.snapshot_get(ctx, scheduled.id).error


def test_retries_are_bounded(ctx, dispatcher, compute, scheduled):
    CONF.set_override("max_retries", 2, group="conductor")
    try:
        busy = "server locked in Nova (maintenance)"
        for attempts in range(2):
            dispatch(dispatcher, scheduled, busy=busy, attempts=attempts)
            # As the retry pass does: the retry is taken up.
            with db_api.context_manager.writer.using(ctx):
                (claimed,) = db_api.snapshot_claim_retries(
                    ctx, NOW + datetime.timedelta(hours=1), 10
                )
            assert claimed.attempts == attempts + 1
        dispatch(dispatcher, scheduled, busy=busy, attempts=2)
    finally:
        CONF.clear_override("max_retries", group="conductor")
    row = db_api.snapshot_get(ctx, scheduled.id)
    assert row.status == "error"
    assert row.error == f"{busy} (given up after 3 tries)"
    assert compute.casts == []


def test_no_host_fails_at_once(ctx, dispatcher, scheduled):
    assert not dispatch(dispatcher, scheduled, host=None)
    row = db_api.snapshot_get(ctx, scheduled.id)
    assert row.status == "error" and "no compute host" in row.error


def test_the_retry_pass_casts_due_ones_with_their_index(
    ctx, compute, scheduled
):
    early = retries.SnapshotDispatcher(
        compute, now=lambda: NOW, jitter=lambda: 0.0
    )
    dispatch(early, scheduled, busy="Nova task rebooting in progress")
    # 15 s later: not yet.
    later = retries.SnapshotDispatcher(
        compute, now=lambda: NOW + datetime.timedelta(seconds=14)
    )
    assert later.retry_due(ctx) == []
    due = retries.SnapshotDispatcher(
        compute, now=lambda: NOW + datetime.timedelta(seconds=15)
    )
    assert due.retry_due(ctx) == [scheduled.id]
    assert compute.of("create") == [
        (
            "compute-1",
            scheduled.instance_uuid,
            scheduled.id,
            scheduled.snapshot_index,
        )
    ]
    row = db_api.snapshot_get(ctx, scheduled.id)
    assert row.next_attempt_at is None and row.attempts == 1
    # Taken once only.
    assert due.retry_due(ctx) == []


def test_the_retry_pass_checks_nova_again(ctx, compute, dispatcher, scheduled):
    dispatch(dispatcher, scheduled, busy="Nova task rebooting in progress")
    db_api.instance_update_inventory(
        ctx,
        scheduled.instance_uuid,
        {"task_state": "migrating"},
        NOW,
    )
    later = retries.SnapshotDispatcher(
        compute,
        now=lambda: NOW + datetime.timedelta(hours=1),
        jitter=lambda: 0.0,
    )
    later.retry_due(ctx)
    row = db_api.snapshot_get(ctx, scheduled.id)
    assert compute.casts == []
    assert row.attempts == 2 and "migrating" in row.error


def test_the_retry_pass_fails_a_deleted_instance(
    ctx, dispatcher, compute, scheduled
):
    dispatch(dispatcher, scheduled, busy="Nova task deleting in progress")
    db_api.instance_mark_deleted(ctx, scheduled.instance_uuid, NOW)
    later = retries.SnapshotDispatcher(
        compute, now=lambda: NOW + datetime.timedelta(hours=1)
    )
    later.retry_due(ctx)
    row = db_api.snapshot_get(ctx, scheduled.id)
    assert row.status == "error" and "deleted" in row.error
    assert compute.casts == []


# Agents' failure reports, through the conductor's RPC endpoint


@pytest.fixture
def conductor(dispatcher):
    return manager_mod.ConductorManager(dispatcher=dispatcher)


TIMEOUT = str(TRANSIENT[0])


def test_a_transient_failure_is_retried(ctx, conductor, scheduled):
    conductor.snapshot_failed(ctx, scheduled.id, TIMEOUT)
    row = db_api.snapshot_get(ctx, scheduled.id)
    assert row.status == "creating" and row.attempts == 1
    assert row.next_attempt_at is not None
    # The same report again (an agent restart) is not a second retry.
    conductor.snapshot_failed(ctx, scheduled.id, TIMEOUT)
    assert db_api.snapshot_get(ctx, scheduled.id).attempts == 1


def test_success_after_a_retry_clears_the_reason(ctx, conductor, scheduled):
    conductor.snapshot_failed(ctx, scheduled.id, TIMEOUT)
    conductor.snapshot_created(
        ctx,
        scheduled.id,
        {"disks": [], "size_bytes": 1, "quiesced": False},
    )
    row = db_api.snapshot_get(ctx, scheduled.id)
    assert row.status == "available" and row.error is None


def test_a_permanent_failure_is_not_retried(ctx, conductor, scheduled):
    conductor.snapshot_failed(ctx, scheduled.id, str(PERMANENT[0]))
    row = db_api.snapshot_get(ctx, scheduled.id)
    assert row.status == "error" and row.attempts == 0


def test_an_on_demand_snapshot_is_not_retried_and_its_operation_fails(
    ctx, conductor
):
    instance = db_fixtures.make_instance(ctx, host="compute-1")
    snapshot = db_fixtures.make_snapshot(ctx, instance, snapshot_index=1)
    operation = db_api.operation_create(
        ctx,
        {
            "type": "snapshot",
            "instance_uuid": instance.uuid,
            "snapshot_id": snapshot.id,
        },
    )
    conductor.snapshot_failed(ctx, snapshot.id, TIMEOUT)
    assert db_api.snapshot_get(ctx, snapshot.id).status == "error"
    op = db_api.operation_get(ctx, operation.id)
    assert op.state == "failed" and op.error == TIMEOUT
