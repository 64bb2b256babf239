"""Names the RBD backend gives to snapshots, groups, marks and kept
images: formatted and parsed in one place, strictly."""

import pytest

from snapmanager_nova import exception
from snapmanager_nova.compute.backends import rbd_names

UUID = "5f0c8a4e-2b1d-4c3e-9f7a-0123456789ab"
OTHER = "0e1d2c3b-4a59-4687-9a0b-cdef01234567"


@pytest.fixture
def names():
    return rbd_names.SnapshotNames("snapmanager-")


@pytest.mark.parametrize("index", [0, 1, 42, 10**12])
def test_snapshot_names_round_trip(names, index):
    name = names.snapshot(index)
    assert name == f"snapmanager-{index}"
    assert names.parse_snapshot(name) == index


@pytest.mark.parametrize(
    "name",
    [
        "snapmanager-",
        "snapmanager-07",  # never produced: not ours
        "snapmanager--1",
        "snapmanager-1a",
        "snapmanager-1 ",
        "snapmanager-1\n",
        "snapmanager-pending-1",
        "other-1",
        "nova-resize",
        "xsnapmanager-1",
        ".group.1_abc_def",
    ],
)
def test_foreign_snapshot_names_are_not_ours(names, name):
    assert names.parse_snapshot(name) is None


@pytest.mark.parametrize("index", [-1, "1", 1.0, True, None])
def test_only_non_negative_integers_make_names(names, index):
    with pytest.raises(exception.Invalid):
        names.snapshot(index)


def test_prefix_is_literal_not_a_pattern():
    names = rbd_names.SnapshotNames("snap.mgr+")
    assert names.parse_snapshot("snap.mgr+3") == 3
    assert names.parse_snapshot("snapXmgr+3") is None
    assert names.parse_snapshot("snap.mgrr3") is None


@pytest.mark.parametrize("prefix", ["", "a/b", "snap@"])
def test_prefixes_ceph_would_refuse_are_rejected(prefix):
    with pytest.raises(exception.Invalid):
        rbd_names.SnapshotNames(prefix)


def test_group_and_pending_names(names):
    assert names.group(UUID) == f"snapmanager-{UUID}"
    key = names.pending_key(9)
    assert key == "snapmanager-pending-9"
    assert names.parse_pending_key(key) == 9
    assert names.parse_pending_key("snapmanager-9") is None
    assert names.parse_pending_key("conf_rbd_cache") is None


def test_kept_image_names_round_trip(names):
    name = names.kept_image(UUID, 42, "disk.local")
    assert name == f"snapmanager-kept-{UUID}-42_disk.local"
    assert names.parse_kept_image(name) == (UUID, 42, "disk.local")
    # Nova finds an instance's images by this prefix: never a kept one.
    assert not name.startswith(UUID)


@pytest.mark.parametrize(
    "name",
    [
        f"snapmanager-kept-{UUID}-42_",
        f"snapmanager-kept-{UUID}-042_disk",
        f"snapmanager-kept-{UUID}_disk",
        f"snapmanager-kept-{UUID.upper()}-1_disk",
        f"snapmanager-kept-{UUID[:-1]}-1_disk",
        f"{UUID}_disk",
    ],
)
def test_malformed_kept_names_are_not_ours(names, name):
    assert names.parse_kept_image(name) is None


def test_a_kept_image_needs_a_disk_name(names):
    with pytest.raises(exception.Invalid):
        names.kept_image(UUID, 1, "")


def test_instance_images_are_told_apart(names):
    pool = [
        f"{UUID}_disk",
        f"{UUID}_disk.local",
        f"{UUID}_",  # not a disk Nova would name
        f"{OTHER}_disk",
        f"snapmanager-kept-{UUID}-3_disk",
        f"snapmanager-kept-{OTHER}-3_disk",
        f"{UUID}",
        "volume-1234",
    ]
    assert names.instance_images(UUID, pool) == (
        [f"{UUID}_disk", f"{UUID}_disk.local"],
        [f"snapmanager-kept-{UUID}-3_disk"],
    )
