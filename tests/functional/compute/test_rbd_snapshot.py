"""The RBD backend's snapshot, restore, delete and listing, on real Ceph
and real QEMU domains with RBD network disks."""

import json

import pytest

from snapmanager_nova import exception
from snapmanager_nova.compute.backends import rbd as rbd_mod
from snapmanager_nova.compute.backends import rbd_images
from tests.fixtures import services
from tests.functional.compute import rbd_helpers as helpers

# The fixtures this module uses, from the shared helpers.
ceph_secret = helpers.ceph_secret
rbd_conf = helpers.rbd_conf
rbd_agent_client = helpers.rbd_agent_client
rbd_backend = helpers.rbd_backend
rbd_instance = helpers.rbd_instance

MiB = helpers.MiB
TWO_DISKS = ("disk", "disk.local")


def _write_tag(ioctx, layout, tag, offsets=(0, 40 * MiB)):
    for image in layout.images:
        for offset in offsets:
            helpers.write(
                ioctx, image, offset, helpers.pattern(f"{tag}{image}")
            )


def _sums(ioctx, layout):
    return {image: helpers.checksum(ioctx, image) for image in layout.images}


def test_shut_off_instance_gets_a_plain_snapshot_per_disk(
    rbd_backend, rbd_instance, ceph_client, libvirt_conn
):
    layout = rbd_instance(TWO_DISKS)
    _write_tag(ceph_client, layout, "a")
    with helpers.defined(libvirt_conn, layout) as dom:
        result = rbd_backend.snapshot(layout.instance(), dom, 7, "prefer")

    assert result.quiesced is False
    assert result.pause_seconds == 0
    json.dumps(result.disks)  # stored as JSON by the conductor
    assert [entry["image"] for entry in result.disks] == layout.images
    assert [entry["target"] for entry in result.disks] == ["vda", "vdb"]
    for entry in result.disks:
        assert entry["pool"] == layout.pool
        assert entry["snapshot"] == "snapmanager-7"
        assert entry["kind"] == rbd_mod.KIND_USER
        assert entry["size"] == helpers.DISK_SIZE
        # Measured later, off the snapshot's path.
        assert entry["used_bytes"] is None
    assert result.size_bytes is None
    disks, size = rbd_backend.measure(layout.uuid, 7, result.disks)
    for entry in disks:
        # Two 64 KiB writes, in two 4 MiB objects: counted whole.
        assert entry["used_bytes"] == 8 * MiB
    assert size == 16 * MiB
    for image in layout.images:
        assert helpers.snapshots(ceph_client, image) == ["snapmanager-7"]
        assert helpers.metadata(ceph_client, image) == {}
    assert helpers.group_state(ceph_client, layout.uuid) is None
    assert rbd_backend.list_indexes(layout.uuid) == [7]


def test_restore_gives_back_exactly_the_snapshotted_bytes(
    rbd_backend, rbd_instance, ceph_client, libvirt_conn
):
    layout = rbd_instance(TWO_DISKS)
    instance = layout.instance()
    _write_tag(ceph_client, layout, "a")
    with helpers.defined(libvirt_conn, layout) as dom:
        first = rbd_backend.snapshot(instance, dom, 1, "prefer")
        at_first = _sums(ceph_client, layout)
        _write_tag(ceph_client, layout, "b", offsets=(0, 20 * MiB))
        second = rbd_backend.snapshot(instance, dom, 2, "prefer")
        at_second = _sums(ceph_client, layout)
        _write_tag(ceph_client, layout, "c", offsets=(4 * MiB, 60 * MiB))
        assert _sums(ceph_client, layout) != at_second

        rbd_backend.restore(instance, dom, 1, first.disks)
        assert _sums(ceph_client, layout) == at_first
        rbd_backend.restore(instance, dom, 2, second.disks)
        assert _sums(ceph_client, layout) == at_second

    # Restoring consumes nothing: both points stay.
    assert rbd_backend.list_indexes(layout.uuid) == [1, 2]


