"""Shared pieces of the RBD backend's functional tests.

Instances are laid out as Nova lays them out with ``images_type = rbd``:
images ``<pool>/<uuid>_disk`` (and ``_disk.local``) with Nova's default
features, and a domain whose network disks name them, authenticated with
a libvirt secret holding the test cluster's key. The guest has no OS, so
the tests write the "guest" data through librbd at known offsets.

Nova's own removal code runs in a child process, as nova-compute runs it,
so its configuration and eventlet-based retry loop stay out of the test
process. Crash tests run the backend in a child that kills itself at a
named point.
"""

import base64
import configparser
import contextlib
import dataclasses
import hashlib
import json
import queue
import re
import subprocess
import sys
import threading
import time
import uuid as uuid_lib

import pytest

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova.compute import domain
from snapmanager_nova.compute import rbd_client
from snapmanager_nova.compute.backends import rbd as rbd_mod
from snapmanager_nova.compute.backends import rbd_names

CONF = sm_conf.CONF

MiB = 1024 * 1024
DISK_SIZE = 64 * MiB
TARGETS = ("vda", "vdb", "vdc", "vdd")

DOMAIN_XML = """\
<domain type='qemu'>
  <uuid>{uuid}</uuid>
  <name>{name}</name>
  <memory unit='KiB'>131072</memory>
  <vcpu>1</vcpu>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:name>rbd-test</nova:name>
      <nova:owner>
        <nova:user uuid="user-1">demo</nova:user>
        <nova:project uuid="project-1">demo</nova:project>
      </nova:owner>
    </nova:instance>
  </metadata>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
{disks}
  </devices>
</domain>
"""

DISK_XML = """\
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw' cache='writeback' discard='unmap'/>
      <auth username='{user}'>
        <secret type='ceph' uuid='{secret}'/>
      </auth>
      <source protocol='rbd' name='{pool}/{image}'>
        <host name='{host}' port='{port}'/>
      </source>
      <target dev='{target}' bus='virtio'/>
    </disk>"""


def nova_features():
    """Nova's images carry Ceph's default features (rbd import, clone)."""
    import rbd

    return (
        rbd.RBD_FEATURE_LAYERING
        | rbd.RBD_FEATURE_EXCLUSIVE_LOCK
        | rbd.RBD_FEATURE_OBJECT_MAP
        | rbd.RBD_FEATURE_FAST_DIFF
        | rbd.RBD_FEATURE_DEEP_FLATTEN
    )


def mon_v1_address(mon_host):
    """(host, port) of the v1 address in a ``mon host`` value."""
    match = re.search(r"v1:([0-9.]+):(\d+)", mon_host)
    if match:
        return match.group(1), int(match.group(2))
    host, port = mon_host.strip("[]").split(",")[0].rsplit(":", 1)
    return host.split(":")[-1], int(port)


# Layout


@dataclasses.dataclass
class RbdLayout:
    """One Nova-like RBD instance: its images and domain XML."""

    uuid: str
    domain_name: str
    pool: str
    disk_names: tuple
    xml: str
    size: int

    def image(self, disk_name="disk"):
        return f"{self.uuid}_{disk_name}"

    @property
    def images(self):
        return [self.image(name) for name in self.disk_names]

    def instance(self):
        return domain.parse_domain_xml(self.xml)


def make_layout(
    ioctx,
    ceph,
    secret_uuid,
    domain_name,
    disk_names=("disk",),
    size=DISK_SIZE,
):
    """Create the images and return the layout (nothing defined yet)."""
    import rbd

    instance_uuid = str(uuid_lib.uuid4())
    host, port = mon_v1_address(ceph["mon_host"])
    disks = []
    for disk_name, target in zip(disk_names, TARGETS, strict=False):
        image = f"{instance_uuid}_{disk_name}"
        rbd.RBD().create(
            ioctx, image, size, old_format=False, features=nova_features()
        )
        disks.append(
            DISK_XML.format(
                user=ceph["user"],
                secret=secret_uuid,
                pool=ceph["pool"],
                image=image,
                host=host,
                port=port,
                target=target,
            )
        )
    xml = DOMAIN_XML.format(
        uuid=instance_uuid, name=domain_name, disks="\n".join(disks)
    )
    return RbdLayout(
        uuid=instance_uuid,
        domain_name=domain_name,
        pool=ceph["pool"],
        disk_names=tuple(disk_names),
        xml=xml,
        size=size,
    )


