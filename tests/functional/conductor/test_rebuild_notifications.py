"""Nova's rebuild, shelve-offload and evacuation, as the conductor hears
them on the real RabbitMQ.

Nova's compute service sends ``instance.rebuild.start`` and
``instance.shelve_offload.start`` before its driver removes the
instance's RBD images, and ``instance.rebuild.start`` for an evacuation
too: then from the destination host (the publisher), while the payload's
``host`` still names the source (``nova/compute/manager.py``,
``_do_rebuild_instance``; ``instance.host`` changes only once the
evacuation is finished). The notifications are sent here as Nova sends
them (messagingv2 on exchange ``nova``, publisher ``nova-compute:<host>``,
an ``InstanceActionRebuildPayload``); the conductor's listener consumes
them in this process, and agents for both hosts are recorders served
over the real RabbitMQ through the real compute RPC API: the RBD side of
a release with keep is the agent's tests' business
(tests/functional/compute/test_rbd_nova_delete.py).
"""

import threading
import uuid

import oslo_messaging as messaging
import pytest
from oslo_config import cfg

from snapmanager_nova import context as sm_context
from snapmanager_nova import nova
from snapmanager_nova.compute import rpcapi as compute_rpcapi
from snapmanager_nova.conductor import inventory
from snapmanager_nova.conductor import notifications
from snapmanager_nova.conf import conductor as conductor_conf
from snapmanager_nova.conf import nova as nova_conf
from snapmanager_nova.db import api as db_api
from tests.fixtures.services import wait_until
from tests.functional.conductor import nova_env

SOURCE = "rebuild-host-a"
DESTINATION = "rebuild-host-b"
PROJECT = "project-rebuild"


class RecordingAgent:
    """An agent's release, as far as the conductor sees it: it answers
    with the indexes it was told the instance's images carry."""

    target = messaging.Target(version="1.0")

    def __init__(self, host, calls, lock):
        self.host = host
        self.calls = calls
        self.lock = lock
        self.indexes = {}

    def release_instance(self, context, instance_uuid, backend, keep):
        with self.lock:
            self.calls.append((self.host, instance_uuid, backend, keep))
            return self.indexes.get(instance_uuid, [])


@pytest.fixture(scope="module")
def agents(snapmanager_env):
    topic = nova_env.private_topic(compute_rpcapi.TOPIC)
    calls, lock = [], threading.Lock()
    served = {
        host: RecordingAgent(host, calls, lock)
        for host in (SOURCE, DESTINATION)
    }
    with nova_env.rpc_server(topic, SOURCE, served[SOURCE]):
        with nova_env.rpc_server(topic, DESTINATION, served[DESTINATION]):
            yield topic, served, calls


@pytest.fixture(scope="module")
def bus(snapmanager_env, agents, tmp_path_factory):
    """The conductor's listener, and a Nova-side notifier, on topics and
    in a pool of this module's own."""
    transport_url = snapmanager_env.transport_url
    topic = nova_env.private_topic("versioned_notifications")
    pool = f"snapmanager-test-{uuid.uuid4().hex[:8]}"
    conf = cfg.ConfigOpts()
    nova_conf.register_opts(conf)
    conductor_conf.register_opts(conf)
    conf([], project="snapmanager")
    conf.set_override("notification_transport_url", transport_url, "nova")
    conf.set_override("notification_topic", topic, "nova")
    conf.set_override("notification_pool", pool, "conductor")
    cleanup = inventory.InstanceCleanup(
        nova_env.retarget(compute_rpcapi.ComputeAPI(), agents[0])
    )
    sync = inventory.InventorySync(nova.LazyCompute(conf), cleanup)
    listener = notifications.get_listener(
        conf, notifications.NotificationHandler(cleanup, sync)
    )
    listener.start()

    # Nova's side: its transport's exchange is "nova".
    nova_side = cfg.ConfigOpts()
    # The first transport only registers the options on nova_side.
    messaging.get_notification_transport(nova_side, url="fake://").cleanup()
    nova_side.set_override("control_exchange", "nova")
    nova_transport = messaging.get_notification_transport(
        nova_side, url=transport_url
    )

    def send(event_type, publisher_host, payload):
        notifier = messaging.Notifier(
            nova_transport,
            publisher_id=f"nova-compute:{publisher_host}",
            driver="messagingv2",
            topics=[topic],
        )
        notifier.info({}, event_type, payload)

    yield send
    listener.stop()
    listener.wait()
    nova_transport.cleanup()
    nova_env.delete_queues(
        transport_url, [pool, f"{topic}.info", f"{topic}.error"]
    )


def rebuild_payload(
    server_uuid, host, task_state, name="InstanceActionRebuildPayload"
):
    """What Nova's InstanceActionRebuildPayload (or InstanceActionPayload)
    carries that matters here."""
    return {
        "nova_object.name": name,
        "nova_object.namespace": "nova",
        "nova_object.version": "1.10",
        "nova_object.data": {
            "uuid": server_uuid,
            "tenant_id": PROJECT,
            "host": host,
            "node": host,
            "display_name": "rebuilt",
            "state": "active",
            "task_state": task_state,
            "image_uuid": "6b2e2f32-9cdb-4bd1-8a4b-0d3f0d8b7a11",
            "locked": False,
            "locked_reason": None,
            "trusted_image_certificates": None,
        },
    }


