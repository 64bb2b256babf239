"""The test environment's components do the real thing.

Each test drives one component the way Snapmanager will: MariaDB through
SQLAlchemy and PyMySQL, RabbitMQ through oslo.messaging RPC, libvirt/QEMU
through libvirt-python (external snapshot, active commit, pivot), Ceph
through the rados/rbd bindings (snapshot and rollback).
"""

import json
import os
import pathlib
import subprocess
import threading
import time
import uuid
import xml.etree.ElementTree as ET

import pytest
import sqlalchemy as sa

from tests.fixtures import testenv as testenv_fixtures

pytestmark = pytest.mark.functional

MiB = 1024 * 1024


# -- MariaDB ------------------------------------------------------------


def test_mariadb_rejects_duplicate_unique_key(mariadb_database_url):
    engine = sa.create_engine(mariadb_database_url, poolclass=sa.pool.NullPool)
    meta = sa.MetaData()
    table = sa.Table(
        "things",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.UniqueConstraint("name", name="uniq_things0name"),
        mysql_engine="InnoDB",
    )
    try:
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(table.insert(), {"name": "one"})

        with pytest.raises(sa.exc.IntegrityError) as raised:
            with engine.begin() as conn:
                conn.execute(table.insert(), {"name": "one"})

        assert raised.value.orig.args[0] == 1062  # ER_DUP_ENTRY
        with engine.connect() as conn:
            count = conn.execute(
                sa.select(sa.func.count()).select_from(table)
            ).scalar()
            database = conn.execute(sa.text("SELECT DATABASE()")).scalar()
        assert count == 1
        assert database == sa.engine.make_url(mariadb_database_url).database
        assert database.startswith("snapmanager_test_")
    finally:
        engine.dispose()


def test_env_json_describes_running_components(mariadb):
    env_json = testenv_fixtures.testenv.env_dir() / "env.json"
    env = json.loads(env_json.read_text())
    assert env["mariadb"] == mariadb


# -- RabbitMQ -----------------------------------------------------------


class EchoEndpoint:
    def echo(self, ctxt, value):
        return {"value": value, "thread": threading.get_ident()}


@pytest.fixture
def messaging_conf():
    from oslo_config import cfg
    from oslo_messaging import conffixture

    # oslo.messaging needs the global CONF (a private ConfigOpts lacks
    # options it registers there). Building the fixture registers them; it
    # is not set up, since its cleanup resets all of CONF, overrides that
    # session-scoped fixtures made included.
    conffixture.ConfFixture(cfg.CONF)
    return cfg.CONF


def delete_queues(transport_url, names):
    """Delete the queues an RPC server declared (they outlive it)."""
    import kombu

    # kombu speaks the same AMQP but spells the scheme differently.
    url = "amqp" + transport_url[len("rabbit") :]
    with kombu.Connection(url) as conn:
        for name in names:
            conn.default_channel.queue_delete(name)


def test_rabbitmq_rpc_call_round_trips(rabbitmq, messaging_conf):
    import oslo_messaging

    transport = oslo_messaging.get_rpc_transport(
        messaging_conf, url=rabbitmq["transport_url"]
    )
    topic = "snapmanager-test-%s" % uuid.uuid4().hex[:12]
    target = oslo_messaging.Target(topic=topic, server="host1")
    server = oslo_messaging.get_rpc_server(transport, target, [EchoEndpoint()])
    server.start()
    try:
        client = oslo_messaging.get_rpc_client(transport, target, timeout=30)
        reply = client.call({}, "echo", value="ping")
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
        delete_queues(rabbitmq["transport_url"], [topic, topic + ".host1"])

    assert reply["value"] == "ping"
    # The endpoint ran in the server's thread, not in the caller's.
    assert reply["thread"] != threading.get_ident()


# -- libvirt / QEMU -----------------------------------------------------

DOMAIN_XML = """\
<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
"""

SNAPSHOT_XML = """\
<domainsnapshot>
  <disks>
    <disk name='vda' snapshot='external'>
      <driver type='qcow2'/>
      <source file='{overlay}'/>
    </disk>
  </disks>
</domainsnapshot>
"""

PATTERN = 0xAB


def qemu_img_create(path, backing=None):
    argv = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing:
        argv += ["-b", str(backing), "-F", "qcow2"]
    subprocess.run([*argv, str(path), "16M"], check=True)


def has_pattern(image, pattern, force_share=False):
    """Whether the image's first 64 KiB all hold the byte `pattern`.

    qemu-io exits non-zero when `read -P` finds other data. -U (force
    share) reads an image a running QEMU holds; valid only for an image
    QEMU does not write to.
    """
    argv = ["qemu-io", "-r", "-f", "qcow2"]
    if force_share:
        argv.append("-U")
    result = subprocess.run(
        [*argv, "-c", "read -P %d 0 64k" % pattern, str(image)],
        capture_output=True,
        text=True,
    )
    return result.returncode == 0