def test_running_guest_without_agent_gets_one_group_snapshot(
    rbd_backend, rbd_instance, ceph_client, libvirt_conn
):
    layout = rbd_instance(TWO_DISKS)
    instance = layout.instance()
    assert not instance.has_agent_channel
    _write_tag(ceph_client, layout, "a")
    with helpers.defined(libvirt_conn, layout) as dom:
        dom.create()
        # QEMU has the images open; librbd hands the exclusive lock back
        # and forth, so "guest" writes from here reach the same images.
        _write_tag(ceph_client, layout, "b", offsets=(8 * MiB,))
        at_snapshot = _sums(ceph_client, layout)
        result = rbd_backend.snapshot(instance, dom, 1, "prefer")
        _write_tag(ceph_client, layout, "c", offsets=(0, 8 * MiB))

        assert result.quiesced is False
        assert result.pause_seconds == 0
        assert {entry["kind"] for entry in result.disks} == {"group"}
        assert {entry["group"] for entry in result.disks} == {
            f"snapmanager-{layout.uuid}"
        }
        # Members only around the snapshot: Nova's delete must not meet
        # an image in a group.
        members, snaps = helpers.group_state(ceph_client, layout.uuid)
        assert members == []
        assert snaps == {"snapmanager-1": 1}
        for image in layout.images:
            assert helpers.snapshots(ceph_client, image) == []
            (part,) = helpers.snapshots(ceph_client, image, True)
            assert part.startswith(".group.")
        assert rbd_backend.list_indexes(layout.uuid) == [1]

        # A guest still running its disks is never rolled back.
        with pytest.raises(exception.ImageInUse):
            rbd_backend.restore(instance, dom, 1, result.disks)

        dom.destroy()
        rbd_backend.restore(instance, dom, 1, result.disks)
    assert _sums(ceph_client, layout) == at_snapshot


def test_require_fails_without_agent_and_leaves_nothing(
    rbd_backend, rbd_instance, ceph_client, libvirt_conn
):
    layout = rbd_instance(TWO_DISKS)
    instance = layout.instance()
    with helpers.running(libvirt_conn, layout) as dom:
        with pytest.raises(exception.QuiesceFailed) as caught:
            rbd_backend.snapshot(instance, dom, 3, "require")
        assert caught.value.kwargs["origin_code"] == 74
        skipped = rbd_backend.snapshot(instance, dom, 4, "skip")
    assert {entry["kind"] for entry in skipped.disks} == {"group"}
    assert rbd_backend.list_indexes(layout.uuid) == [4]
    for image in layout.images:
        assert helpers.metadata(ceph_client, image) == {}
        assert helpers.snapshots(ceph_client, image) == []
    assert helpers.group_state(ceph_client, layout.uuid) == (
        [],
        {"snapmanager-4": 1},
    )


def test_running_single_disk_needs_no_group(
    rbd_backend, rbd_instance, ceph_client, libvirt_conn
):
    layout = rbd_instance()
    with helpers.running(libvirt_conn, layout) as dom:
        result = rbd_backend.snapshot(layout.instance(), dom, 1, "prefer")
    assert [entry["kind"] for entry in result.disks] == ["user"]
    assert helpers.snapshots(ceph_client, layout.image()) == ["snapmanager-1"]
    assert helpers.group_state(ceph_client, layout.uuid) is None


def test_frozen_guest_gets_plain_snapshots_and_pause_is_measured(
    rbd_backend, rbd_instance, ceph_client
):
    # No OS, so no agent: a stand-in domain answers freeze and thaw.
    layout = rbd_instance(TWO_DISKS)
    dom = helpers.FakeDomain(active=True)
    result = rbd_backend.snapshot(layout.instance(), dom, 5, "require")
    assert dom.calls == ["fsFreeze", "fsThaw"]
    assert result.quiesced is True
    assert 0 < result.pause_seconds < 5
    assert {entry["kind"] for entry in result.disks} == {"user"}
    assert helpers.group_state(ceph_client, layout.uuid) is None


