"""The restore step machine, on SQLite with a fake of Nova's compute API.

Nova itself is in tests/functional/conductor/test_restore.py; here the
fake only has to keep the state the steps read and change, so that a
restore can be started, failed and resumed from every recorded step.
"""

import datetime
import types
import uuid

import oslo_messaging as messaging
import pytest

import snapmanager_nova.nova
from snapmanager_nova import conf as sm_conf
from snapmanager_nova import nova_state
from snapmanager_nova.conductor import restore
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from tests.fixtures.services import wait_until
from tests.unit.db import conftest as db_conftest
from tests.unit.db import fixtures as db_fixtures

# A fresh SQLite database per test, as the DB API's own tests have it.
engine = db_conftest.engine
ctx = db_conftest.ctx

CONF = sm_conf.CONF
BINARY = "snapmanager-conductor"
# Heartbeats are stamped with the real time: so is the orchestrators'.
NOW = models.utcnow()


class FakeResponse:
    status_code = 202
    headers = {}

    def json(self):
        return {}


class FakeNova:
    """Nova's compute proxy as far as the orchestrator uses it."""

    def __init__(self, host="compute-1"):
        self.servers = {}
        self.host = host
        self.calls = []

    def add(self, server_id, status="ACTIVE", locked_reason=None):
        self.servers[server_id] = types.SimpleNamespace(
            id=server_id,
            status=status,
            task_state=None,
            is_locked=locked_reason is not None,
            locked_reason=locked_reason,
            compute_host=self.host,
        )

    def get_server(self, server_id):
        server = self.servers[server_id]
        return types.SimpleNamespace(**vars(server))

    def post(self, url, json, microversion):
        self.calls.append(("lock", microversion))
        server_id = url.split("/")[2]
        server = self.servers[server_id]
        server.is_locked = True
        server.locked_reason = json["lock"]["locked_reason"]
        return FakeResponse()

    def unlock_server(self, server):
        self.calls.append(("unlock",))
        self.servers[server.id].is_locked = False
        self.servers[server.id].locked_reason = None

    def stop_server(self, server):
        self.calls.append(("stop",))
        self.servers[server.id].status = "SHUTOFF"

    def start_server(self, server):
        self.calls.append(("start",))
        self.servers[server.id].status = "ACTIVE"

    def wait_for_server(self, server, status, failures, interval, wait):
        assert self.servers[server.id].status == status
        return server


class FakeLazyCompute:
    configured = True

    def __init__(self, nova):
        self.nova = nova

    def get(self):
        return self.nova


class RecordingAgents:
    def __init__(self):
        self.restores = []

    def restore_snapshot(
        self, context, host, operation_id, instance_uuid, backend, index, disks
    ):
        self.restores.append((host, operation_id, backend, index))


@pytest.fixture
def nova():
    return FakeNova()


def orchestrator(nova, host="conductor-1", now=NOW, clock=None):
    return restore.RestoreOrchestrator(
        FakeLazyCompute(nova),
        RecordingAgents(),
        host,
        BINARY,
        now=clock or (lambda: now),
        spawn=lambda func, *args: func(*args),
    )


def restore_request(ctx, nova, status="ACTIVE", locked_reason=None, **held):
    """A restore of an RBD snapshot; ``held``: backend="file" and the
    ``host`` holding it, for a file-backed one."""
    instance = db_fixtures.make_instance(
        ctx, host="compute-1", backend=held.get("backend")
    )
    index = db_api.instance_allocate_snapshot_index(ctx, instance.uuid)
    snapshot = db_fixtures.make_snapshot(ctx, instance, snapshot_index=index)
    disk = {"target": "vda", "pool": "vms", "image": "x_disk"}
    if held:
        disk = {"target": "vda", "path": "/store/x/1/disk"}
    db_api.snapshot_update_status(
        ctx, snapshot.id, "available", disks=[disk], **held
    )
    nova.add(instance.uuid, status=status, locked_reason=locked_reason)
    return db_api.operation_create(
        ctx,
        {
            "type": "restore",
            "instance_uuid": instance.uuid,
            "snapshot_id": snapshot.id,
        },
    )


# The pure parts


def test_steps_run_in_order_from_nothing():
    names = []
    step = restore.step_named(None)
    while step is not None:
        names.append(step.name)
        step = restore.next_step(step)
    assert names == [
        "locking server",
        "copying snapshot",
        "stopping server",
        "restoring disks",
        "starting server",
        "unlocking server",
    ]
    progress = [step.progress for step in restore.STEPS]
    assert progress == sorted(progress)


