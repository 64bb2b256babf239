"""Operations and service heartbeats through the DB API (SQLite)."""

import pytest

from snapmanager_nova import exception
from snapmanager_nova.db import api as db_api
from tests.unit.db import fixtures


@pytest.fixture
def instance(ctx):
    return fixtures.make_instance(ctx)


def make_operation(ctx, instance, **values):
    # Restores hold their server (one at a time, an available snapshot):
    # tests/functional/conductor/test_restore_holds.py.
    values.setdefault("type", "delete")
    return db_api.operation_create(
        ctx, dict(values, instance_uuid=instance.uuid)
    )


def test_create_and_get(ctx, instance):
    snapshot = fixtures.make_snapshot(ctx, instance)
    operation = make_operation(ctx, instance, snapshot_id=snapshot.id)
    got = db_api.operation_get(ctx, operation.id)
    assert (got.type, got.state, got.progress) == ("delete", "pending", 0)
    assert got.project_id == instance.project_id
    assert got.snapshot_id == snapshot.id
    assert got.finished_at is None


@pytest.mark.parametrize(
    "values",
    [
        {"type": "migrate"},
        {"state": "running"},
        {"project_id": "project-b"},
        {"snapshot_id": "belongs-to-another-instance"},
    ],
)
def test_create_rejects(ctx, instance, values):
    other = fixtures.make_instance(ctx)
    if values.get("snapshot_id"):
        values["snapshot_id"] = fixtures.make_snapshot(ctx, other).id
    with pytest.raises(exception.Invalid):
        make_operation(ctx, instance, **values)


def test_create_for_unknown_things(ctx, instance):
    with pytest.raises(exception.InstanceNotFound):
        db_api.operation_create(
            ctx, {"type": "snapshot", "instance_uuid": "nope"}
        )
    with pytest.raises(exception.SnapshotNotFound):
        make_operation(ctx, instance, snapshot_id="nope")
    with pytest.raises(exception.OperationNotFound):
        db_api.operation_get(ctx, "nope")
    with pytest.raises(exception.OperationNotFound):
        db_api.operation_update(ctx, "nope", {"progress": 5})


def test_progress_to_success(ctx, instance):
    operation = make_operation(ctx, instance)
    running = db_api.operation_update(
        ctx,
        operation.id,
        {"state": "running", "progress": 10, "step": "stopping server"},
    )
    assert (running.state, running.progress) == ("running", 10)
    running = db_api.operation_update(ctx, operation.id, {"progress": 60})
    assert (running.step, running.progress) == ("stopping server", 60)
    done = db_api.operation_update(ctx, operation.id, {"state": "succeeded"})
    assert (done.state, done.progress) == ("succeeded", 100)
    assert done.finished_at is not None


@pytest.mark.parametrize("final", ["succeeded", "failed"])
def test_a_finished_operation_is_final(ctx, instance, final):
    operation = make_operation(ctx, instance)
    db_api.operation_update(ctx, operation.id, {"state": final})
    for values in ({"state": "running"}, {"progress": 1}, {"state": final}):
        with pytest.raises(exception.InvalidStatusTransition) as raised:
            db_api.operation_update(ctx, operation.id, values)
        assert f"from {final}" in str(raised.value)


@pytest.mark.parametrize(
    "values",
    [{"progress": 101}, {"progress": -1}, {"state": "done"}, {"type": "x"}],
)
def test_update_rejects(ctx, instance, values):
    operation = make_operation(ctx, instance)
    with pytest.raises(exception.Invalid):
        db_api.operation_update(ctx, operation.id, values)


def test_list(ctx, instance):
    other = fixtures.make_instance(ctx, project_id="project-b")
    first = make_operation(ctx, instance)
    second = make_operation(ctx, instance, type="delete")
    theirs = make_operation(ctx, other)
    db_api.operation_update(ctx, second.id, {"state": "failed", "error": "x"})

    def ids(**filters):
        return [o.id for o in db_api.operation_list(ctx, **filters)]

    assert ids() == [first.id, second.id, theirs.id]
    assert ids(instance_uuid=instance.uuid) == [first.id, second.id]
    assert ids(project_id="project-b") == [theirs.id]
    assert ids(state=["failed", "running"]) == [second.id]


def test_heartbeat_is_an_upsert(ctx):
    first = db_api.service_heartbeat(
        ctx, "snapmanager-compute", "cmp1", "snapmanager-compute"
    )
    again = db_api.service_heartbeat(
        ctx, "snapmanager-compute", "cmp1", "snapmanager-compute.v2"
    )
    assert again.id == first.id
    assert again.created_at == first.created_at
    assert again.last_seen_at > first.last_seen_at
    assert again.topic == "snapmanager-compute.v2"
    db_api.service_heartbeat(ctx, "snapmanager-conductor", "ctl1")
    db_api.service_heartbeat(ctx, "snapmanager-compute", "cmp0")
    listed = [(s.binary, s.host) for s in db_api.service_list(ctx)]
    assert listed == [
        ("snapmanager-compute", "cmp0"),
        ("snapmanager-compute", "cmp1"),
        ("snapmanager-conductor", "ctl1"),
    ]
    computes = db_api.service_list(ctx, binary="snapmanager-compute")
    assert [s.host for s in computes] == ["cmp0", "cmp1"]