def known_rbd_server(ctx, agents, keep_after_delete=False):
    """A server on SOURCE with one available RBD snapshot; both hosts'
    agents alive. Returns (uuid, snapshot)."""
    server_uuid = str(uuid.uuid4())
    db_api.instance_create_or_update(
        ctx,
        server_uuid,
        {
            "project_id": PROJECT,
            "host": SOURCE,
            "backend": "rbd",
            "keep_after_delete": keep_after_delete,
        },
    )
    index = db_api.instance_allocate_snapshot_index(ctx, server_uuid)
    snapshot = db_api.snapshot_create(
        ctx, {"instance_uuid": server_uuid, "snapshot_index": index}
    )
    snapshot = db_api.snapshot_update_status(
        ctx,
        snapshot.id,
        "available",
        backend="rbd",
        disks=[
            {"target": "vda", "pool": "vms", "image": f"{server_uuid}_disk"}
        ],
    )
    for served in agents[1].values():
        served.indexes[server_uuid] = [index]
    for host in (SOURCE, DESTINATION):
        db_api.service_heartbeat(ctx, "snapmanager-compute", host)
    return server_uuid, snapshot


def releases(agents, server_uuid):
    """The release calls the agents got for the server."""
    return [call for call in agents[2] if call[1] == server_uuid]


def recorded(ctx, server_uuid, task_state):
    """The row once the notification's state is recorded, which the
    listener does after whatever release it asks for."""
    return wait_until(
        lambda: (
            (r := db_api.instance_get(ctx, server_uuid)).task_state
            == task_state
            and r
        ),
        timeout=60,
        what=f"task state {task_state} recorded from Nova's notification",
    )


@pytest.mark.parametrize(
    "event_type, task_state, payload_name",
    [
        ("instance.rebuild.start", "rebuilding", None),
        (
            "instance.shelve_offload.start",
            "shelving_offloading",
            "InstanceActionPayload",
        ),
    ],
)
def test_rebuild_and_shelve_offload_keep_the_snapshots(
    agents, bus, event_type, task_state, payload_name
):
    ctx = sm_context.get_admin_context()
    server_uuid, snapshot = known_rbd_server(ctx, agents)
    payload = rebuild_payload(server_uuid, SOURCE, task_state)
    if payload_name:
        payload["nova_object.name"] = payload_name

    bus(event_type, SOURCE, payload)

    recorded(ctx, server_uuid, task_state)
    calls = releases(agents, server_uuid)
    # Released on the server's own host, with keep although the server
    # does not keep its snapshots after a delete: the images carrying
    # them are renamed out of Nova's way, not stripped.
    assert calls == [(SOURCE, server_uuid, "rbd", True)]
    kept = db_api.snapshot_get(ctx, snapshot.id)
    assert kept.status == "available"
    # Listed, deletable and restorable: a record of where the data is.
    assert all(disk["kept"] for disk in kept.disks)


def test_delete_still_follows_keep_after_delete(agents, bus):
    ctx = sm_context.get_admin_context()
    server_uuid, snapshot = known_rbd_server(ctx, agents)

    bus(
        "instance.delete.start",
        SOURCE,
        rebuild_payload(
            server_uuid, SOURCE, "deleting", name="InstanceActionPayload"
        ),
    )

    recorded(ctx, server_uuid, "deleting")
    calls = releases(agents, server_uuid)
    assert calls == [(SOURCE, server_uuid, "rbd", False)]
    assert db_api.snapshot_get(ctx, snapshot.id).status == "deleted"


def test_evacuation_touches_nothing(agents, bus):
    ctx = sm_context.get_admin_context()
    server_uuid, snapshot = known_rbd_server(ctx, agents)

    # The destination's compute service announces the evacuation as a
    # rebuild; the instance's host is still the source.
    bus(
        "instance.rebuild.start",
        DESTINATION,
        rebuild_payload(server_uuid, SOURCE, "rebuilding"),
    )

    row = recorded(ctx, server_uuid, "rebuilding")
    assert row.host == SOURCE
    assert releases(agents, server_uuid) == []
    assert db_api.snapshot_get(ctx, snapshot.id).status == "available"

    # Nova finishes it on the destination: the row follows the server,
    # and its snapshots are where they were.
    bus(
        "instance.rebuild.end",
        DESTINATION,
        rebuild_payload(server_uuid, DESTINATION, None),
    )
    wait_until(
        lambda: db_api.instance_get(ctx, server_uuid).host == DESTINATION,
        timeout=60,
        what="the evacuated server's new host recorded",
    )
    assert releases(agents, server_uuid) == []
    assert db_api.snapshot_get(ctx, snapshot.id).status == "available"
