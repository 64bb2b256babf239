"""Snapshots of an RBD-backed server from policy to deletion.

The tests are those of tests/e2e/snapshot_lifecycle.py; storage is the
test Ceph's pool: RBD snapshots on Nova's <uuid>_disk, and the images
the agent keeps out of Nova's namespace for `keep_after_delete`.
"""

import pytest

from tests.e2e import snapshot_lifecycle


@pytest.fixture(scope="module")
def lifecycle(snapmanager_cloud_rbd, ceph, ceph_cluster):
    ioctx = ceph_cluster.open_ioctx(ceph["pool"])
    try:
        yield snapshot_lifecycle.Lifecycle(
            snapmanager_cloud_rbd,
            snapshot_lifecycle.RbdDisks(snapmanager_cloud_rbd, ioctx),
        )
    finally:
        ioctx.close()


class TestRbdBacked(snapshot_lifecycle.LifecycleTests):
    pass