def remove_everything(ioctx, instance_uuid, prefix="snapmanager-"):
    """Remove the instance's images (Nova's and kept), snapshots and
    group, whatever state a test left them in."""
    import rbd

    names = rbd_names.SnapshotNames(prefix)
    group_name = names.group(instance_uuid)
    if group_name in rbd.RBD().group_list(ioctx):
        group = rbd.Group(ioctx, group_name)
        for member in list(group.list_images()):
            group.remove_image(ioctx, member["name"])
        rbd.RBD().group_remove(ioctx, group_name)  # and its snapshots
    nova, kept = names.instance_images(instance_uuid, rbd.RBD().list(ioctx))
    for name in nova + kept:
        with rbd.Image(ioctx, name) as image:
            for snap in list(image.list_snaps()):
                if snap.get("namespace", 0) != 0:
                    continue
                if image.is_protected_snap(snap["name"]):
                    image.unprotect_snap(snap["name"])
                image.remove_snap(snap["name"])
        rbd.RBD().remove(ioctx, name)
    try:
        ioctx.remove_object(f"{prefix}intent-{instance_uuid}")
    except Exception:  # rados.ObjectNotFound: nothing was left
        pass


# Data


def write(ioctx, image_name, offset, data):
    import rbd

    with rbd.Image(ioctx, image_name) as image:
        image.write(data, offset)


def pattern(tag, length=64 * 1024):
    """Bytes that differ for every tag."""
    seed = hashlib.sha256(tag.encode()).digest()
    return (seed * (length // len(seed) + 1))[:length]


def checksum(ioctx, image_name):
    """sha256 of the image's whole content (and its size)."""
    import rbd

    digest = hashlib.sha256()
    with rbd.Image(ioctx, image_name, read_only=True) as image:
        size = image.size()
        for offset in range(0, size, 4 * MiB):
            digest.update(image.read(offset, min(4 * MiB, size - offset)))
    return digest.hexdigest(), size


def snapshots(ioctx, image_name, all_namespaces=False):
    """Names of the image's snapshots (user namespace unless asked)."""
    import rbd

    with rbd.Image(ioctx, image_name, read_only=True) as image:
        return sorted(
            snap["name"]
            for snap in image.list_snaps()
            if all_namespaces or snap.get("namespace", 0) == 0
        )


def metadata(ioctx, image_name):
    import rbd

    with rbd.Image(ioctx, image_name, read_only=True) as image:
        return dict(image.metadata_list())


def intents(ioctx, instance_uuid):
    """Keys of the instance's crash-intent object ({} when there is
    none), read with the rados bindings."""
    import rados

    # Spelled out: the name is a format older and newer agents share.
    name = f"snapmanager-intent-{instance_uuid}"
    with rados.ReadOpCtx() as op:
        entries, _ = ioctx.get_omap_vals(op, "", "", 1000)
        try:
            ioctx.operate_read_op(op, name)
        except rados.ObjectNotFound:
            return {}
        return {key: value.decode() for key, value in entries}


def watchers(ioctx, image_name):
    """Addresses of the clients that have the image open for writing."""
    import rbd

    with rbd.Image(ioctx, image_name, read_only=True) as image:
        return sorted(w["addr"] for w in image.watchers_list())


def group_state(ioctx, instance_uuid):
    """(members, {snapshot name: state}) of the instance's group, or None."""
    import rbd

    name = rbd_names.SnapshotNames("snapmanager-").group(instance_uuid)
    if name not in rbd.RBD().group_list(ioctx):
        return None
    group = rbd.Group(ioctx, name)
    members = sorted(member["name"] for member in group.list_images())
    snaps = {snap["name"]: snap["state"] for snap in group.list_snaps()}
    return members, snaps


def instance_images(ioctx, instance_uuid):
    """(Nova's, kept) image names of the instance in the pool."""
    import rbd

    return rbd_names.SnapshotNames("snapmanager-").instance_images(
        instance_uuid, rbd.RBD().list(ioctx)
    )


def overrun(stage):
    """A ``_test_crash_point`` stand-in: the call before ``stage``
    overran its deadline."""
    raise exception.BackendTimeout(
        operation=f"snapshot (at {stage})",
        timeout=1,
        origin="timeout",
        origin_code=None,
        detail="deadline passed",
    )


# Stand-ins for libvirt where a test needs a domain state it cannot reach


class FakeDomain:
    """A domain that is shut off, or running with an agent that answers."""

    def __init__(self, active=False, frozen_filesystems=0):
        self.active = active
        self.frozen = frozen_filesystems
        self.calls = []

    def isActive(self):
        return self.active

    def fsFreeze(self, mountpoints=None, flags=0):
        self.calls.append("fsFreeze")
        self.frozen = 2
        return 2

    def fsThaw(self, mountpoints=None, flags=0):
        self.calls.append("fsThaw")
        thawed, self.frozen = self.frozen, 0
        return thawed


class FakeConnection:
    def __init__(self, domains):
        self.domains = domains

    def lookupByUUIDString(self, instance_uuid):
        import libvirt

        try:
            return self.domains[instance_uuid]
        except KeyError:
            raise libvirt.libvirtError("no domain") from None

    def close(self):
        return 0


# Fixtures


@pytest.fixture(scope="session")
def rbd_conf(ceph):
    """Point the agent's [rbd] options at the test cluster."""
    overrides = {
        "ceph_conf": ceph["conf"],
        "rbd_user": ceph["user"],
        "pool": ceph["pool"],
        "rados_op_timeout": 30,
    }
    for name, value in overrides.items():
        CONF.set_override(name, value, group="rbd")
    yield ceph
    for name in overrides:
        CONF.clear_override(name, group="rbd")


@pytest.fixture(scope="session")
def rbd_agent_client(rbd_conf):
    """One Ceph connection for the session, as the agent has one."""
    client = rbd_client.RbdClient()
    yield client
    client.shutdown()


@pytest.fixture
def rbd_backend(rbd_agent_client, libvirt_env):
    """The RBD backend as the agent builds it."""
    import libvirt

    return rbd_mod.RbdBackend(
        client=rbd_agent_client,
        connect=lambda: libvirt.open(libvirt_env["uri"]),
    )


def define_ceph_secret(conn, ceph):
    """An ephemeral, private libvirt secret with the cluster's key, as
    Nova's ``rbd_secret_uuid`` names one; the caller undefines it."""
    parser = configparser.ConfigParser()
    parser.read(ceph["keyring"])
    key = parser["client.%s" % ceph["user"]]["key"].strip()
    secret_uuid = str(uuid_lib.uuid4())
    secret = conn.secretDefineXML(
        "<secret ephemeral='yes' private='yes'><uuid>%s</uuid>"
        "<usage type='ceph'><name>snapmanager-test %s</name></usage>"
        "</secret>" % (secret_uuid, secret_uuid)
    )
    secret.setValue(base64.b64decode(key))
    return secret


@pytest.fixture(scope="session")
def ceph_secret(libvirt_env, ceph):
    """The UUID of a secret from :func:`define_ceph_secret`."""
    import libvirt

    # libvirt-python prints every error to stderr, expected ones too (a
    # test domain that was never defined, an agent that is not there).
    libvirt.registerErrorHandler(lambda _ctx, _error: None, None)
    conn = libvirt.open(libvirt_env["uri"])
    secret = define_ceph_secret(conn, ceph)
    yield secret.UUIDString()
    secret.undefine()
    conn.close()


@pytest.fixture
def rbd_instance(ceph, ceph_client, ceph_secret, domain_name, rbd_conf):
    """Factory of Nova-like RBD instances; everything removed after."""
    made = []

    def make(disk_names=("disk",), size=DISK_SIZE):
        layout = make_layout(
            ceph_client,
            ceph,
            ceph_secret,
            domain_name if not made else f"{domain_name}-{len(made)}",
            disk_names=disk_names,
            size=size,
        )
        made.append(layout)
        return layout

    yield make
    for layout in made:
        remove_everything(ceph_client, layout.uuid)


@contextlib.contextmanager
def running(conn, layout):
    """The layout's domain, defined and started (TCG); destroyed after."""
    import libvirt

    dom = conn.defineXML(layout.xml)
    try:
        dom.create()
        yield dom
    finally:
        if dom.isActive():
            dom.destroy()
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)


@contextlib.contextmanager
def defined(conn, layout):
    """The layout's domain, defined and shut off; undefined after."""
    import libvirt

    dom = conn.defineXML(layout.xml)
    try:
        yield dom
    finally:
        if dom.isActive():
            dom.destroy()
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)


