"""Snapshots kept across Nova's rebuild or shelve-offload restore into the
disk Nova made since: their data is copied from the kept image (Glance
parent included) into Nova's new ``<uuid>_disk``, in place, against the
test cluster."""

import dataclasses
import hashlib
import uuid

import pytest

from snapmanager_nova import exception
from snapmanager_nova.compute import calls
from tests.functional.compute import rbd_helpers as helpers

# The fixtures this module uses, from the shared helpers.
ceph_secret = helpers.ceph_secret
rbd_conf = helpers.rbd_conf
rbd_agent_client = helpers.rbd_agent_client
rbd_backend = helpers.rbd_backend
rbd_instance = helpers.rbd_instance

MiB = helpers.MiB
TWO_DISKS = ("disk", "disk.local")


@pytest.fixture
def glance_base(ceph_client):
    """A Glance-like base image with a protected snapshot, data at 0 and
    at 8 MiB; Nova's disks are clones of it. Tests ask for it before
    ``rbd_instance``, so that the clones are gone when it is removed."""
    import rbd

    name = f"kept-restore-base-{uuid.uuid4()}"
    rbd.RBD().create(
        ceph_client,
        name,
        helpers.DISK_SIZE,
        old_format=False,
        features=helpers.nova_features(),
    )
    helpers.write(ceph_client, name, 0, helpers.pattern("base-0"))
    helpers.write(ceph_client, name, 8 * MiB, helpers.pattern("base-8"))
    with rbd.Image(ceph_client, name) as image:
        image.create_snap("snap")
        image.protect_snap("snap")
    yield name
    with rbd.Image(ceph_client, name) as image:
        image.unprotect_snap("snap")
        image.remove_snap("snap")
    rbd.RBD().remove(ceph_client, name)


def _clone_disks(ceph_client, layout, base):
    """Nova's boot from an RBD Glance image: each disk a clone."""
    import rbd

    for image in layout.images:
        rbd.RBD().remove(ceph_client, image)
        rbd.RBD().clone(
            ceph_client,
            base,
            "snap",
            ceph_client,
            image,
            features=helpers.nova_features(),
        )


def _new_disks(ceph_client, layout, size):
    """What Nova's unshelve leaves: new, flattened images under the old
    names, with data of their own where the snapshots had none."""
    import rbd

    for image in layout.images:
        rbd.RBD().create(
            ceph_client,
            image,
            size,
            old_format=False,
            features=helpers.nova_features(),
        )
        helpers.write(ceph_client, image, 0, helpers.pattern("new-0"))
        helpers.write(ceph_client, image, 40 * MiB, helpers.pattern("new-40"))
        helpers.write(ceph_client, image, size - MiB, helpers.pattern("end"))


def _identity(ceph_client, image_name):
    import rbd

    with rbd.Image(ceph_client, image_name, read_only=True) as image:
        return image.id(), [snap["name"] for snap in image.list_snaps()]


def _read(ceph_client, image_name, offset, length=4096):
    import rbd

    with rbd.Image(ceph_client, image_name, read_only=True) as image:
        return image.read(offset, length)


def _size(ceph_client, image_name):
    import rbd

    with rbd.Image(ceph_client, image_name, read_only=True) as image:
        return image.size()


def _content(ceph_client, image_name, length):
    """sha256 of the first ``length`` bytes, and whether the rest is
    all zeroes."""
    import rbd

    digest = hashlib.sha256()
    zeroes = True
    with rbd.Image(ceph_client, image_name, read_only=True) as image:
        size = image.size()
        for offset in range(0, size, 4 * MiB):
            data = image.read(offset, min(4 * MiB, size - offset))
            if offset < length:
                digest.update(data[: length - offset])
                rest = data[length - offset :]
            else:
                rest = data
            zeroes = zeroes and not rest.strip(b"\0")
    return digest.hexdigest(), zeroes


def _taken(rbd_backend, ceph_client, layout):
    """A snapshot taken running (a group one of several disks) and one
    shut off, each after its own writes; {index: (result, {image:
    content})}."""
    instance = layout.instance()
    taken = {}
    for index, domain, tag in (
        (1, helpers.FakeDomain(active=True), "one"),
        (2, helpers.FakeDomain(), "two"),
    ):
        for image in layout.images:
            helpers.write(ceph_client, image, MiB, helpers.pattern(tag))
            helpers.write(ceph_client, image, 20 * MiB, helpers.pattern(tag))
        result = rbd_backend.snapshot(instance, domain, index, "skip")
        contents = {
            image: _content(ceph_client, image, layout.size)
            for image in layout.images
        }
        taken[index] = (result, contents)
    return taken


