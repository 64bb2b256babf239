"""Snapshots of a file-backed (qcow2) server from policy to deletion.

The tests are those of tests/e2e/snapshot_lifecycle.py; storage is the
compute agent's snapshot store (`[compute] snapshot_store_path`) beside
Nova's instances/<uuid>/disk.
"""

import pytest

from tests.e2e import snapshot_lifecycle


@pytest.fixture(scope="module")
def lifecycle(snapmanager_cloud):
    return snapshot_lifecycle.Lifecycle(
        snapmanager_cloud, snapshot_lifecycle.FileDisks(snapmanager_cloud)
    )


class TestFileBacked(snapshot_lifecycle.LifecycleTests):
    pass
