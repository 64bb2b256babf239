"""Nova's operations on RBD-backed servers with snapshots, on two hosts
(see tests/e2e/two_hosts.py)."""

import pytest

from tests.e2e import two_hosts


@pytest.fixture(scope="module")
def two(
    snapmanager_2hosts_rbd,
    minicloud_session,
    snapmanager_session,
    ceph,
    ceph_cluster,
):
    ioctx = ceph_cluster.open_ioctx(ceph["pool"])
    try:
        with two_hosts.TwoHosts(
            snapmanager_2hosts_rbd,
            minicloud_session,
            snapmanager_session,
            {"ceph": ceph},
        ) as cloud:
            cloud.disks = two_hosts.RbdDisks(cloud, ioctx)
            yield cloud
    finally:
        ioctx.close()


@pytest.mark.parametrize("op", two_hosts.params("rbd"))
def test_operation(two, op):
    two_hosts.check_operation(two, op, "rbd")