def test_kept_snapshots_restore_into_novas_new_disks(
    glance_base, rbd_backend, rbd_instance, ceph_client
):
    layout = rbd_instance(TWO_DISKS)
    _clone_disks(ceph_client, layout, glance_base)
    taken = _taken(rbd_backend, ceph_client, layout)
    assert {e["kind"] for e in taken[1][0].disks} == {"group"}
    assert {e["kind"] for e in taken[2][0].disks} == {"user"}
    assert rbd_backend.release(layout.uuid, keep=True) == [1, 2]
    # Nova's cleanup removed the old names (renamed out of its way);
    # its unshelve makes larger images (a bigger flavor's disks) there.
    bigger = 2 * helpers.DISK_SIZE
    _new_disks(ceph_client, layout, bigger)
    identities = {i: _identity(ceph_client, i) for i in layout.images}
    instance = layout.instance()

    # Each restores the bytes it held, whatever the disk held before:
    # the newest, the oldest (a group snapshot), and the newest again.
    for index in (2, 1, 2):
        result, contents = taken[index]
        rbd_backend.restore(
            instance, helpers.FakeDomain(), index, result.disks
        )
        for image in layout.images:
            digest, _ = contents[image]
            assert _content(ceph_client, image, layout.size) == (digest, True)
            # Still Nova's very image: same id, no snapshot of ours, no
            # watcher left, Nova's size kept.
            assert _identity(ceph_client, image) == identities[image]
            assert helpers.watchers(ceph_client, image) == []
            assert _size(ceph_client, image) == bigger

    # The kept snapshots stay as they were: listed, and deletable.
    assert rbd_backend.list_indexes(layout.uuid) == [1, 2]
    # A snapshot of the new disks restores by rollback, as always.
    third = rbd_backend.snapshot(instance, helpers.FakeDomain(), 3, "skip")
    at_third = helpers.checksum(ceph_client, layout.image())
    rbd_backend.restore(instance, helpers.FakeDomain(), 1, taken[1][0].disks)
    rbd_backend.restore(instance, helpers.FakeDomain(), 3, third.disks)
    assert helpers.checksum(ceph_client, layout.image()) == at_third
    for index in (1, 2):
        rbd_backend.delete(layout.uuid, index, taken[index][0].disks)
    assert helpers.instance_images(ceph_client, layout.uuid) == (
        sorted(layout.images),
        [],
    )


def test_a_copy_cut_short_is_finished_by_the_retry(
    glance_base, rbd_backend, rbd_instance, ceph_client, monkeypatch
):
    layout = rbd_instance()
    _clone_disks(ceph_client, layout, glance_base)
    taken = _taken(rbd_backend, ceph_client, layout)
    rbd_backend.release(layout.uuid, keep=True)
    _new_disks(ceph_client, layout, helpers.DISK_SIZE)
    instance = layout.instance()
    result, contents = taken[2]

    # The copy's deadline passes after its zeroes and part of its data,
    # as with a hung cluster: the restore fails half done.
    checks = []
    real_check = calls.check_deadline

    def overrun_after_a_few():
        checks.append(1)
        if len(checks) > 3:
            raise exception.BackendTimeout(
                operation="copy",
                timeout=1,
                origin="timeout",
                origin_code=None,
                detail="deadline passed",
            )
        real_check()

    monkeypatch.setattr(calls, "check_deadline", overrun_after_a_few)
    with pytest.raises(exception.BackendTimeout):
        rbd_backend.restore(instance, helpers.FakeDomain(), 2, result.disks)
    half = _content(ceph_client, layout.image(), layout.size)
    assert half != (contents[layout.image()][0], True)
    # It had begun: the new disk's own data is zeroes already.
    assert not _read(ceph_client, layout.image(), 40 * MiB).strip(b"\0")

    # The conductor's retry of the restore runs it again, whole.
    monkeypatch.setattr(calls, "check_deadline", real_check)
    rbd_backend.restore(instance, helpers.FakeDomain(), 2, result.disks)
    assert _content(ceph_client, layout.image(), layout.size) == (
        contents[layout.image()][0],
        True,
    )
    assert helpers.watchers(ceph_client, layout.image()) == []


def test_a_kept_snapshot_with_no_disk_of_its_name_is_refused(
    rbd_backend, rbd_instance, ceph_client
):
    import rbd

    layout = rbd_instance(TWO_DISKS)
    result = rbd_backend.snapshot(
        layout.instance(), helpers.FakeDomain(), 1, "skip"
    )
    rbd_backend.release(layout.uuid, keep=True)
    # Nova's new server has only its root disk (a flavor without
    # ephemeral space): the snapshot's disk.local has nowhere to go.
    rbd.RBD().create(
        ceph_client,
        layout.image(),
        helpers.DISK_SIZE,
        old_format=False,
        features=helpers.nova_features(),
    )
    helpers.write(ceph_client, layout.image(), 0, helpers.pattern("new"))
    before = helpers.checksum(ceph_client, layout.image())
    instance = layout.instance()
    root_only = dataclasses.replace(instance, disks=instance.disks[:1])
    with pytest.raises(exception.SnapshotNotRestorable) as caught:
        rbd_backend.restore(root_only, helpers.FakeDomain(), 1, result.disks)
    assert layout.image("disk.local") in str(caught.value)
    # Refused before anything was written.
    assert helpers.checksum(ceph_client, layout.image()) == before