def test_restore_keeps_the_size_nova_grew_the_disk_to(
    rbd_backend, rbd_instance, ceph_client
):
    import rbd

    layout = rbd_instance()
    instance = layout.instance()
    dom = helpers.FakeDomain()
    helpers.write(ceph_client, layout.image(), 0, helpers.pattern("old"))
    result = rbd_backend.snapshot(instance, dom, 1, "prefer")
    with rbd.Image(ceph_client, layout.image()) as image:
        image.resize(96 * MiB)  # a resize to a bigger flavor
        image.write(helpers.pattern("new"), 80 * MiB)
    rbd_backend.restore(instance, dom, 1, result.disks)
    with rbd.Image(ceph_client, layout.image(), read_only=True) as image:
        assert image.size() == 96 * MiB
        assert image.read(0, 64 * 1024) == helpers.pattern("old")
        assert image.read(80 * MiB, 64 * 1024) == bytes(64 * 1024)


def test_an_index_is_never_taken_twice(rbd_backend, rbd_instance, ceph_client):
    layout = rbd_instance()
    dom = helpers.FakeDomain()
    rbd_backend.snapshot(layout.instance(), dom, 1, "prefer")
    with pytest.raises(exception.SnapshotIndexInUse):
        rbd_backend.snapshot(layout.instance(), dom, 1, "prefer")
    # The refused attempt did not touch the existing snapshot.
    assert helpers.snapshots(ceph_client, layout.image()) == ["snapmanager-1"]
    assert rbd_backend.list_indexes(layout.uuid) == [1]


def test_the_intent_is_claimed_in_the_call_that_snapshots(
    rbd_backend, rbd_instance, ceph_client, rbd_conf
):
    """One disk: the intent's claim goes with the snapshot's open, and
    says whether an earlier attempt's intent is there; only a free index
    is snapshotted, and an earlier attempt's intent is left as it was."""
    import rbd

    layout = rbd_instance()
    names = rbd_backend.names
    ioctx = rbd_backend._client.ioctx(rbd_conf["pool"])

    def claim(index, image=None):
        return rbd_images.snapshot_claimed(
            ioctx,
            image or layout.image(),
            names,
            names.group(layout.uuid),
            index,
            names.intent_object(layout.uuid),
            f'["attempt of {index}"]',
        )

    def only_snapshot():
        with rbd.Image(ceph_client, layout.image(), read_only=True) as image:
            (snap,) = image.list_snaps()
        return snap

    refused, size = claim(1)
    assert refused is None and size == helpers.DISK_SIZE
    first = only_snapshot()
    assert first["name"] == "snapmanager-1"
    assert helpers.intents(ceph_client, layout.uuid) == {
        names.pending_key(1): '["attempt of 1"]'
    }
    # The index's intent is there: nothing is written, not even the value.
    assert claim(1) == (rbd_images.CLAIMED, None)
    assert helpers.intents(ceph_client, layout.uuid) == {
        names.pending_key(1): '["attempt of 1"]'
    }
    # Another index of the same object; a missing image is found after
    # the claim, which the caller takes back.
    assert claim(2, "no-such-image") == (rbd_images.MISSING, None)
    assert set(helpers.intents(ceph_client, layout.uuid)) == {
        names.pending_key(1),
        names.pending_key(2),
    }
    assert helpers.snapshots(ceph_client, layout.image()) == ["snapmanager-1"]
    # Through the backend: an intent means the attempt did not finish, so
    # the general path removes what it left and takes the index anew.
    result = rbd_backend.snapshot(
        layout.instance(), helpers.FakeDomain(), 1, "skip"
    )
    assert [entry["snapshot"] for entry in result.disks] == ["snapmanager-1"]
    snap = only_snapshot()
    assert snap["name"] == "snapmanager-1" and snap["id"] > first["id"]
    assert set(helpers.intents(ceph_client, layout.uuid)) == {
        names.pending_key(2)
    }


