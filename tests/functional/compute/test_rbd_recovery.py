"""An agent killed (SIGKILL) in the middle of a snapshot leaves marks that
the next start's recover() finds: no partial snapshot is ever counted or
kept, no image stays in a group (Nova's delete would fail on it), and no
guest stays frozen."""

import signal

from tests.functional.compute import rbd_helpers as helpers

# The fixtures this module uses, from the shared helpers.
ceph_secret = helpers.ceph_secret
rbd_conf = helpers.rbd_conf
rbd_agent_client = helpers.rbd_agent_client
rbd_backend = helpers.rbd_backend
rbd_instance = helpers.rbd_instance

TWO_DISKS = ("disk", "disk.local")
KILLED = -signal.SIGKILL


def _crash(ceph, layout, index, stage, occurrence=1, libvirt_uri=None):
    code, output = helpers.crashing_snapshot(
        ceph, layout, index, stage, occurrence, libvirt_uri
    )
    assert code == KILLED, output


def test_crash_between_the_disks_of_a_plain_snapshot(
    rbd_backend, rbd_instance, ceph, ceph_client
):
    layout = rbd_instance(TWO_DISKS)
    instance = layout.instance()
    helpers.write(ceph_client, layout.image(), 0, helpers.pattern("one"))
    first = rbd_backend.snapshot(instance, helpers.FakeDomain(), 1, "skip")
    at_first = helpers.checksum(ceph_client, layout.image())
    helpers.write(ceph_client, layout.image(), 0, helpers.pattern("two"))

    _crash(ceph, layout, 2, "image-snapshotted")
    disk, local = layout.images
    assert helpers.snapshots(ceph_client, disk) == [
        "snapmanager-1",
        "snapmanager-2",
    ]
    assert helpers.snapshots(ceph_client, local) == ["snapmanager-1"]
    # The intent is recorded beside the images, never in them: their
    # metadata goes through the exclusive lock the guest's QEMU holds.
    assert set(helpers.intents(ceph_client, layout.uuid)) == {
        "snapmanager-pending-2"
    }
    for image in layout.images:
        assert helpers.metadata(ceph_client, image) == {}
    # Not counted, even before recovery.
    assert rbd_backend.list_indexes(layout.uuid) == [1]

    actions = rbd_backend.recover([instance])
    assert [(a.snapshot_index, a.action) for a in actions] == [
        (2, "discarded")
    ]
    for image in layout.images:
        assert helpers.snapshots(ceph_client, image) == ["snapmanager-1"]
        assert helpers.metadata(ceph_client, image) == {}
    assert helpers.intents(ceph_client, layout.uuid) == {}
    assert rbd_backend.list_indexes(layout.uuid) == [1]
    # The complete snapshot is untouched and still restores.
    rbd_backend.restore(instance, helpers.FakeDomain(), 1, first.disks)
    assert helpers.checksum(ceph_client, layout.image()) == at_first
    assert rbd_backend.recover([instance]) == []


def test_crash_with_the_images_in_the_group(
    rbd_backend, rbd_instance, ceph, ceph_client, libvirt_conn, libvirt_env
):
    layout = rbd_instance(TWO_DISKS)
    with helpers.running(libvirt_conn, layout):
        _crash(
            ceph,
            layout,
            1,
            "group-member-added",
            occurrence=2,
            libvirt_uri=libvirt_env["uri"],
        )
        members, snaps = helpers.group_state(ceph_client, layout.uuid)
        assert members == sorted(layout.images)
        assert snaps == {}
        assert set(helpers.intents(ceph_client, layout.uuid)) == {
            "snapmanager-pending-1"
        }

        actions = rbd_backend.recover([layout.instance()])
    assert [(a.snapshot_index, a.action) for a in actions] == [
        (1, "discarded")
    ]
    # Nova can delete the images again, and nothing of ours is left.
    assert helpers.group_state(ceph_client, layout.uuid) is None
    assert helpers.intents(ceph_client, layout.uuid) == {}
    for image in layout.images:
        assert helpers.metadata(ceph_client, image) == {}
    assert rbd_backend.list_indexes(layout.uuid) == []


