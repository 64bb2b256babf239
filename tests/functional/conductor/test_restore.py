"""Restore orchestration with the mini-cloud's real Nova.

The orchestrator and the conductor's RPC endpoint run in this process
on the real RabbitMQ and MariaDB; Nova's lock, stop, start and unlock
are real. The agent's side is played by the test through the real
conductor RPC API: it checks what the agent would rely on (the server
is shut off and locked by Snapmanager) and reports as the agent does.
The agent's own restore of the disks is tested in the compute tests.
"""

import threading
import uuid

import oslo_messaging as messaging
import pytest

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import context as sm_context
from snapmanager_nova.compute import rpcapi as compute_rpcapi
from snapmanager_nova.conductor import manager
from snapmanager_nova.conductor import restore
from snapmanager_nova.conductor import rpcapi as conductor_rpcapi
from snapmanager_nova.db import api as db_api
from tests.e2e import helpers
from tests.fixtures.services import unique_host
from tests.fixtures.services import wait_until
from tests.functional.conductor import nova_env

BINARY = "snapmanager-conductor"
CONF = sm_conf.CONF


class Agent:
    """The agent's restore_snapshot, played against real Nova."""

    target = messaging.Target(version="1.0")

    def __init__(self, cloud, conductor_topic):
        self.admin = cloud.connect("admin")
        self.conductor_topic = conductor_topic
        self.fail_with = None
        # A dead agent: asked, it never reports.
        self.silent = False
        self.seen = []
        self.lock = threading.Lock()

    def restore_snapshot(
        self, context, operation_id, instance_uuid, backend, index, disks
    ):
        server = self.admin.compute.get_server(instance_uuid)
        with self.lock:
            self.seen.append(
                (
                    operation_id,
                    backend,
                    index,
                    server.status,
                    server.is_locked,
                    server.locked_reason,
                )
            )
        if self.silent:
            return
        conductor = nova_env.retarget(
            conductor_rpcapi.ConductorAPI(), self.conductor_topic
        )
        conductor.operation_progress(
            context, operation_id, 10, "restoring disks"
        )
        conductor.operation_finished(context, operation_id, self.fail_with)


@pytest.fixture(scope="module")
def services(snapmanager_env, minicloud, tmp_path_factory):
    compute = nova_env.lazy_compute(minicloud, tmp_path_factory.mktemp("nova"))
    host = unique_host("conductor")
    compute_topic = nova_env.private_topic(compute_rpcapi.TOPIC)
    conductor_topic = nova_env.private_topic(conductor_rpcapi.TOPIC)
    orchestrator = restore.RestoreOrchestrator(
        compute,
        nova_env.retarget(compute_rpcapi.ComputeAPI(), compute_topic),
        host,
        BINARY,
    )
    with nova_env.rpc_server(
        compute_topic, minicloud.host, Agent(minicloud, conductor_topic)
    ) as agent:
        with nova_env.rpc_server(
            conductor_topic,
            host,
            manager.ConductorManager(restores=orchestrator),
        ):
            yield orchestrator, agent


@pytest.fixture(scope="module")
def server(minicloud):
    demo = minicloud.connect("demo")
    created = helpers.create_server(minicloud, demo, "restore")
    with helpers.cleanup_server(minicloud, created):
        yield created


def request_restore(ctx, minicloud, server):
    snapshot = nova_env.known_server(
        ctx, server, minicloud.projects["demo"], minicloud.host
    )
    return db_api.operation_create(
        ctx,
        {
            "type": "restore",
            "instance_uuid": server.id,
            "snapshot_id": snapshot.id,
        },
    )


def finished(ctx, operation_id):
    def check():
        op = db_api.operation_get(ctx, operation_id)
        return op if op.state in ("succeeded", "failed") else None

    return wait_until(check, timeout=240, what="the restore finished")


def take_over_and_finish(ctx, orchestrator, failed, kind):
    """The tenant's way out of a failed restore (``POST
    /v1/operations/{id}/action``: ``restore`` retries, ``abandon``
    abandons), run by the conductor to success."""
    successor = db_api.operation_take_over_restore(ctx, failed.id, kind)
    assert orchestrator.poll(ctx) == [successor.id]
    done = finished(ctx, successor.id)
    assert done.state == "succeeded", done.error
    return successor


