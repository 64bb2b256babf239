"""Fixtures for the compute backends against the private libvirtd.

One Nova-like host directory per session (instances and snapshot store
side by side under pytest's temporary directory) and one privsep daemon,
started by forking: the tests run as root, so no sudo or rootwrap is
involved, but every root operation still crosses the daemon's channel as
it does in production.
"""

import os

import libvirt
import pytest
from oslo_privsep import priv_context

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import privsep
from snapmanager_nova.compute.backends import qcow2
from tests.functional.compute import nova_like

CONF = sm_conf.CONF


def _quiet_libvirt(_ctx, _error):
    # libvirt-python prints every error to stderr by default; the tests
    # check the errors they expect.
    pass


@pytest.fixture(scope="session")
def nova_host(libvirt_env, tmp_path_factory):
    """Paths of the host: "instances", "store"; CONF points at them."""
    root = tmp_path_factory.mktemp("nova-host")
    paths = {
        "instances": str(root / "instances"),
        "store": str(root / "snapshots"),
        "uri": libvirt_env["uri"],
    }
    os.makedirs(os.path.join(paths["instances"], "_base"))
    overrides = {
        "instances_path": paths["instances"],
        "snapshot_store_path": paths["store"],
        "libvirt_uri": libvirt_env["uri"],
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
def backend(nova_host, libvirt_conn):
    return qcow2.Qcow2Backend(connect=lambda: libvirt_conn)


@pytest.fixture
def make_instance(nova_host, libvirt_env, libvirt_conn, domain_name):
    """Build one Nova-like instance per test (the domain is the test's
    ``domain_name``, removed afterwards by its fixture)."""

    def make(**kwargs):
        return nova_like.make_instance(
            libvirt_conn,
            domain_name,
            nova_host["instances"],
            libvirt_env["qemu_log_dir"],
            **kwargs,
        )

    return make
