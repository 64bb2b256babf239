"""Instances through the DB API (SQLite)."""

import datetime
import uuid

import pytest

from snapmanager_nova import exception
from snapmanager_nova.db import api as db_api
from tests.unit.db import fixtures


def test_create_sets_the_light_snapshot_defaults(ctx):
    instance = fixtures.make_instance(ctx, host="cmp1", backend="rbd")
    got = db_api.instance_get(ctx, instance.uuid)
    assert got.project_id == fixtures.PROJECT
    assert (got.host, got.backend) == ("cmp1", "rbd")
    assert got.snapshot_enabled is False
    assert got.daily is False
    assert got.keep_after_delete is False
    assert got.committed is True
    assert (got.snapshot_index, got.root_index) == (0, 0)
    assert got.created_at.tzinfo is datetime.UTC
    assert got.updated_at is None


def test_create_or_update_updates_an_existing_instance(ctx):
    instance = fixtures.make_instance(ctx, host="cmp1")
    updated = db_api.instance_create_or_update(
        ctx,
        instance.uuid,
        {"project_id": instance.project_id, "snapshot_enabled": True},
    )
    assert updated.host == "cmp1"
    assert updated.snapshot_enabled is True
    assert updated.created_at == instance.created_at
    assert updated.updated_at is not None
    assert len(db_api.instance_list(ctx)) == 1


def test_update_without_project_needs_an_existing_instance(ctx):
    instance = fixtures.make_instance(ctx)
    moved = db_api.instance_create_or_update(
        ctx, instance.uuid, {"host": "cmp2"}
    )
    assert moved.host == "cmp2"
    with pytest.raises(exception.InstanceNotFound):
        db_api.instance_create_or_update(
            ctx, str(uuid.uuid4()), {"host": "cmp2"}
        )


@pytest.mark.parametrize(
    "values",
    [
        {"project_id": "p", "snapshot_index": 7},
        {"project_id": "p", "committed": False},
        {"project_id": "p", "backend": "lvm"},
    ],
)
def test_create_or_update_rejects_what_it_does_not_own(ctx, values):
    with pytest.raises(exception.Invalid):
        db_api.instance_create_or_update(ctx, str(uuid.uuid4()), values)


def test_get_unknown_instance(ctx):
    with pytest.raises(exception.InstanceNotFound) as raised:
        db_api.instance_get(ctx, "nope")
    assert "nope" in str(raised.value)


def test_list_filters_by_project_and_hides_deleted(ctx):
    mine = fixtures.make_instance(ctx, host="cmp1")
    gone = fixtures.make_instance(
        ctx, deleted_at=datetime.datetime.now(datetime.UTC)
    )
    theirs = fixtures.make_instance(ctx, project_id="project-b")
    assert {i.uuid for i in db_api.instance_list(ctx)} == {
        mine.uuid,
        theirs.uuid,
    }
    listed = db_api.instance_list(ctx, project_id=fixtures.PROJECT)
    assert [i.uuid for i in listed] == [mine.uuid]
    listed = db_api.instance_list(
        ctx, project_id=fixtures.PROJECT, include_deleted=True
    )
    assert {i.uuid for i in listed} == {mine.uuid, gone.uuid}
    assert [i.uuid for i in db_api.instance_list(ctx, host="cmp1")] == [
        mine.uuid
    ]


def test_snapshot_index_is_monotonic_per_instance(ctx):
    first = fixtures.make_instance(ctx)
    second = fixtures.make_instance(ctx)
    got = [
        db_api.instance_allocate_snapshot_index(ctx, first.uuid)
        for _ in range(3)
    ]
    assert got == [1, 2, 3]
    assert db_api.instance_allocate_snapshot_index(ctx, second.uuid) == 1
    # A sync from Nova does not reset it.
    db_api.instance_create_or_update(
        ctx, first.uuid, {"project_id": first.project_id, "host": "x"}
    )
    assert db_api.instance_allocate_snapshot_index(ctx, first.uuid) == 4
    assert db_api.instance_get(ctx, first.uuid).snapshot_index == 4


def test_allocating_for_an_unknown_instance(ctx):
    with pytest.raises(exception.InstanceNotFound):
        db_api.instance_allocate_snapshot_index(ctx, "nope")


def test_allocation_rolls_back_with_the_callers_transaction(ctx):
    instance = fixtures.make_instance(ctx)
    with pytest.raises(RuntimeError):
        with db_api.context_manager.writer.using(ctx):
            db_api.instance_allocate_snapshot_index(ctx, instance.uuid)
            raise RuntimeError("snapshot row could not be written")
    assert db_api.instance_get(ctx, instance.uuid).snapshot_index == 0


def test_set_progress(ctx):
    instance = fixtures.make_instance(ctx)
    db_api.instance_allocate_snapshot_index(ctx, instance.uuid)
    pending = db_api.instance_set_progress(ctx, instance.uuid, False)
    assert (pending.committed, pending.root_index) == (False, 0)
    done = db_api.instance_set_progress(ctx, instance.uuid, True, 1)
    assert (done.committed, done.root_index) == (True, 1)


def test_root_index_cannot_pass_the_snapshot_index(ctx):
    instance = fixtures.make_instance(ctx)
    with pytest.raises(exception.Invalid):
        db_api.instance_set_progress(ctx, instance.uuid, True, 1)
    with pytest.raises(exception.InstanceNotFound):
        db_api.instance_set_progress(ctx, "nope", True, 1)