def disk_chain(dom):
    """The vda disk's alias and its source files, active layer first."""
    disk = ET.fromstring(dom.XMLDesc()).find(
        "./devices/disk/target[@dev='vda']/.."
    )
    chain = []
    node = disk
    while node is not None and node.find("source") is not None:
        chain.append(node.find("source").get("file"))
        node = node.find("backingStore")
    return disk.find("alias").get("name"), chain


def qemu_pid(name):
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = pathlib.Path("/proc", entry, "cmdline").read_bytes()
        except OSError:
            continue
        if b"guest=%s," % name.encode() in cmdline:
            return int(entry)
    raise AssertionError("no QEMU process for %s" % name)


def parent_pid(pid):
    stat = pathlib.Path("/proc", str(pid), "stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def commit_and_pivot(dom, disk, base, timeout=30):
    """Active blockCommit of `disk` down to `base`, then pivot to it."""
    import libvirt

    dom.blockCommit(
        disk, base, None, 0, libvirt.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE
    )
    deadline = time.monotonic() + timeout
    while True:
        info = dom.blockJobInfo(disk, 0)
        if info and info["cur"] == info["end"]:
            try:
                dom.blockJobAbort(
                    disk, libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT
                )
                return
            except libvirt.libvirtError as exc:
                # Not ready for the pivot yet, even when cur == end.
                if exc.get_error_code() != libvirt.VIR_ERR_BLOCK_COPY_ACTIVE:
                    raise
        assert time.monotonic() < deadline, "block commit never got ready"
        time.sleep(0.01)


def test_libvirt_external_snapshot_and_active_commit(
    libvirt_env, libvirt_conn, domain_name, tmp_path
):
    import libvirt
    import libvirt_qemu

    base = tmp_path / "base.qcow2"
    disk = tmp_path / "disk.qcow2"
    overlay = tmp_path / "overlay.qcow2"
    qemu_img_create(base)
    qemu_img_create(disk, backing=base)

    dom = libvirt_conn.createXML(
        DOMAIN_XML.format(name=domain_name, disk=disk), 0
    )
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    # The subreaper adopted the daemonized QEMU: it reaps it at destroy.
    assert parent_pid(qemu_pid(domain_name)) == libvirt_env["pid"]

    dom.snapshotCreateXML(
        SNAPSHOT_XML.format(overlay=overlay),
        libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY
        | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
        | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA,
    )
    alias, chain = disk_chain(dom)
    assert chain == [str(overlay), str(disk), str(base)]
    assert dom.snapshotListNames() == []

    # Write as the guest would: through QEMU's own block layer into the
    # active layer. Writing to the overlay file from outside while QEMU
    # has it open would corrupt it.
    libvirt_qemu.qemuMonitorCommand(
        dom,
        'qemu-io -d /machine/peripheral/%s/virtio-backend "write -P %d 0 64k"'
        % (alias, PATTERN),
        libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP,
    )
    # The old top is now a read-only backing file: safe to read.
    assert not has_pattern(disk, PATTERN, force_share=True)

    commit_and_pivot(dom, "vda", str(disk))

    assert disk_chain(dom)[1] == [str(disk), str(base)]
    assert dom.snapshotListNames() == []
    assert dom.blockJobInfo("vda", 0) == {}
    dom.destroy()

    # The write went from the overlay into disk.qcow2, and no further.
    assert has_pattern(disk, PATTERN)
    assert has_pattern(base, 0)
    overlay.unlink()


# -- Ceph ---------------------------------------------------------------


def test_ceph_rollback_restores_snapshot_data(ceph_client):
    import rbd

    name = "snapmanager-test-%s" % uuid.uuid4().hex[:12]
    original = os.urandom(64 * 1024)
    changed = os.urandom(64 * 1024)
    rbd.RBD().create(ceph_client, name, 4 * MiB)
    try:
        with rbd.Image(ceph_client, name) as image:
            image.write(original, 0)
            image.create_snap("before")
            image.write(changed, 0)
            assert image.read(0, len(changed)) == changed

            image.rollback_to_snap("before")

            assert image.read(0, len(original)) == original
            assert [s["name"] for s in image.list_snaps()] == ["before"]
    finally:
        with rbd.Image(ceph_client, name) as image:
            for snap in list(image.list_snaps()):
                image.remove_snap(snap["name"])
        rbd.RBD().remove(ceph_client, name)
    assert name not in rbd.RBD().list(ceph_client)