def test_restore_locks_stops_restores_starts_and_unlocks(
    minicloud, services, server
):
    orchestrator, agent = services
    ctx = sm_context.get_admin_context()
    op = request_restore(ctx, minicloud, server)
    assert orchestrator.poll(ctx) == [op.id]
    done = finished(ctx, op.id)
    assert done.state == "succeeded", done.error
    assert (done.step, done.progress) == ("done", 100)
    # When the agent was asked, the server was shut off and locked with
    # a reason naming Snapmanager, the operation and the snapshot.
    (seen,) = [s for s in agent.seen if s[0] == op.id]
    assert seen[1:] == (
        "file",
        1,
        "SHUTOFF",
        True,
        restore.lock_reason(op),
    )
    now = agent.admin.compute.get_server(server.id)
    assert now.status == "ACTIVE"
    assert not now.is_locked
    assert now.locked_reason is None


def test_agent_failure_leaves_the_server_stopped_and_locked(
    minicloud, services, server
):
    orchestrator, agent = services
    ctx = sm_context.get_admin_context()
    op = request_restore(ctx, minicloud, server)
    agent.fail_with = "rollback refused: image in use"
    try:
        orchestrator.poll(ctx)
        done = finished(ctx, op.id)
    finally:
        agent.fail_with = None
    assert done.state == "failed"
    assert "rollback refused: image in use" in done.error
    admin = agent.admin.compute
    now = admin.get_server(server.id)
    assert now.status == "SHUTOFF"
    assert now.is_locked
    assert now.locked_reason.startswith(
        f"Snapmanager: restore {op.id} of snapshot {op.snapshot_id} failed"
    )
    assert "rollback refused" in now.locked_reason
    # Abandoned: Snapmanager lifts its lock, the server stays as the
    # restore left it.
    take_over_and_finish(ctx, orchestrator, op, "abandon")
    now = admin.get_server(server.id)
    assert (now.status, now.is_locked) == ("SHUTOFF", False)
    assert db_api.operation_holding(ctx, server.id) is None
    # Back to running for the next test, as the tenant would.
    admin.start_server(server)
    # A fresh record: the SDK's wait first looks at the one it is given.
    helpers.wait_status(
        minicloud, agent.admin, admin.get_server(server.id), "ACTIVE"
    )


def test_a_dead_agent_times_out_and_the_restore_is_retried(
    minicloud, services, server
):
    """The wait for the agent is measured from when it was asked, by the
    database's clock, however often the conductor polls meanwhile; the
    tenant then retries, and the retry runs to the end."""
    orchestrator, agent = services
    ctx = sm_context.get_admin_context()
    op = request_restore(ctx, minicloud, server)
    CONF.set_override("restore_agent_timeout", 2, "conductor")
    agent.silent = True
    try:
        orchestrator.poll(ctx)

        def failed():
            orchestrator.poll(ctx)
            return db_api.operation_get(ctx, op.id).state == "failed"

        wait_until(
            failed, timeout=120, what="the silent agent's restore failed"
        )
    finally:
        agent.silent = False
        CONF.clear_override("restore_agent_timeout", "conductor")
    done = db_api.operation_get(ctx, op.id)
    assert "did not report within 2 s" in done.error
    admin = agent.admin.compute
    now = admin.get_server(server.id)
    assert (now.status, now.is_locked) == ("SHUTOFF", True)
    assert "did not report" in now.locked_reason

    retry = take_over_and_finish(ctx, orchestrator, op, "restore")
    now = admin.get_server(server.id)
    assert (now.status, now.is_locked) == ("ACTIVE", False)
    # The agent was asked once per restore.
    assert [s[0] for s in agent.seen if s[0] in (op.id, retry.id)] == [
        op.id,
        retry.id,
    ]


def test_a_restore_left_by_a_dead_conductor_is_finished(
    minicloud, services, server
):
    orchestrator, agent = services
    ctx = sm_context.get_admin_context()
    op = request_restore(ctx, minicloud, server)
    # As a conductor that died after the agent's report left it: the
    # server stopped and locked for the restore, the operation recorded
    # at "starting server" under a host that no longer sends heartbeats.
    admin = agent.admin.compute
    admin.lock_server(server, locked_reason=restore.lock_reason(op))
    admin.stop_server(server)
    helpers.wait_status(
        minicloud, agent.admin, admin.get_server(server.id), "SHUTOFF"
    )
    assert db_api.operation_update_step(
        ctx,
        op.id,
        None,
        {
            "state": "running",
            "step": "starting server",
            "progress": 85,
            "conductor_host": f"gone-{uuid.uuid4().hex[:8]}",
        },
    )
    assert orchestrator.poll(ctx) == [op.id]
    done = finished(ctx, op.id)
    assert done.state == "succeeded", done.error
    assert done.conductor_host == orchestrator.host
    # The agent was not asked again: its part was done.
    assert not [s for s in agent.seen if s[0] == op.id]
    now = admin.get_server(server.id)
    assert now.status == "ACTIVE"
    assert not now.is_locked