def test_the_snapshot_closes_its_image_handle_after_returning(
    rbd_backend, rbd_instance, ceph_client
):
    layout = rbd_instance()
    rbd_backend.snapshot(layout.instance(), helpers.FakeDomain(), 1, "skip")
    assert helpers.snapshots(ceph_client, layout.image()) == ["snapmanager-1"]
    # Closed on the storage threads, off the snapshot's path, but
    # closed: a watch of ours left on the image would fail Nova's
    # rbd remove of it.
    services.wait_until(
        lambda: helpers.watchers(ceph_client, layout.image()) == [],
        timeout=30,
        what="the snapshot's image handle closed",
    )


def test_a_failed_snapshot_leaves_nothing(
    rbd_backend, rbd_instance, ceph_client, monkeypatch
):
    layout = rbd_instance(TWO_DISKS)

    def fail(stage):
        raise RuntimeError(f"injected failure at {stage}")

    monkeypatch.setattr(rbd_mod, "_test_crash_point", fail)
    with pytest.raises(RuntimeError):
        rbd_backend.snapshot(
            layout.instance(), helpers.FakeDomain(), 1, "skip"
        )
    for image in layout.images:
        assert helpers.snapshots(ceph_client, image, True) == []
        assert helpers.metadata(ceph_client, image) == {}
    assert rbd_backend.list_indexes(layout.uuid) == []


def test_delete_is_idempotent_and_estimates_what_it_frees(
    rbd_backend, rbd_instance, ceph_client
):
    import rbd

    layout = rbd_instance()
    image = layout.image()
    dom = helpers.FakeDomain()
    for number in range(4):  # objects 0-3
        helpers.write(ceph_client, image, number * 4 * MiB, b"a" * 4096)
    first = rbd_backend.snapshot(layout.instance(), dom, 1, "prefer")
    for number in range(2):  # objects 0-1 change after snapshot 1
        helpers.write(ceph_client, image, number * 4 * MiB, b"b" * 4096)
    second = rbd_backend.snapshot(layout.instance(), dom, 2, "prefer")
    helpers.write(ceph_client, image, 0, b"c" * 4096)

    # Only snapshot 1 held objects 0 and 1 as they were: 2 objects freed.
    assert rbd_backend.delete(layout.uuid, 1, first.disks) == 8 * MiB
    assert helpers.snapshots(ceph_client, image) == ["snapmanager-2"]
    assert rbd_backend.delete(layout.uuid, 1, first.disks) == 0

    # Someone protected it (to clone from it): delete still removes it.
    with rbd.Image(ceph_client, image) as handle:
        handle.protect_snap("snapmanager-2")
    rbd_backend.delete(layout.uuid, 2, second.disks)
    assert helpers.snapshots(ceph_client, image) == []
    assert rbd_backend.list_indexes(layout.uuid) == []


def test_deleting_the_last_group_snapshot_removes_the_group(
    rbd_backend, rbd_instance, ceph_client, libvirt_conn
):
    layout = rbd_instance(TWO_DISKS)
    with helpers.running(libvirt_conn, layout) as dom:
        one = rbd_backend.snapshot(layout.instance(), dom, 1, "prefer")
        two = rbd_backend.snapshot(layout.instance(), dom, 2, "prefer")
    rbd_backend.delete(layout.uuid, 1, one.disks)
    assert helpers.group_state(ceph_client, layout.uuid) == (
        [],
        {"snapmanager-2": 1},
    )
    rbd_backend.delete(layout.uuid, 2, two.disks)
    assert helpers.group_state(ceph_client, layout.uuid) is None
    for image in layout.images:
        assert helpers.snapshots(ceph_client, image, True) == []