def test_crash_after_the_group_snapshot(
    rbd_backend, rbd_instance, ceph, ceph_client, libvirt_conn, libvirt_env
):
    layout = rbd_instance(TWO_DISKS)
    with helpers.running(libvirt_conn, layout):
        _crash(
            ceph,
            layout,
            4,
            "group-snapshotted",
            libvirt_uri=libvirt_env["uri"],
        )
        members, snaps = helpers.group_state(ceph_client, layout.uuid)
        assert members == sorted(layout.images)
        assert snaps == {"snapmanager-4": 1}
        assert set(helpers.intents(ceph_client, layout.uuid)) == {
            "snapmanager-pending-4"
        }
        # Complete as a group snapshot, but never reported: not counted.
        assert rbd_backend.list_indexes(layout.uuid) == []

        actions = rbd_backend.recover([layout.instance()])
    assert [(a.snapshot_index, a.action) for a in actions] == [
        (4, "discarded")
    ]
    assert helpers.group_state(ceph_client, layout.uuid) is None
    assert helpers.intents(ceph_client, layout.uuid) == {}
    for image in layout.images:
        assert helpers.snapshots(ceph_client, image, True) == []


def test_recover_discards_a_set_an_older_agent_marked_in_the_images(
    rbd_backend, rbd_instance, ceph_client
):
    """Agents before the intent object marked each image's metadata;
    what such an agent left at a crash is still found and removed."""
    import rbd

    layout = rbd_instance(TWO_DISKS)
    rbd_backend.snapshot(layout.instance(), helpers.FakeDomain(), 1, "skip")
    disk, local = layout.images
    for image in layout.images:
        with rbd.Image(ceph_client, image) as handle:
            handle.metadata_set("snapmanager-pending-2", "[]")
    with rbd.Image(ceph_client, disk) as handle:
        handle.create_snap("snapmanager-2")
    assert rbd_backend.list_indexes(layout.uuid) == [1]

    actions = rbd_backend.recover([layout.instance()])
    assert [(a.snapshot_index, a.action) for a in actions] == [
        (2, "discarded")
    ]
    for image in layout.images:
        assert helpers.snapshots(ceph_client, image) == ["snapmanager-1"]
        assert helpers.metadata(ceph_client, image) == {}
    assert rbd_backend.list_indexes(layout.uuid) == [1]


def test_recover_thaws_a_guest_left_frozen(
    rbd_agent_client, rbd_instance, ceph, ceph_client
):
    from snapmanager_nova.compute.backends import rbd as rbd_mod

    settled = rbd_instance()
    crashed = rbd_instance()
    domains = {
        # Frozen by a snapshot that completed, then the agent died
        # before the thaw.
        settled.uuid: helpers.FakeDomain(active=True, frozen_filesystems=2),
        # Frozen while its snapshot was being taken.
        crashed.uuid: helpers.FakeDomain(active=True, frozen_filesystems=1),
    }
    backend = rbd_mod.RbdBackend(
        client=rbd_agent_client,
        connect=lambda: helpers.FakeConnection(domains),
    )
    backend.snapshot(settled.instance(), helpers.FakeDomain(), 6, "skip")
    _crash(ceph, crashed, 7, "image-snapshotted")

    actions = backend.recover([settled.instance(), crashed.instance()])
    by_uuid = {action.instance_uuid: action for action in actions}
    assert len(actions) == 2
    assert by_uuid[settled.uuid].action == "thawed"
    assert by_uuid[settled.uuid].snapshot_index == 6
    assert "thawed 2" in by_uuid[settled.uuid].detail
    assert by_uuid[crashed.uuid].action == "discarded"
    assert by_uuid[crashed.uuid].snapshot_index == 7
    assert "thawed 1" in by_uuid[crashed.uuid].detail
    for dom in domains.values():
        assert dom.calls == ["fsThaw"] and dom.frozen == 0


def test_recover_on_running_guests_without_agent_changes_nothing(
    rbd_backend, rbd_instance, ceph_client, libvirt_conn
):
    layout = rbd_instance(TWO_DISKS)
    with helpers.running(libvirt_conn, layout) as dom:
        rbd_backend.snapshot(layout.instance(), dom, 1, "prefer")
        # fsThaw answers 74 (no agent channel): nothing to report.
        assert rbd_backend.recover([layout.instance()]) == []
        assert dom.isActive()
    assert rbd_backend.list_indexes(layout.uuid) == [1]
