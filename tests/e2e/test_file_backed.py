"""A real Nova with file-backed qcow2 disks, end to end.

As `demo`: a `--nic none` server of the tiny image comes up ACTIVE, its
libvirt domain carries Nova's metadata and its disk is
instances/<uuid>/disk over a raw file in instances/_base; it stops,
starts, locks with a reason, unlocks and is deleted, and Nova says so on
the notification bus. As `other`, it does not exist.

The tests of this module run in order on one server.
"""

import pytest

from tests.e2e import helpers


@pytest.fixture(scope="module")
def demo(minicloud):
    return minicloud.connect("demo")


@pytest.fixture(scope="module")
def server(minicloud, demo):
    created = helpers.create_server(minicloud, demo, "e2e-file")
    with helpers.cleanup_server(minicloud, created):
        yield created


def test_server_is_active_on_the_compute_host(minicloud, server):
    assert server.status == "ACTIVE"
    helpers.check_admin_sees_host(minicloud, server)


def test_domain_carries_nova_metadata(minicloud, server):
    xml = helpers.domain_xml(minicloud, server.id)
    assert xml.findtext("name").startswith("instance-")
    helpers.check_nova_metadata(minicloud, xml, server)


def test_disk_is_qcow2_over_base(minicloud, server):
    helpers.check_disk_is_qcow2_over_base(minicloud, server.id)


def test_other_project_cannot_see_the_server(minicloud, server):
    helpers.check_invisible_to_other(minicloud, server)


def test_stop_and_start(minicloud, demo, server):
    helpers.check_stop_and_start(minicloud, demo, server)


def test_lock_with_reason_and_unlock(
    minicloud, demo, server, nova_notifications
):
    helpers.check_lock_and_unlock(minicloud, demo, server, nova_notifications)


def test_delete(minicloud, demo, server, nova_notifications):
    helpers.delete_and_check_notifications(
        minicloud, demo, server, nova_notifications
    )
    assert not (minicloud.instances_path / server.id).exists()