def test_listing_counts_only_our_complete_snapshots(
    rbd_backend, rbd_instance, ceph_client
):
    import rbd

    layout = rbd_instance()
    rbd_backend.snapshot(layout.instance(), helpers.FakeDomain(), 3, "skip")
    with rbd.Image(ceph_client, layout.image()) as image:
        for foreign in ("nova-resize", "snapmanager-07", "snapmanager-x"):
            image.create_snap(foreign)
        # A snapshot still being taken (or cut short by a crash).
        image.create_snap("snapmanager-5")
        image.metadata_set("snapmanager-pending-5", "[]")
    assert rbd_backend.list_indexes(layout.uuid) == [3]


def test_a_timed_out_snapshot_is_left_marked_for_delete_or_recovery(
    rbd_backend, rbd_instance, ceph_client, monkeypatch
):
    layout = rbd_instance(TWO_DISKS)
    monkeypatch.setattr(rbd_mod, "_test_crash_point", helpers.overrun)
    with pytest.raises(exception.BackendTimeout):
        rbd_backend.snapshot(
            layout.instance(), helpers.FakeDomain(), 1, "skip"
        )
    # The call librbd may still be running could recreate what a cleanup
    # removed: the intent stays, and the snapshot is not counted.
    assert set(helpers.intents(ceph_client, layout.uuid)) == {
        "snapmanager-pending-1"
    }
    assert rbd_backend.list_indexes(layout.uuid) == []
    # The conductor's delete of the failed snapshot removes everything.
    assert rbd_backend.delete(layout.uuid, 1, []) >= 0
    for image in layout.images:
        assert helpers.snapshots(ceph_client, image, True) == []
        assert helpers.metadata(ceph_client, image) == {}
    assert helpers.intents(ceph_client, layout.uuid) == {}


def test_a_clone_of_a_glance_image_counts_only_its_own_data(
    rbd_backend, rbd_instance, ceph_client
):
    """Nova's disks are usually clones of the Glance image's snapshot."""
    import rbd

    layout = rbd_instance()
    image_name = layout.image()
    glance = f"glance-{layout.uuid}"
    rbd.RBD().create(
        ceph_client,
        glance,
        helpers.DISK_SIZE,
        old_format=False,
        features=helpers.nova_features(),
    )
    try:
        with rbd.Image(ceph_client, glance) as base_image:
            for number in range(4):  # the "OS": 4 objects
                base_image.write(b"os" * 2048, number * 4 * MiB)
            base_image.create_snap("snap")
            base_image.protect_snap("snap")
        rbd.RBD().remove(ceph_client, image_name)
        rbd.RBD().clone(
            ceph_client,
            glance,
            "snap",
            ceph_client,
            image_name,
            features=helpers.nova_features(),
        )
        helpers.write(ceph_client, image_name, 0, helpers.pattern("guest"))
        instance = layout.instance()
        result = rbd_backend.snapshot(
            instance, helpers.FakeDomain(), 1, "skip"
        )
        at_snapshot = helpers.checksum(ceph_client, image_name)
        # One object written by the guest; the base's are Glance's.
        _disks, size = rbd_backend.measure(layout.uuid, 1, result.disks)
        assert size == 4 * MiB
        helpers.write(ceph_client, image_name, 8 * MiB, b"x" * 4096)
        rbd_backend.restore(instance, helpers.FakeDomain(), 1, result.disks)
        assert helpers.checksum(ceph_client, image_name) == at_snapshot
        with rbd.Image(ceph_client, image_name, read_only=True) as image:
            # Still the clone Nova made: same parent.
            assert image.parent_info()[:2] == (layout.pool, glance)
        rbd_backend.delete(layout.uuid, 1, result.disks)
    finally:
        helpers.remove_everything(ceph_client, layout.uuid)
        with rbd.Image(ceph_client, glance) as base_image:
            base_image.unprotect_snap("snap")
            base_image.remove_snap("snap")
        rbd.RBD().remove(ceph_client, glance)