def test_unknown_step_fails():
    with pytest.raises(restore.RestoreFailed):
        restore.step_named("making tea")


@pytest.mark.parametrize(
    "agent, shown", [(0, 30), (10, 35), (50, 55), (100, 80), (250, 80)]
)
def test_agent_progress_stays_within_its_range(agent, shown):
    assert restore.agent_progress(agent) == shown


def test_lock_reasons_name_operation_and_snapshot():
    operation = types.SimpleNamespace(id="op-1", snapshot_id="snap-1")
    reason = restore.lock_reason(operation)
    assert reason.startswith(nova_state.LOCK_REASON_PREFIX)
    assert "op-1" in reason and "snap-1" in reason
    failed = restore.failed_lock_reason(operation, "disk on fire " * 50)
    assert failed.startswith(nova_state.LOCK_REASON_PREFIX)
    assert "failed: disk on fire" in failed
    assert len(failed) == 255


# The orchestration


def test_restore_runs_to_the_agent_then_on_to_the_end(ctx, nova):
    op = restore_request(ctx, nova)
    conductor = orchestrator(nova)
    assert conductor.poll(ctx) == [op.id]

    row = db_api.operation_get(ctx, op.id)
    assert (row.state, row.step, row.progress) == (
        "running",
        "restoring disks",
        30,
    )
    assert row.conductor_host == "conductor-1"
    server = nova.servers[op.instance_uuid]
    assert server.status == "SHUTOFF"
    assert server.locked_reason == restore.lock_reason(op)
    assert conductor.compute_api.restores == [("compute-1", op.id, "rbd", 1)]
    assert ("lock", "2.73") in nova.calls
    # Waiting for the agent, a pass does nothing more.
    assert conductor.poll(ctx) == []
    assert len(conductor.compute_api.restores) == 1

    assert conductor.agent_progress(ctx, op.id, 50, "restoring disks")
    assert db_api.operation_get(ctx, op.id).progress == 55
    assert conductor.agent_finished(ctx, op.id)
    row = db_api.operation_get(ctx, op.id)
    assert (row.state, row.step, row.progress) == ("succeeded", "done", 100)
    assert server.status == "ACTIVE"
    assert not server.is_locked
    # A duplicated report changes nothing.
    assert conductor.agent_finished(ctx, op.id, "late error")
    assert db_api.operation_get(ctx, op.id).state == "succeeded"


def test_agent_failure_leaves_the_server_stopped_and_locked(ctx, nova):
    op = restore_request(ctx, nova)
    conductor = orchestrator(nova)
    conductor.poll(ctx)
    conductor.agent_finished(ctx, op.id, "rollback refused")
    row = db_api.operation_get(ctx, op.id)
    assert row.state == "failed"
    assert "rollback refused" in row.error
    server = nova.servers[op.instance_uuid]
    assert server.status == "SHUTOFF"
    assert server.is_locked
    assert "failed: the agent failed: rollback refused" in (
        server.locked_reason
    )
    assert ("start",) not in nova.calls


def test_a_failure_is_recorded_when_nova_cannot_be_reached(ctx, nova):
    op = restore_request(ctx, nova)
    conductor = orchestrator(nova)
    conductor.poll(ctx)

    def unreachable():
        raise snapmanager_nova.nova.NovaNotConfigured()

    # Nova goes away while the agent works: the lock cannot say why, the
    # operation still must.
    conductor.compute.get = unreachable
    conductor.agent_finished(ctx, op.id, "rollback refused")
    row = db_api.operation_get(ctx, op.id)
    assert row.state == "failed"
    assert "rollback refused" in row.error


def test_someone_elses_lock_is_left_alone(ctx, nova):
    op = restore_request(ctx, nova, locked_reason="tenant: do not touch")
    conductor = orchestrator(nova)
    conductor.poll(ctx)
    row = db_api.operation_get(ctx, op.id)
    assert row.state == "failed"
    assert "tenant: do not touch" in row.error
    server = nova.servers[op.instance_uuid]
    assert server.locked_reason == "tenant: do not touch"
    assert server.status == "ACTIVE"
    assert conductor.compute_api.restores == []


