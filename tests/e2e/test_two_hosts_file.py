"""Nova's operations on file-backed servers with snapshots, on two hosts
(see tests/e2e/two_hosts.py)."""

import pytest

from tests.e2e import two_hosts


@pytest.fixture(scope="module")
def two(snapmanager_2hosts, minicloud_session, snapmanager_session):
    with two_hosts.TwoHosts(
        snapmanager_2hosts, minicloud_session, snapmanager_session, {}
    ) as cloud:
        cloud.disks = two_hosts.FileDisks(cloud)
        yield cloud


@pytest.mark.parametrize("op", two_hosts.params("file"))
def test_operation(two, op):
    two_hosts.check_operation(two, op, "file")
