"""The test environment and the agent's configuration for one run.

libvirt (and Ceph, for the RBD cases) come from the test environment
(tools/testenv), started if they are not up and stopped afterwards if
this run started them, unless ``SNAPMANAGER_TESTENV_KEEP=1``, as for the
functional tests. Everything else (Nova's instances directory, the
snapshot store, the raw calls' files) lives in one temporary directory
removed at the end.
"""

import contextlib
import dataclasses
import os
import shutil
import tempfile
import uuid

import libvirt

from benchmarks import common
from snapmanager_nova import conf as sm_conf
from snapmanager_nova import privsep

CONF = sm_conf.CONF
TestEnvError = common.TestEnvError


@dataclasses.dataclass(frozen=True)
class Options:
    repeat: int  # timed repetitions, after one warm-up
    base_mib: int  # data in each disk's base image (qcow2)
    written_mib: int  # data the guest wrote to each disk
    disk_gib: int = 1  # the incremental chain's disk (qcow2-chain)
    changed_mib: int = 16  # written before each of its snapshots


@dataclasses.dataclass
class Environment:
    uri: str
    conn: object  # libvirt connection
    qemu_log_dir: str
    domain_prefix: str
    instances: str  # Nova's instances_path
    scratch: str  # the raw calls' snapshots
    ceph: dict | None = None
    ioctx: object = None  # the raw calls' own rados I/O context
    secret_uuid: str | None = None

    def domain_name(self):
        # Unique: the cgroups of running domains are named after them and
        # shared with the host.
        return f"{self.domain_prefix}bench-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def _overrides(group, values):
    for name, value in values.items():
        CONF.set_override(name, value, group=group)
    try:
        yield
    finally:
        for name in values:
            CONF.clear_override(name, group=group)


@contextlib.contextmanager
def prepared(with_ceph):
    """Yield the :class:`Environment` of one run; tear it down after."""
    with contextlib.ExitStack() as stack:
        libvirt_info = stack.enter_context(common.component("libvirt"))
        ceph = (
            stack.enter_context(common.component("ceph"))
            if with_ceph
            else None
        )
        root = tempfile.mkdtemp(prefix="snapmanager-bench-")
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        instances = os.path.join(root, "instances")
        scratch = os.path.join(root, "raw")
        os.makedirs(os.path.join(instances, "_base"))
        os.makedirs(scratch)
        stack.enter_context(
            _overrides(
                "compute",
                {
                    "instances_path": instances,
                    "snapshot_store_path": os.path.join(root, "snapshots"),
                    "libvirt_uri": libvirt_info["uri"],
                    "call_timeout": 60,
                    "copy_timeout": 120,
                },
            )
        )
        if ceph:
            stack.enter_context(
                _overrides(
                    "rbd",
                    {
                        "ceph_conf": ceph["conf"],
                        "rbd_user": ceph["user"],
                        "pool": ceph["pool"],
                        "rados_op_timeout": 30,
                    },
                )
            )
        # The daemon is a fork of this process (when root, as the test
        # environment runs): it sees the overrides above.
        privsep.start_daemon()
        stack.callback(privsep.sys_admin_pctxt.stop)
        conn = libvirt.open(libvirt_info["uri"])
        stack.callback(conn.close)
        env = Environment(
            uri=libvirt_info["uri"],
            conn=conn,
            qemu_log_dir=libvirt_info["qemu_log_dir"],
            domain_prefix=libvirt_info["domain_prefix"],
            instances=instances,
            scratch=scratch,
        )
        if ceph:
            stack.enter_context(_raw_ceph(env, ceph))
        yield env


@contextlib.contextmanager
def _raw_ceph(env, ceph):
    """A Ceph connection of the raw calls' own, beside the agent's, and
    the libvirt secret the domains authenticate with."""
    with common.ceph_pool(env.conn, ceph) as (ioctx, secret_uuid):
        env.ioctx = ioctx
        env.ceph = ceph
        env.secret_uuid = secret_uuid
        yield