def _behind_our_back(engine, snapshot_id, status):
    """Change a snapshot's status as nothing in Snapmanager may: the
    restore's hold keeps it available (tests/functional/conductor/
    test_restore_holds.py); the orchestrator checks all the same."""
    table = models.Snapshot.__table__
    with engine.begin() as conn:
        conn.execute(
            table.update()
            .where(table.c.id == snapshot_id)
            .values(status=status)
        )


def test_a_snapshot_no_longer_available_is_not_restored(engine, ctx, nova):
    op = restore_request(ctx, nova)
    _behind_our_back(engine, op.snapshot_id, "deleting")
    conductor = orchestrator(nova)
    conductor.poll(ctx)
    row = db_api.operation_get(ctx, op.id)
    assert row.state == "failed"
    assert "deleting" in row.error
    assert not nova.servers[op.instance_uuid].is_locked


def test_the_cast_checks_the_snapshot_again(engine, ctx, nova):
    op = restore_request(ctx, nova)
    conductor = orchestrator(nova)
    # Changed after the lock and stop, before the cast.
    real_stop = conductor._stop

    def stop_then_change(operation):
        real_stop(operation)
        _behind_our_back(engine, op.snapshot_id, "error")

    conductor._stop = stop_then_change
    conductor.poll(ctx)
    row = db_api.operation_get(ctx, op.id)
    assert (row.state, row.step) == ("failed", "restoring disks")
    assert "is error, not available" in row.error
    assert conductor.compute_api.restores == []


def _as_if_crashed_at(ctx, nova, op, step, dead_host):
    """Record ``op`` at ``step`` under a conductor that is down, with the
    server as that step's work left it."""
    server = nova.servers[op.instance_uuid]
    if step != "locking server":
        server.is_locked = True
        server.locked_reason = restore.lock_reason(op)
    if step in ("restoring disks", "starting server"):
        server.status = "SHUTOFF"
    db_api.operation_update_step(
        ctx,
        op.id,
        None,
        {"state": "running", "step": step, "conductor_host": dead_host},
    )
    return db_api.service_heartbeat(ctx, BINARY, dead_host).last_seen_at


@pytest.mark.parametrize(
    "step",
    [
        "locking server",
        "stopping server",
        "starting server",
        "unlocking server",
    ],
)
def test_a_dead_conductors_restore_is_taken_over_and_finished(ctx, nova, step):
    op = restore_request(ctx, nova)
    last_seen = _as_if_crashed_at(ctx, nova, op, step, "conductor-dead")
    later = last_seen + datetime.timedelta(
        seconds=CONF.conductor.service_down_time + 1
    )
    # While the owner's heartbeat is fresh, nobody else takes it.
    assert orchestrator(nova, "conductor-2", now=last_seen).poll(ctx) == []
    conductor = orchestrator(nova, "conductor-2", now=later)
    assert conductor.poll(ctx) == [op.id]
    row = db_api.operation_get(ctx, op.id)
    assert row.conductor_host == "conductor-2"
    if step in ("locking server", "stopping server"):
        assert row.step == "restoring disks"
        conductor.agent_finished(ctx, op.id)
        row = db_api.operation_get(ctx, op.id)
    assert row.state == "succeeded"
    server = nova.servers[op.instance_uuid]
    assert server.status == "ACTIVE"
    assert not server.is_locked
    # Only the work left was done: a server already stopped was not
    # stopped again, one already locked not locked again.
    if step != "locking server":
        assert ("lock", "2.73") not in nova.calls
    if step in ("starting server", "unlocking server"):
        assert ("stop",) not in nova.calls


def test_own_restore_is_resumed_after_a_restart(ctx, nova):
    op = restore_request(ctx, nova)
    _as_if_crashed_at(ctx, nova, op, "starting server", "conductor-1")
    # The same host, restarted: its own heartbeat is fresh, and still
    # the restore is its own to resume.
    assert orchestrator(nova, "conductor-1").poll(ctx) == [op.id]
    assert db_api.operation_get(ctx, op.id).state == "succeeded"


@pytest.fixture
def agent_timeout():
    """``[conductor] restore_agent_timeout`` set by the test."""

    def set_timeout(seconds):
        CONF.set_override("restore_agent_timeout", seconds, "conductor")

    yield set_timeout
    CONF.clear_override("restore_agent_timeout", "conductor")


