"""What more than one benchmark needs from the test environment.

Components come from tools/testenv: started if they are down, and
stopped afterwards if this run started them, unless
``SNAPMANAGER_TESTENV_KEEP=1``, as for the functional tests.
"""

import contextlib
import time
import uuid

from tests.fixtures import testenv as testenv_fixtures
from tests.functional.compute import rbd_helpers

TestEnvError = testenv_fixtures.testenv.TestEnvError

# A QEMU killed uncleanly keeps watching its images until the OSD's watch
# timeout (30 s by default): they cannot be removed before that.
REMOVE_PATIENCE = 45


@contextlib.contextmanager
def component(name):
    """Yield the env.json entry of component ``name``, brought up."""
    testenv = testenv_fixtures.testenv
    was_up = testenv.is_up(name)
    info = testenv.ensure_up(name)
    try:
        yield info
    finally:
        if not was_up and not testenv_fixtures.keep_running():
            testenv.stop(name)


@contextlib.contextmanager
def ceph_pool(conn, ceph):
    """Yield ``(ioctx, secret_uuid)``: a rados I/O context on the test
    pool, on a Ceph connection of its own, and the libvirt secret (on
    libvirt connection ``conn``) that Nova-like domains authenticate
    with. Both are gone afterwards."""
    import rados

    cluster = rados.Rados(conffile=ceph["conf"], rados_id=ceph["user"])
    cluster.connect(timeout=30)
    ioctx = secret = None
    try:
        ioctx = cluster.open_ioctx(ceph["pool"])
        secret = rbd_helpers.define_ceph_secret(conn, ceph)
        yield ioctx, secret.UUIDString()
    finally:
        if secret is not None:
            secret.undefine()
        if ioctx is not None:
            ioctx.close()
        cluster.shutdown()


def remove_rbd_instance(ioctx, instance_uuid):
    """Remove the instance's images, snapshots and group, waiting out the
    watches a killed QEMU leaves behind."""
    import rbd

    deadline = time.monotonic() + REMOVE_PATIENCE
    while True:
        try:
            rbd_helpers.remove_everything(ioctx, instance_uuid)
            return
        except rbd.ImageBusy:
            if time.monotonic() > deadline:
                raise
        time.sleep(1)


@contextlib.contextmanager
def private_vhost(rabbitmq):
    """Yield a transport URL on a RabbitMQ vhost of this run's own.

    Every Snapmanager conductor consumes casts from the queue named after
    its topic, and queues are per vhost: on the shared vhost, conductors
    of other test set-ups running meanwhile would take (and drop) this
    run's agent results. The vhost and its queues are deleted afterwards.
    A RabbitMQ the test environment did not start (``external``) is not
    ours to add vhosts to: its own vhost is yielded, shared.
    """
    if rabbitmq.get("external"):
        yield rabbitmq["transport_url"]
        return
    testenv = testenv_fixtures.testenv
    broker = testenv.RabbitMQ(testenv.env_dir())
    vhost = f"snapmanager-bench-{uuid.uuid4().hex[:8]}"
    try:
        yield broker.vhost_url(vhost)
    finally:
        broker.delete_vhost(vhost)
