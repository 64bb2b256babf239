"""Fixtures for the compute backends against the private libvirtds.

The file-backend tests (everything that uses ``nova_host``) run twice:
on the test environment's ``libvirt`` (QEMU as root, no relabelling) and
on ``libvirt-production``, where QEMU runs as libvirt-qemu with dynamic
ownership, as on a compute host; test ids carry ``root`` or
``production``.

One Nova-like host directory per libvirtd (instances and snapshot store
side by side, in a directory QEMU's user can reach, like
/var/lib/nova) and one privsep daemon, started by forking: the tests
run as root, so no sudo or rootwrap is involved, but every root
operation still crosses the daemon's channel as it does in production.
"""

import os
import shutil
import tempfile
import uuid

import libvirt
import pytest
from oslo_privsep import priv_context

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import privsep
from snapmanager_nova.compute.backends import qcow2
from tests.fixtures import testenv as testenv_fixtures
from tests.functional.compute import nova_like

CONF = sm_conf.CONF


def _quiet_libvirt(_ctx, _error):
    # libvirt-python prints every error to stderr by default; the tests
    # check the errors they expect.
    pass


@pytest.fixture(scope="session", params=["root", "production"])
def file_libvirt(request):
    """The env.json entry of the libvirtd the file-backend tests use."""
    if request.param == "root":
        return request.getfixturevalue("libvirt_env")
    return request.getfixturevalue("libvirt_production_env")


@pytest.fixture(scope="session")
def nova_host(file_libvirt):
    """Paths of the host: "instances", "store", "uri"; CONF points at
    them."""
    # Not under pytest's own temporary directory, which only root may
    # enter: QEMU as libvirt-qemu must reach the disks, as it reaches
    # /var/lib/nova/instances on a compute host.
    root = tempfile.mkdtemp(prefix="snapmanager-nova-host-")
    os.chmod(root, 0o755)
    paths = {
        "instances": os.path.join(root, "instances"),
        "store": os.path.join(root, "snapshots"),
        "uri": file_libvirt["uri"],
        "qemu_log_dir": file_libvirt["qemu_log_dir"],
        "domain_prefix": file_libvirt["domain_prefix"],
        "qemu_user": file_libvirt.get("qemu_user", "root"),
    }
    os.makedirs(os.path.join(paths["instances"], "_base"))
    overrides = {
        "instances_path": paths["instances"],
        "snapshot_store_path": paths["store"],
        "libvirt_uri": file_libvirt["uri"],
        "call_timeout": 60,
        "copy_timeout": 120,
    }
    for name, value in overrides.items():
        CONF.set_override(name, value, group="compute")
    libvirt.registerErrorHandler(_quiet_libvirt, None)
    # The daemon is a fork of this process: it sees the overrides above.
    privsep.sys_admin_pctxt.start(priv_context.Method.FORK)
    yield paths
    privsep.sys_admin_pctxt.stop()
    for name in overrides:
        CONF.clear_override(name, group="compute")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def file_conn(nova_host):
    """A connection to the libvirtd of ``nova_host``."""
    conn = libvirt.open(nova_host["uri"])
    yield conn
    conn.close()


@pytest.fixture
def file_domain_name(nova_host, file_conn):
    """A unique domain name on that libvirtd; removed after the test."""
    name = nova_host["domain_prefix"] + uuid.uuid4().hex[:12]
    yield name
    testenv_fixtures.remove_domain(file_conn, name)


@pytest.fixture
def file_mode():
    """Set ``[compute] file_snapshot_mode`` for one test."""
    modes = []

    def set_mode(mode):
        modes.append(mode)
        CONF.set_override("file_snapshot_mode", mode, group="compute")

    yield set_mode
    if modes:
        CONF.clear_override("file_snapshot_mode", group="compute")


@pytest.fixture
def backend(nova_host, file_conn):
    return qcow2.Qcow2Backend(connect=lambda: file_conn)


@pytest.fixture
def make_instance(nova_host, file_conn, file_domain_name):
    """Build one Nova-like instance per test (the domain is the test's
    ``file_domain_name``, removed afterwards by its fixture)."""

    def make(**kwargs):
        return nova_like.make_instance(
            file_conn,
            file_domain_name,
            nova_host["instances"],
            nova_host["qemu_log_dir"],
            **kwargs,
        )

    return make
