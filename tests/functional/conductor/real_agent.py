"""A real conductor and a real compute agent, for the conductor's tests.

Both run as processes (``snapmanager_env``) on the test MariaDB and
RabbitMQ; the agent works on a host directory of its own (Nova's
``instances_path`` and the snapshot store) and on the private libvirtd,
and on the test Ceph when asked to. Instances are Nova-like domains: a
qcow2 ``disk`` over a ``_base`` file, or an RBD ``<uuid>_disk`` image.
"""

import dataclasses
import datetime
import pathlib
import uuid

import pytest

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import context as sm_context
from snapmanager_nova import rpc
from snapmanager_nova.compute import rpcapi as compute_rpcapi
from snapmanager_nova.db import api as db_api
from tests.fixtures.services import unique_host
from tests.fixtures.services import wait_until
from tests.fixtures.testenv import testenv
from tests.functional.compute import nova_like
from tests.functional.compute import rbd_helpers

CONF = sm_conf.CONF
PROJECT = "project-conductor"


@pytest.fixture(scope="module")
def private_bus(snapmanager_env, rabbitmq):
    """The module's services and this process on a RabbitMQ vhost of
    their own.

    Every conductor takes the agents' results from the one queue named
    after its topic, and queues are per vhost: on the test environment's
    shared vhost, the conductors of other test runs on this machine would
    take this module's results, and this module's conductor theirs. (A
    RabbitMQ the test environment did not start is not ours to add vhosts
    to: its vhost is shared.)
    """
    if rabbitmq.get("external"):
        yield
        return
    broker = testenv.RabbitMQ(testenv.env_dir())
    vhost = f"snapmanager-test-{uuid.uuid4().hex[:8]}"
    shared_url = snapmanager_env.transport_url
    try:
        private_url = broker.vhost_url(vhost)
        snapmanager_env.transport_url = private_url
        CONF.set_override("transport_url", private_url)
        rpc.cleanup()
        yield
    finally:
        snapmanager_env.stop_all()
        rpc.cleanup()
        snapmanager_env.transport_url = shared_url
        CONF.set_override("transport_url", shared_url)
        broker.delete_vhost(vhost)


@dataclasses.dataclass
class AgentHost:
    env: object
    sections: dict
    host: str
    instances: pathlib.Path
    store: pathlib.Path
    qemu_log_dir: str
    ctx: object
    compute_api: object
    agent: object = None
    backend: str | None = None

    def start_agent(self, backend="file"):
        """Start the agent, serving one backend.

        One backend only: at start an agent recovers every domain of its
        libvirtd that uses an enabled backend, and the test libvirtd is
        shared with other test runs; an agent that needs no Ceph keeps
        out of their RBD domains.
        """
        self.backend = backend
        self.sections["compute"]["backends"] = backend
        self.env.write_config(self.sections)
        self.agent = self.env.start("snapmanager-compute", self.host)
        wait_until(
            lambda: self._alive(self.agent) and self._registered(),
            timeout=60,
            what=f"the agent on {self.host}",
        )
        return self.agent

    def _alive(self, process):
        assert process.poll() is None, self.env.log_tails()
        return True

    def _registered(self):
        return [
            service
            for service in db_api.service_list(
                self.ctx, binary="snapmanager-compute"
            )
            if service.host == self.host
        ]

    def record(self, instance_uuid, backend, **values):
        """The instance's row, as the API and the inventory make it."""
        return db_api.instance_create_or_update(
            self.ctx,
            instance_uuid,
            dict(
                {
                    "project_id": PROJECT,
                    "host": self.host,
                    "backend": backend,
                    "snapshot_enabled": True,
                },
                **values,
            ),
        )

    def stored(self, instance_uuid, backend):
        """The indexes the agent has, asked through its RPC API."""
        return self.compute_api.list_snapshots(
            self.ctx, self.host, instance_uuid, backend
        )

    def store_dir(self, instance_uuid, index):
        return self.store / instance_uuid / str(index)