def test_a_silent_agent_fails_the_restore_in_time(ctx, nova, agent_timeout):
    # The orchestrator's clock is the real one, as the database's: each
    # poll re-claims the restore, and the wait for the agent must still
    # be measured from when it was asked, not from the last poll.
    agent_timeout(1)
    op = restore_request(ctx, nova)
    conductor = orchestrator(nova, clock=models.utcnow)
    conductor.poll(ctx)
    assert db_api.operation_get(ctx, op.id).step == "restoring disks"

    def failed():
        conductor.poll(ctx)
        return db_api.operation_get(ctx, op.id).state == "failed"

    wait_until(failed, timeout=30, interval=0.2, what="the restore failed")
    row = db_api.operation_get(ctx, op.id)
    assert "did not report within 1 s" in row.error
    assert nova.servers[op.instance_uuid].status == "SHUTOFF"
    assert nova.servers[op.instance_uuid].is_locked
    assert len(conductor.compute_api.restores) == 1


def test_a_restore_within_the_timeout_keeps_waiting(ctx, nova, agent_timeout):
    agent_timeout(3600)
    op = restore_request(ctx, nova)
    conductor = orchestrator(nova, clock=models.utcnow)
    conductor.poll(ctx)
    assert conductor.poll(ctx) == []
    row = db_api.operation_get(ctx, op.id)
    assert (row.state, row.step) == ("running", "restoring disks")


def test_other_operations_are_not_the_orchestrators(ctx, nova):
    instance = db_fixtures.make_instance(ctx, host="compute-1")
    op = db_api.operation_create(
        ctx, {"type": "delete", "instance_uuid": instance.uuid}
    )
    conductor = orchestrator(nova)
    assert not conductor.agent_finished(ctx, op.id)
    assert not conductor.agent_progress(ctx, op.id, 10, "x")
    assert not conductor.agent_finished(ctx, str(uuid.uuid4()))
    assert conductor.poll(ctx) == []


# The tenant's way out of a failed restore


def _failed_at_the_agent(ctx, nova):
    op = restore_request(ctx, nova)
    conductor = orchestrator(nova)
    conductor.poll(ctx)
    conductor.agent_finished(ctx, op.id, "rollback refused")
    assert db_api.operation_holding(ctx, op.instance_uuid).id == op.id
    return op, conductor


def test_abandoning_unlocks_and_leaves_the_server_stopped(ctx, nova):
    failed, conductor = _failed_at_the_agent(ctx, nova)
    abandon = db_api.operation_take_over_restore(ctx, failed.id, "abandon")
    assert conductor.poll(ctx) == [abandon.id]
    row = db_api.operation_get(ctx, abandon.id)
    assert (row.state, row.step) == ("succeeded", "done")
    server = nova.servers[failed.instance_uuid]
    assert (server.status, server.is_locked) == ("SHUTOFF", False)
    assert ("start",) not in nova.calls
    assert db_api.operation_holding(ctx, failed.instance_uuid) is None
    # Only the unlock: the agent was asked once, by the failed restore.
    assert len(conductor.compute_api.restores) == 1


def test_abandoning_leaves_someone_elses_lock_alone(ctx, nova):
    failed, conductor = _failed_at_the_agent(ctx, nova)
    nova.servers[failed.instance_uuid].locked_reason = "operator: hands off"
    abandon = db_api.operation_take_over_restore(ctx, failed.id, "abandon")
    conductor.poll(ctx)
    assert db_api.operation_get(ctx, abandon.id).state == "succeeded"
    server = nova.servers[failed.instance_uuid]
    assert (server.is_locked, server.locked_reason) == (
        True,
        "operator: hands off",
    )


def test_a_retry_runs_the_whole_restore_again(ctx, nova):
    failed, conductor = _failed_at_the_agent(ctx, nova)
    retry = db_api.operation_take_over_restore(ctx, failed.id, "restore")
    assert conductor.poll(ctx) == [retry.id]
    server = nova.servers[failed.instance_uuid]
    # Our failed lock became the retry's.
    assert server.locked_reason == restore.lock_reason(retry)
    assert conductor.compute_api.restores[-1][1] == retry.id
    conductor.agent_finished(ctx, retry.id)
    assert db_api.operation_get(ctx, retry.id).state == "succeeded"
    assert (server.status, server.is_locked) == ("ACTIVE", False)
    assert db_api.operation_holding(ctx, failed.instance_uuid) is None
    assert db_api.operation_get(ctx, failed.id).state == "failed"