# Nova's own removal code (nova.storage.rbd_utils), in a child process

NOVA_CLEANUP = r"""
import json
import sys
import time

args = json.loads(sys.argv[1])
import nova.conf
from nova.storage import rbd_utils

CONF = nova.conf.CONF
CONF([], project="nova", default_config_files=[])
CONF.set_override("images_rbd_pool", args["pool"], "libvirt")
CONF.set_override("images_rbd_ceph_conf", args["conf"], "libvirt")
CONF.set_override("rbd_user", args["user"], "libvirt")
for name in ("rbd_destroy_volume_retries",
             "rbd_destroy_volume_retry_interval"):
    if args.get(name) is not None:
        CONF.set_override(name, args[name], "libvirt")
uuid = args["uuid"]
# Every removal Nova tries, and a line as soon as one is refused, so a
# test can act between Nova's tries without guessing at their timing.
attempts = {}


def counted_remove(self, ioctx, name):
    # RbdProxy passes every call on to librbd's RBD (__getattr__).
    attempts[name] = attempts.get(name, 0) + 1
    try:
        return self._rbd.remove(ioctx, name)
    except Exception:
        print("refused " + name, flush=True)
        raise


rbd_utils.RbdProxy.remove = counted_remove
print("ready", flush=True)
sys.stdin.readline()
started = time.monotonic()
error = None
try:
    # What LibvirtDriver._cleanup_rbd does for an instance.
    rbd_utils.RBDDriver().cleanup_volumes(lambda disk: disk.startswith(uuid))
except Exception as exc:
    error = "%s: %s" % (type(exc).__name__, exc)
print(json.dumps({
    "elapsed": time.monotonic() - started,
    "error": error,
    "retries": CONF.libvirt.rbd_destroy_volume_retries,
    "interval": CONF.libvirt.rbd_destroy_volume_retry_interval,
    "attempts": attempts,
}), flush=True)
"""


