"""Which host holds a file-backed snapshot (snapshots.host), through the
DB API on SQLite, and the conductor's routing of work to it."""

import pytest

from snapmanager_nova.conductor import inventory
from snapmanager_nova.db import api as db_api
from tests.unit.conductor import compute_fakes
from tests.unit.db import fixtures


@pytest.fixture
def instance(ctx):
    return fixtures.make_instance(ctx, backend="file", host="compute-1")


def taken(ctx, instance, **result):
    snapshot = fixtures.make_snapshot(ctx, instance, snapshot_index=1)
    return db_api.snapshot_update_status(
        ctx, snapshot.id, "available", **result
    )


def test_the_agents_host_is_recorded(ctx, instance):
    snapshot = taken(ctx, instance, backend="file", host="compute-2")
    assert snapshot.host == "compute-2"


def test_without_one_a_file_snapshot_is_held_where_its_server_was(
    ctx, instance
):
    # An agent of the previous release reports no host.
    snapshot = taken(ctx, instance, backend="file")
    assert snapshot.host == "compute-1"


def test_an_rbd_snapshot_records_no_holder(ctx):
    instance = fixtures.make_instance(ctx, backend="rbd", host="compute-1")
    snapshot = taken(ctx, instance, backend="rbd")
    assert snapshot.host is None


def test_the_holder_moves_only_from_the_expected_host(ctx, instance):
    snapshot = taken(ctx, instance, backend="file", host="compute-1")
    assert not db_api.snapshot_move_holder(
        ctx, snapshot.id, "compute-9", "compute-2"
    )
    assert db_api.snapshot_move_holder(
        ctx, snapshot.id, "compute-1", "compute-2"
    )
    assert db_api.snapshot_get(ctx, snapshot.id).host == "compute-2"
    # A second conductor doing the same finds it done.
    assert not db_api.snapshot_move_holder(
        ctx, snapshot.id, "compute-1", "compute-2"
    )


def test_a_holder_without_a_service_record_is_gone(ctx):
    db_api.service_heartbeat(ctx, "snapmanager-compute", "compute-1")
    # Another binary's record on the host does not count.
    db_api.service_heartbeat(ctx, "snapmanager-conductor", "compute-2")
    gone = db_api.snapshot_holders_gone(ctx, {"compute-1", "compute-2", None})
    assert gone == {"compute-2"}
    assert db_api.snapshot_holders_gone(ctx, set()) == set()
    assert db_api.service_delete(ctx, "snapmanager-compute", "compute-1")
    assert not db_api.service_delete(ctx, "snapmanager-compute", "compute-1")
    assert db_api.snapshot_holders_gone(ctx, {"compute-1"}) == {"compute-1"}
    # An agent that reports in again is back.
    db_api.service_heartbeat(ctx, "snapmanager-compute", "compute-1")
    assert db_api.snapshot_holders_gone(ctx, {"compute-1"}) == set()


@pytest.mark.parametrize("passed", [None, "compute-3"])
def test_a_file_snapshots_delete_goes_to_its_holder(ctx, instance, passed):
    snapshot = taken(ctx, instance, backend="file", host="compute-2")
    snapshot = db_api.snapshot_update_status(ctx, snapshot.id, "deleting")
    agents = compute_fakes.FakeComputeAPI()
    # Whatever host the caller routed the instance's work to.
    inventory.cast_snapshot_delete(
        agents, ctx, instance, snapshot, host=passed
    )
    assert agents.of("delete") == [
        ("compute-2", instance.uuid, snapshot.id, 1)
    ]


def test_an_rbd_snapshots_delete_goes_where_it_is_routed(ctx):
    instance = fixtures.make_instance(ctx, backend="rbd", host="compute-1")
    snapshot = taken(ctx, instance, backend="rbd")
    snapshot = db_api.snapshot_update_status(ctx, snapshot.id, "deleting")
    agents = compute_fakes.FakeComputeAPI()
    inventory.cast_snapshot_delete(
        agents, ctx, instance, snapshot, host="compute-3"
    )
    inventory.cast_snapshot_delete(agents, ctx, instance, snapshot)
    assert [call[0] for call in agents.of("delete")] == [
        "compute-3",
        "compute-1",
    ]