# A file-backed snapshot whose server moved (conductor/holders.py)


class TransferringAgents(RecordingAgents):
    """Agents that hold snapshots in stores of their own."""

    def __init__(self, fail_fetch=None):
        super().__init__()
        self.calls = []
        self.fail_fetch = fail_fetch

    def describe_snapshot_files(self, context, host, instance_uuid, index):
        self.calls.append(("describe", host, index))
        return {"address": host, "root": "/store", "files": ["listed"]}

    def fetch_snapshot(
        self, context, host, instance_uuid, index, source, timeout
    ):
        self.calls.append(("fetch", host, index, source["address"]))
        if self.fail_fetch is not None:
            raise self.fail_fetch
        return 1024

    def drop_snapshot_copy(self, context, host, instance_uuid, index, disks):
        self.calls.append(("drop", host, index))


def file_restore_request(ctx, nova, holder):
    """A restore of a file-backed snapshot held by ``holder`` while the
    server runs on nova.host ("compute-1")."""
    return restore_request(ctx, nova, backend="file", host=holder)


def transferring(nova, agents):
    conductor = orchestrator(nova)
    conductor.compute_api = agents
    conductor.transfer.compute_api = agents
    return conductor


def test_a_moved_servers_snapshot_is_copied_then_restored(ctx, nova):
    op = file_restore_request(ctx, nova, holder="compute-0")
    db_api.service_heartbeat(ctx, "snapmanager-compute", "compute-0")
    agents = TransferringAgents()
    conductor = transferring(nova, agents)
    assert conductor.poll(ctx) == [op.id]
    # The holder says what to fetch, the server's host fetches it, the
    # row follows, and only then is the old copy dropped.
    assert agents.calls == [
        ("describe", "compute-0", 1),
        ("fetch", "compute-1", 1, "compute-0"),
        ("drop", "compute-0", 1),
    ]
    assert db_api.snapshot_get(ctx, op.snapshot_id).host == "compute-1"
    assert agents.restores == [("compute-1", op.id, "file", 1)]
    assert db_api.operation_get(ctx, op.id).step == "restoring disks"


def test_a_snapshot_held_where_the_server_runs_is_not_copied(ctx, nova):
    op = file_restore_request(ctx, nova, holder="compute-1")
    agents = TransferringAgents()
    transferring(nova, agents).poll(ctx)
    assert agents.calls == []
    assert agents.restores == [("compute-1", op.id, "file", 1)]


def test_a_shared_store_needs_no_copy(ctx, nova):
    op = file_restore_request(ctx, nova, holder="compute-0")
    agents = TransferringAgents()
    CONF.set_override("snapshot_store_shared", True, group="compute")
    try:
        transferring(nova, agents).poll(ctx)
    finally:
        CONF.clear_override("snapshot_store_shared", group="compute")
    assert agents.calls == []
    assert agents.restores == [("compute-1", op.id, "file", 1)]
    assert db_api.snapshot_get(ctx, op.snapshot_id).host == "compute-0"


def test_a_failed_copy_fails_the_restore_before_the_stop(ctx, nova):
    op = file_restore_request(ctx, nova, holder="compute-0")
    db_api.service_heartbeat(ctx, "snapmanager-compute", "compute-0")
    agents = TransferringAgents(fail_fetch=messaging.MessagingTimeout("t"))
    transferring(nova, agents).poll(ctx)
    row = db_api.operation_get(ctx, op.id)
    assert (row.state, row.step) == ("failed", "copying snapshot")
    assert "did not finish in time" in row.error
    # The holder keeps it, and the server was never stopped.
    assert db_api.snapshot_get(ctx, op.snapshot_id).host == "compute-0"
    assert ("drop", "compute-0", 1) not in agents.calls
    assert ("stop",) not in nova.calls
    assert agents.restores == []


def test_a_gone_holder_fails_the_restore_saying_so(ctx, nova):
    op = file_restore_request(ctx, nova, holder="compute-0")
    agents = TransferringAgents()
    transferring(nova, agents).poll(ctx)
    row = db_api.operation_get(ctx, op.id)
    assert row.state == "failed"
    assert "no longer in service" in row.error
    assert agents.calls == []
    assert db_api.snapshot_get(ctx, op.snapshot_id).status == "available"