class NovaCleanup:
    """Nova's ``cleanup_volumes`` for one instance, in its own process.

    Importing Nova takes seconds: the child gets ready first, and the
    clock starts when :meth:`start` tells it to go.
    """

    def __init__(self, ceph, instance_uuid, retries=None, interval=None):
        args = {
            "pool": ceph["pool"],
            "conf": ceph["conf"],
            "user": ceph["user"],
            "uuid": instance_uuid,
            "rbd_destroy_volume_retries": retries,
            "rbd_destroy_volume_retry_interval": interval,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-c", NOVA_CLEANUP, json.dumps(args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            raise AssertionError(
                "Nova's RBDDriver could not be set up: "
                + self.process.stderr.read()[-3000:]
            )
        # The child's lines as they come, so that a test can wait for one
        # with a deadline (a pipe's readline has none).
        self._lines = queue.Queue()
        self._out = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _next_line(self, deadline):
        try:
            line = self._lines.get(timeout=max(deadline - time.monotonic(), 0))
        except queue.Empty:
            raise AssertionError(
                "Nova's cleanup said nothing in time"
            ) from None
        if line is not None:
            self._out.append(line)
        return line

    def wait_for_refusal(self, timeout=60):
        """Wait until Nova's removal of an image was refused (it has
        snapshots); return the image's name."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._next_line(deadline)
            if line is None:
                raise AssertionError("Nova's cleanup ended, never refused")
            if line.startswith("refused "):
                return line.split(" ", 1)[1].strip()

    def start(self):
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def result(self, timeout=180):
        deadline = time.monotonic() + timeout
        while self._next_line(deadline) is not None:
            pass
        self.process.wait(timeout=max(deadline - time.monotonic(), 0))
        err = self.process.stderr.read()
        lines = [line for line in self._out if line.startswith("{")]
        if self.process.returncode or not lines:
            raise AssertionError(f"Nova's cleanup died: {err[-3000:]}")
        return json.loads(lines[-1])

    def run(self):
        self.start()
        return self.result()


# A child that takes a snapshot and kills itself at a crash point

CRASHING_SNAPSHOT = r"""
import json
import os
import signal
import sys

args = json.loads(sys.argv[1])
from snapmanager_nova import conf as sm_conf
from snapmanager_nova.compute import domain
from snapmanager_nova.compute.backends import rbd as rbd_mod

CONF = sm_conf.CONF
CONF([], project="snapmanager", default_config_files=[])
for name, value in args["rbd"].items():
    CONF.set_override(name, value, group="rbd")

seen = {}


def crash(stage):
    seen[stage] = seen.get(stage, 0) + 1
    if stage == args["stage"] and seen[stage] == args["occurrence"]:
        os.kill(os.getpid(), signal.SIGKILL)


rbd_mod._test_crash_point = crash
backend = rbd_mod.RbdBackend()
instance = domain.parse_domain_xml(args["xml"])
if args["libvirt_uri"]:
    import libvirt

    dom = libvirt.open(args["libvirt_uri"]).lookupByUUIDString(instance.uuid)
else:

    class ShutOff:
        def isActive(self):
            return False

    dom = ShutOff()
backend.snapshot(instance, dom, args["index"], "prefer")
print("finished without crashing", flush=True)
"""


def crashing_snapshot(
    ceph, layout, index, stage, occurrence=1, libvirt_uri=None
):
    """Run a snapshot in a child killed at ``stage``; its return code."""
    args = {
        "rbd": {
            "ceph_conf": ceph["conf"],
            "rbd_user": ceph["user"],
            "pool": ceph["pool"],
        },
        "xml": layout.xml,
        "index": index,
        "stage": stage,
        "occurrence": occurrence,
        "libvirt_uri": libvirt_uri,
    }
    child = subprocess.run(
        [sys.executable, "-c", CRASHING_SNAPSHOT, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return child.returncode, child.stdout + child.stderr
