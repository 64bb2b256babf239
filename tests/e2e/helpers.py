"""What the end-to-end tests of both disk modes share."""

import contextlib
import hashlib
import uuid
import xml.etree.ElementTree as ET

import libvirt
import pytest
from openstack import exceptions as os_exc

NOVA_NS = {"nova": "http://openstack.org/xmlns/libvirt/nova/1.1"}
# Tiny guests under TCG on a busy 2-core machine: generous, not slow.
WAIT = 180


def create_server(cloud, conn, prefix):
    """A `--nic none` server of the tiny image and flavor, ACTIVE."""
    server = conn.compute.create_server(
        name="%s-%s" % (prefix, uuid.uuid4().hex[:6]),
        image_id=cloud.image_id,
        flavor_id=cloud.flavor_id,
        networks="none",
    )
    return wait_status(cloud, conn, server, "ACTIVE")


def wait_status(cloud, conn, server, status):
    try:
        return conn.compute.wait_for_server(
            server, status=status, failures=["ERROR"], wait=WAIT
        )
    except (os_exc.ResourceFailure, os_exc.ResourceTimeout) as exc:
        current = conn.compute.get_server(server.id)
        pytest.fail(
            "server %s did not reach %s (%s, fault %s): %s\n%s"
            % (
                server.id,
                status,
                current.status,
                current.fault,
                exc,
                cloud.log_tail("nova-compute"),
            ),
            pytrace=False,
        )


@contextlib.contextmanager
def cleanup_server(cloud, server):
    """Delete the server at the end unless a test deleted it already."""
    try:
        yield server
    finally:
        admin = cloud.connect("admin")
        with contextlib.suppress(os_exc.NotFoundException):
            admin.compute.delete_server(server.id)
            admin.compute.wait_for_delete(
                admin.compute.get_server(server.id), wait=WAIT
            )


def domain(cloud, server_id):
    """Nova's libvirt domain of the server (libvirt's UUID is Nova's)."""
    conn = libvirt.open(cloud.libvirt_uri)
    try:
        return conn.lookupByUUIDString(server_id)
    finally:
        # The domain keeps its own reference to the connection.
        conn.close()


def domain_xml(cloud, server_id):
    return ET.fromstring(domain(cloud, server_id).XMLDesc())


def domain_is_gone(cloud, server_id):
    try:
        domain(cloud, server_id)
    except libvirt.libvirtError as exc:
        return exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN
    return False


def check_nova_metadata(cloud, xml, server):
    """The `<nova:instance>` metadata a real nova-compute writes."""
    instance = xml.find("metadata/nova:instance", NOVA_NS)
    assert instance is not None, "no Nova metadata in the domain XML"
    assert instance.findtext("nova:name", namespaces=NOVA_NS) == server.name
    owner = instance.find("nova:owner/nova:project", NOVA_NS)
    assert owner.get("uuid") == cloud.projects["demo"]
    assert owner.text == "demo"
    user = instance.find("nova:owner/nova:user", NOVA_NS)
    assert user.text == "demo"
    root = instance.find("nova:root", NOVA_NS)
    assert root.get("type") == "image"
    assert root.get("uuid") == cloud.image_id
    flavor = instance.find("nova:flavor", NOVA_NS)
    assert flavor.get("name") == "minicloud.tiny"


def root_disk(xml):
    disks = xml.findall("devices/disk[@device='disk']")
    assert len(disks) == 1, "expected one disk, got %d" % len(disks)
    return disks[0]


def nova_base_path(cloud):
    """Nova's cached copy of the image: instances/_base, named after the
    SHA-1 of the image ID (converted to raw)."""
    digest = hashlib.sha1(cloud.image_id.encode()).hexdigest()
    return str(cloud.instances_path / "_base" / digest)


def check_disk_is_qcow2_over_base(cloud, server_id):
    """The domain's disk is Nova's file-backed one: instances/<uuid>/disk,
    qcow2 over the raw _base file."""
    disk = root_disk(domain_xml(cloud, server_id))
    assert disk.get("type") == "file"
    assert disk.find("driver").get("type") == "qcow2"
    path = cloud.instances_path / server_id / "disk"
    assert disk.find("source").get("file") == str(path)
    assert path.is_file()
    backing = disk.find("backingStore")
    assert backing.find("format").get("type") == "raw"
    assert backing.find("source").get("file") == nova_base_path(cloud)


def check_disk_is_rbd_image(cloud, server_id):
    """The domain's disk is Nova's RBD image <pool>/<uuid>_disk, with the
    cloud's libvirt secret."""
    disk = root_disk(domain_xml(cloud, server_id))
    assert disk.get("type") == "network"
    source = disk.find("source")
    assert source.get("protocol") == "rbd"
    assert source.get("name") == "%s/%s_disk" % (cloud.ceph["pool"], server_id)
    secret = disk.find("auth/secret")
    assert secret.get("type") == "ceph"
    assert secret.get("uuid") == cloud.ceph["secret_uuid"]


def check_admin_sees_host(cloud, server):
    """As admin, the server lists with its compute host."""
    admin = cloud.connect("admin")
    listed = {
        s.id: s for s in admin.compute.servers(all_projects=True, details=True)
    }
    assert server.id in listed
    assert listed[server.id].compute_host == cloud.host
    assert listed[server.id].project_id == cloud.projects["demo"]


def check_invisible_to_other(cloud, server):
    other = cloud.connect("other")
    assert server.id not in {s.id for s in other.compute.servers()}
    with pytest.raises(os_exc.NotFoundException):
        other.compute.get_server(server.id)


def check_stop_and_start(cloud, conn, server):
    conn.compute.stop_server(server)
    wait_status(cloud, conn, server, "SHUTOFF")
    assert not domain(cloud, server.id).isActive()
    conn.compute.start_server(server)
    wait_status(cloud, conn, server, "ACTIVE")
    assert domain(cloud, server.id).isActive()


def check_lock_and_unlock(cloud, conn, server, notifications):
    reason = "e2e: restore in progress"
    conn.compute.lock_server(server, locked_reason=reason)
    locked = conn.compute.get_server(server.id)
    assert locked.is_locked
    assert locked.locked_reason == reason
    # Nova carries the reason in its notification too: that is how
    # Snapmanager's conductor will tell its own locks from a tenant's.
    payload = notifications.wait_for("instance.lock", server.id)
    assert payload["locked_reason"] == reason
    # A locked server refuses its owner's actions.
    with pytest.raises(os_exc.ConflictException):
        conn.compute.stop_server(server)
    conn.compute.unlock_server(server)
    unlocked = conn.compute.get_server(server.id)
    assert not unlocked.is_locked
    assert unlocked.locked_reason is None
    notifications.wait_for("instance.unlock", server.id)


def delete_and_check_notifications(cloud, conn, server, notifications):
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=WAIT)
    notifications.wait_for("instance.delete.start", server.id)
    end = notifications.wait_for("instance.delete.end", server.id)
    assert end["state"] == "deleted"
    assert domain_is_gone(cloud, server.id)
