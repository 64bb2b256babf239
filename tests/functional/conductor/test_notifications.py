"""The notification listener on Nova's real versioned notifications.

The mini-cloud's Nova sends its notifications to the test RabbitMQ; the
conductor's listener (its own pool) consumes them in this process and
acts on a server Snapmanager knows. The agent on the server's host is a
recorder served over the real RabbitMQ, reached through the real
compute RPC API: its side of a release is the agent's tests' business.
"""

import threading
import time
import uuid

import oslo_messaging as messaging
import pytest

from snapmanager_nova import context as sm_context
from snapmanager_nova import nova
from snapmanager_nova.compute import rpcapi as compute_rpcapi
from snapmanager_nova.conductor import inventory
from snapmanager_nova.conductor import notifications
from snapmanager_nova.db import api as db_api
from tests.e2e import helpers
from tests.fixtures.services import wait_until
from tests.functional.conductor import nova_env


class RecordingAgent:
    """The compute agent's RPC endpoint, as far as a delete reaches it."""

    target = messaging.Target(version="1.0")

    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()

    def release_instance(self, context, instance_uuid, backend, keep):
        with self.lock:
            self.calls.append(
                ("release", instance_uuid, backend, keep, time.monotonic())
            )
        return []

    def delete_snapshot(
        self, context, snapshot_id, instance_uuid, backend, index, disks
    ):
        with self.lock:
            self.calls.append(("delete", instance_uuid, snapshot_id))

    def of(self, kind):
        with self.lock:
            return [call for call in self.calls if call[0] == kind]


@pytest.fixture(scope="module")
def agent_topic():
    return nova_env.private_topic(compute_rpcapi.TOPIC)


@pytest.fixture(scope="module")
def agent(snapmanager_env, minicloud, agent_topic):
    with nova_env.rpc_server(
        agent_topic, minicloud.host, RecordingAgent()
    ) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def listener(agent, agent_topic, minicloud, tmp_path_factory):
    conf = nova_env.nova_config(minicloud, tmp_path_factory.mktemp("nova"))
    # A pool of the test's own: conductors of other tests on the same
    # RabbitMQ must not take the notifications this test waits for.
    pool = f"snapmanager-test-{uuid.uuid4().hex[:8]}"
    conf.set_override("notification_pool", pool, "conductor")
    cleanup = inventory.InstanceCleanup(
        nova_env.retarget(compute_rpcapi.ComputeAPI(), agent_topic)
    )
    sync = inventory.InventorySync(nova.LazyCompute(conf), cleanup)
    listening = notifications.get_listener(
        conf, notifications.NotificationHandler(cleanup, sync)
    )
    listening.start()
    yield
    listening.stop()
    listening.wait()
    nova_env.delete_queues(minicloud.transport_url, [pool])


@pytest.fixture(scope="module")
def server(minicloud):
    demo = minicloud.connect("demo")
    created = helpers.create_server(minicloud, demo, "notify")
    with helpers.cleanup_server(minicloud, created):
        yield created


def test_notifications_follow_lock_and_delete(
    minicloud, agent, listener, server
):
    ctx = sm_context.get_admin_context()
    demo = minicloud.connect("demo")
    snapshot = nova_env.known_server(
        ctx, server, minicloud.projects["demo"], minicloud.host
    )

    # Between syncs, the row follows Nova's notifications.
    demo.compute.lock_server(server, locked_reason="tenant: hands off")
    row = wait_until(
        lambda: (r := db_api.instance_get(ctx, server.id)).locked and r,
        timeout=60,
        what="the lock recorded from Nova's notification",
    )
    assert row.locked_reason == "tenant: hands off"
    assert row.nova_status == "ACTIVE"
    demo.compute.unlock_server(server)
    wait_until(
        lambda: not db_api.instance_get(ctx, server.id).locked,
        timeout=60,
        what="the unlock recorded",
    )

    # The host's agent is up (only a live agent is asked).
    db_api.service_heartbeat(ctx, "snapmanager-compute", minicloud.host)
    asked = time.monotonic()
    demo.compute.delete_server(server)
    # instance.delete.start: the release, with the instance's own
    # keep_after_delete (False), not the tidy-up's keep=True.
    (release,) = wait_until(
        lambda: [c for c in agent.of("release") if not c[3]],
        timeout=60,
        what="release_instance on delete.start",
    )
    assert release[1:4] == (server.id, "file", False)
    print(f"delete request -> release_instance: {release[4] - asked:.3f} s")
    # instance.delete.end: the row is marked deleted and the snapshot,
    # not kept after delete, is deleted by the agent.
    row = wait_until(
        lambda: (r := db_api.instance_get(ctx, server.id)).deleted_at and r,
        timeout=60,
        what="the delete recorded",
    )
    assert row.nova_status == "DELETED"
    # The row is marked first; the deletion is cast to the agent after,
    # and reaches it over the message bus a moment later.
    deletes = wait_until(
        lambda: agent.of("delete"),
        timeout=60,
        what="the snapshot's delete cast",
    )
    assert deletes == [("delete", server.id, snapshot.id)]
    assert db_api.snapshot_get(ctx, snapshot.id).status == "deleting"