def start(env, tmp_path_factory, libvirt_env, ceph=None, conductor=None):
    """Write the config, start a conductor; the agent is started by
    :meth:`AgentHost.start_agent` (at once unless the test wants it
    down first). Several AgentHosts may share one ``env``; the conductor
    options of the first one started are the conductor's."""
    root = tmp_path_factory.mktemp("agent-host")
    instances = root / "instances"
    (instances / "_base").mkdir(parents=True)
    store = root / "snapshots"
    sections = {
        "compute": {
            "instances_path": str(instances),
            "snapshot_store_path": str(store),
            "libvirt_uri": libvirt_env["uri"],
        },
        "conductor": dict({"tick_interval": "1"}, **(conductor or {})),
    }
    if ceph:
        sections["rbd"] = {
            "ceph_conf": ceph["conf"],
            "rbd_user": ceph["user"],
            "pool": ceph["pool"],
            "rados_op_timeout": "30",
        }
    env.write_config(sections)
    ctx = sm_context.get_admin_context()
    if not db_api.service_list(ctx, binary="snapmanager-conductor"):
        process = env.start("snapmanager-conductor", unique_host("conductor"))

        def conductor_up():
            assert process.poll() is None, env.log_tails()
            return db_api.service_list(ctx, binary="snapmanager-conductor")

        wait_until(conductor_up, timeout=60, what="the conductor's heartbeat")
    return AgentHost(
        env=env,
        sections=sections,
        host=unique_host("compute"),
        instances=instances,
        store=store,
        qemu_log_dir=libvirt_env["qemu_log_dir"],
        ctx=ctx,
        compute_api=compute_rpcapi.ComputeAPI(),
    )


def file_instance(agent_host, libvirt_conn, domain_name):
    """A running Nova-like file-backed instance; its uuid."""
    instance = nova_like.make_instance(
        libvirt_conn,
        domain_name,
        str(agent_host.instances),
        agent_host.qemu_log_dir,
    )
    return instance.uuid


def snapshot_status(ctx, snapshot_id, wanted, timeout=60):
    def check():
        snapshot = db_api.snapshot_get(ctx, snapshot_id)
        return snapshot if snapshot.status == wanted else None

    return wait_until(
        check, timeout=timeout, what=f"snapshot {snapshot_id} {wanted}"
    )


def utc(*args):
    return datetime.datetime(*args, tzinfo=datetime.UTC)


# Re-exported for the RBD-backed cases.
rbd = rbd_helpers


@pytest.fixture(scope="module", params=["file", "rbd"])
def agent_host(
    request, private_bus, snapmanager_env, tmp_path_factory, libvirt_env
):
    """An agent per backend (see AgentHost.start_agent); modules that
    use it import it with ``instance`` and ``private_bus``."""
    ceph = request.getfixturevalue("ceph") if request.param == "rbd" else None
    host = start(snapmanager_env, tmp_path_factory, libvirt_env, ceph=ceph)
    host.start_agent(request.param)
    return host


@pytest.fixture
def instance(request, agent_host, libvirt_conn, domain_name):
    """(uuid, backend, gone(index)): a Nova-like instance on the agent's
    host, and how to tell that a snapshot left its storage."""
    backend = agent_host.backend
    if backend == "file":
        uuid = file_instance(agent_host, libvirt_conn, domain_name)

        def gone(index):
            return not agent_host.store_dir(uuid, index).exists()

        agent_host.record(uuid, backend)
        yield uuid, backend, gone
        return
    ceph = request.getfixturevalue("ceph")
    ceph_client = request.getfixturevalue("ceph_client")
    layout = rbd.make_layout(
        ceph_client,
        ceph,
        request.getfixturevalue("ceph_secret"),
        domain_name,
    )

    def gone(index):
        return f"snapmanager-{index}" not in rbd.snapshots(
            ceph_client, layout.image()
        )

    try:
        with rbd.defined(libvirt_conn, layout):
            agent_host.record(layout.uuid, backend)
            yield layout.uuid, backend, gone
    finally:
        rbd.remove_everything(ceph_client, layout.uuid)
