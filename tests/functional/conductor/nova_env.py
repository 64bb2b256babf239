"""What the conductor's functional tests against the mini-cloud share.

Snapmanager's side runs in the test process: the DB API on the module's
MariaDB database (the ``snapmanager_env`` fixture) and RPC on the test
RabbitMQ, on topics of the module's own (:func:`private_topic`). Nova is
the mini-cloud's, reached with the admin credentials a deployment would
give Snapmanager's service user.
"""

import contextlib
import uuid

import kombu
import oslo_messaging as messaging
from oslo_config import cfg

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import nova
from snapmanager_nova import rpc
from snapmanager_nova.conf import conductor as conductor_conf
from snapmanager_nova.conf import nova as nova_conf
from snapmanager_nova.db import api as db_api

CONF = sm_conf.CONF


def nova_config(cloud, directory):
    """A ConfigOpts whose ``[nova]`` holds the mini-cloud's admin
    credentials, read from a config file as a service reads them."""
    path = directory / "nova.conf"
    path.write_text(
        "[nova]\n"
        "auth_type = password\n"
        f"auth_url = {cloud.auth_url}\n"
        "username = admin\n"
        f"password = {cloud.password}\n"
        "project_name = admin\n"
        "user_domain_name = Default\n"
        "project_domain_name = Default\n"
        f"notification_transport_url = {cloud.transport_url}\n"
    )
    conf = cfg.ConfigOpts()
    nova_conf.register_opts(conf)
    conductor_conf.register_opts(conf)
    conf(["--config-file", str(path)], project="snapmanager")
    return conf


def known_server(ctx, server, project_id, host):
    """Record ``server`` as Snapmanager knows it (as a policy would) with
    one available file-backed snapshot; return the snapshot."""
    db_api.instance_create_or_update(
        ctx, server.id, {"project_id": project_id, "host": host}
    )
    index = db_api.instance_allocate_snapshot_index(ctx, server.id)
    snapshot = db_api.snapshot_create(
        ctx, {"instance_uuid": server.id, "snapshot_index": index}
    )
    return db_api.snapshot_update_status(
        ctx,
        snapshot.id,
        "available",
        disks=[{"target": "vda", "path": f"/store/{server.id}/{index}"}],
    )


def lazy_compute(cloud, directory):
    return nova.LazyCompute(nova_config(cloud, directory))


def private_topic(topic):
    """A topic of this test's own.

    oslo.messaging names a topic's queues after the topic (and server)
    only, whatever the exchange, so conductors and agents of other runs
    on the same RabbitMQ (another test module, a developer's mini-cloud
    deployment) would share the queues and take our messages.
    """
    return f"{topic}-test-{uuid.uuid4().hex[:8]}"


def retarget(api, topic):
    """``api`` (ComputeAPI, ConductorAPI) sending to ``topic``."""
    api.client = rpc.get_client(
        messaging.Target(topic=topic, version=api.RPC_API_VERSION)
    )
    return api


def delete_queues(transport_url, names):
    """Remove queues this test declared from the shared RabbitMQ.

    oslo.messaging leaves its queues behind (not auto-deleted): a
    notification pool's would collect every Nova notification for as
    long as RabbitMQ runs.
    """
    url = transport_url.replace("rabbit://", "amqp://", 1)
    with kombu.Connection(url) as connection:
        channel = connection.channel()
        for name in names:
            channel.queue_delete(name)


@contextlib.contextmanager
def rpc_server(topic, host, endpoint):
    """Serve ``endpoint`` on ``topic`` as ``host`` in this process."""
    server = rpc.get_server(
        messaging.Target(topic=topic, server=host), [endpoint]
    )
    server.start()
    try:
        yield endpoint
    finally:
        server.stop()
        server.wait()
        delete_queues(CONF.transport_url, [topic, f"{topic}.{host}"])
