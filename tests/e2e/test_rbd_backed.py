"""A real Nova with its disks on Ceph RBD (images_type=rbd), end to end.

The same life as in test_file_backed.py, with the disk where Nova puts it
in RBD mode: the image <uuid>_disk in the test Ceph's pool, attached over
the network with the ephemeral libvirt secret, and removed on delete.
"""

import pytest

from tests.e2e import helpers


@pytest.fixture(scope="module")
def demo(minicloud_rbd):
    return minicloud_rbd.connect("demo")


@pytest.fixture(scope="module")
def server(minicloud_rbd, demo):
    created = helpers.create_server(minicloud_rbd, demo, "e2e-rbd")
    with helpers.cleanup_server(minicloud_rbd, created):
        yield created


def _rbd_images(ceph_client):
    import rbd

    return set(rbd.RBD().list(ceph_client))


def test_server_is_active_on_the_compute_host(minicloud_rbd, server):
    assert server.status == "ACTIVE"
    helpers.check_admin_sees_host(minicloud_rbd, server)


def test_domain_carries_nova_metadata(minicloud_rbd, server):
    xml = helpers.domain_xml(minicloud_rbd, server.id)
    helpers.check_nova_metadata(minicloud_rbd, xml, server)


def test_disk_is_an_rbd_image(minicloud_rbd, server, ceph_client):
    helpers.check_disk_is_rbd_image(minicloud_rbd, server.id)
    assert "%s_disk" % server.id in _rbd_images(ceph_client)
    # Nothing of the disk on the host's file system.
    assert not (minicloud_rbd.instances_path / server.id / "disk").exists()


def test_other_project_cannot_see_the_server(minicloud_rbd, server):
    helpers.check_invisible_to_other(minicloud_rbd, server)


def test_stop_and_start(minicloud_rbd, demo, server):
    helpers.check_stop_and_start(minicloud_rbd, demo, server)


def test_lock_with_reason_and_unlock(
    minicloud_rbd, demo, server, nova_notifications
):
    helpers.check_lock_and_unlock(
        minicloud_rbd, demo, server, nova_notifications
    )


def test_delete_removes_the_rbd_image(
    minicloud_rbd, demo, server, nova_notifications, ceph_client
):
    helpers.delete_and_check_notifications(
        minicloud_rbd, demo, server, nova_notifications
    )
    assert not any(
        name.startswith(server.id) for name in _rbd_images(ceph_client)
    )
