"""Restores through the API: what is refused up front, what a restore
holds, and the tenant's way out of a failed one (retry, abandon)."""

import pytest

from snapmanager_nova.api import microversion
from snapmanager_nova.db import api as db_api
from tests.unit.api import fakes
from tests.unit.api.helpers import record_snapshot


def restore(api, snapshot, who=fakes.MEMBER):
    return api.post(
        f"/v1/snapshots/{snapshot.id}/action", {"restore": {}}, who=who
    )


FAILED_ERROR = "the agent failed: disk on fire"


def fail(ctx, operation_id, error=FAILED_ERROR):
    """The restore failed, as the conductor records it."""
    assert db_api.operation_update_step(
        ctx,
        operation_id,
        None,
        {"state": "failed", "error": error},
    )


# The operation action is served from microversion 1.3.
AT_1_3 = {microversion.HEADER: "snapmanager 1.3"}


def operation_action(api, operation_id, action, who=fakes.MEMBER):
    return api.post(
        f"/v1/operations/{operation_id}/action",
        {action: {}},
        who=who,
        headers=AT_1_3,
    )


# Refused before anything is locked


@pytest.mark.parametrize(
    "changes, reason",
    [
        (
            {"status": "SHELVED_OFFLOADED", "host": None},
            "it is SHELVED_OFFLOADED and has no compute host",
        ),
        ({"status": "ERROR"}, "it is ERROR"),
        ({"status": "PAUSED"}, "it is PAUSED"),
        ({"task_state": "migrating"}, "Nova is busy with it (migrating)"),
    ],
)
def test_restore_refused_when_the_server_cannot_be_stopped_or_restored(
    api, nova, ctx, unchanged, changes, reason
):
    server = nova.add()
    snapshot = record_snapshot(ctx, server)
    nova.replace(server, **changes)
    with unchanged():
        resp = restore(api, snapshot)
    assert resp.status_int == 409, resp.text
    message = resp.json["error"]["message"]
    assert message.startswith(f"Server {server.id} cannot be restored now")
    assert reason in message


def test_a_snapshot_kept_through_a_rebuild_is_restorable(api, nova, ctx):
    server = nova.add()
    snapshot = record_snapshot(ctx, server)
    # The conductor's mark on a snapshot whose images the agent moved out
    # of Nova's way (conductor/inventory.py): the agent copies it into
    # Nova's new disks, so the API takes the restore like any other.
    db_api.snapshot_update(
        ctx,
        snapshot.id,
        {"disks": [dict(disk, kept=True) for disk in snapshot.disks]},
    )
    resp = restore(api, snapshot)
    assert resp.status_int == 202, resp.text
    operation = resp.json["operation"]
    assert (operation["type"], operation["snapshot_id"]) == (
        "restore",
        snapshot.id,
    )


# What a restore holds


def test_the_snapshot_being_restored_cannot_be_deleted(
    api, nova, ctx, compute, unchanged
):
    server = nova.add()
    snapshot = record_snapshot(ctx, server)
    operation = restore(api, snapshot).json["operation"]
    with unchanged():
        resp = api.delete(f"/v1/snapshots/{snapshot.id}")
    assert resp.status_int == 409, resp.text
    assert resp.json["error"]["message"] == (
        f"Snapshot {snapshot.id} is in use by restore {operation['id']}."
    )
    assert compute.casts == []


def test_no_snapshot_now_while_a_restore_holds_the_server(
    api, nova, ctx, compute, unchanged
):
    server = nova.add()
    operation = restore(api, record_snapshot(ctx, server)).json["operation"]
    with unchanged():
        resp = api.post(f"/v1/servers/{server.id}/snapshots")
    assert resp.status_int == 409, resp.text
    assert operation["id"] in resp.json["error"]["message"]
    assert compute.casts == []


def test_a_failed_restore_holds_the_server_until_retried_or_abandoned(
    api, nova, ctx, unchanged
):
    server = nova.add()
    first, second = record_snapshot(ctx, server), record_snapshot(ctx, server)
    operation = restore(api, first).json["operation"]
    fail(ctx, operation["id"])
    with unchanged():
        resp = restore(api, second)
    assert resp.status_int == 409, resp.text
    assert resp.json["error"]["message"] == (
        f"Server {server.id} is held by restore {operation['id']}, which "
        "failed: retry or abandon it first."
    )


# Retry and abandon


@pytest.mark.parametrize(
    "action, successor_type", [("retry", "restore"), ("abandon", "abandon")]
)
def test_a_new_operation_takes_the_failed_restores_server_over(
    api, nova, ctx, action, successor_type
):
    # Retry: a restore from the same snapshot. Abandon: the conductor
    # unlocks the server (tests/unit/conductor/test_restore.py).
    server = nova.add(status="SHUTOFF")
    snapshot = record_snapshot(ctx, server)
    failed = restore(api, snapshot).json["operation"]
    fail(ctx, failed["id"])
    resp = operation_action(api, failed["id"], action)
    assert resp.status_int == 202, resp.text
    successor = resp.json["operation"]
    assert resp.headers["Location"].endswith(
        f"/v1/operations/{successor['id']}"
    )
    assert successor["id"] != failed["id"]
    assert (
        successor["type"],
        successor["state"],
        successor["snapshot_id"],
    ) == (successor_type, "pending", snapshot.id)
    assert db_api.operation_holding(ctx, server.id).id == successor["id"]
    # The failed one is history, as it was.
    row = db_api.operation_get(ctx, failed["id"])
    assert (row.state, row.error) == ("failed", FAILED_ERROR)
    # Its hold has moved: it cannot be retried or abandoned twice.
    for again in ("retry", "abandon"):
        resp = operation_action(api, failed["id"], again)
        assert resp.status_int == 409, resp.text
        assert (
            "it was retried or abandoned already"
            in (resp.json["error"]["message"])
        )


def test_retry_is_refused_up_front_like_a_restore(api, nova, ctx, unchanged):
    server = nova.add(status="SHUTOFF")
    failed = restore(api, record_snapshot(ctx, server)).json["operation"]
    fail(ctx, failed["id"])
    nova.replace(server, status="ERROR")
    with unchanged():
        resp = operation_action(api, failed["id"], "retry")
    assert resp.status_int == 409, resp.text
    assert "it is ERROR" in resp.json["error"]["message"]
    # Abandoning needs nothing of the server: it is the way out.
    assert operation_action(api, failed["id"], "abandon").status_int == 202


@pytest.mark.parametrize("state", ["pending", "succeeded"])
def test_only_a_failed_restore_can_be_retried_or_abandoned(
    api, nova, ctx, unchanged, state
):
    server = nova.add()
    operation = restore(api, record_snapshot(ctx, server)).json["operation"]
    if state == "succeeded":
        db_api.operation_update_step(
            ctx, operation["id"], None, {"state": "succeeded", "step": "done"}
        )
    for action in ("retry", "abandon"):
        with unchanged():
            resp = operation_action(api, operation["id"], action)
        assert resp.status_int == 409, resp.text
        assert resp.json["error"]["message"] == (
            f"Operation {operation['id']} cannot be {action}ed: it is "
            f"{state}; only a failed restore that still holds its server "
            "can be."
        ).replace("retryed", "retried")


def test_operation_actions_of_other_operations_are_409(
    api, nova, ctx, unchanged
):
    server = nova.add()
    record_snapshot(ctx, server)
    operation = db_api.operation_create(
        ctx, {"type": "snapshot", "instance_uuid": server.id}
    )
    db_api.operation_update(
        ctx, operation.id, {"state": "failed", "error": "x"}
    )
    with unchanged():
        resp = operation_action(api, operation.id, "retry")
    assert resp.status_int == 409


@pytest.mark.parametrize(
    "body, message",
    [
        ({}, "body: exactly one of retry, abandon is required"),
        (
            {"retry": {}, "abandon": {}},
            "body: exactly one of retry, abandon is required",
        ),
        ({"retry": {"now": True}}, "retry.now: unknown field (known: none)"),
        ({"resume": {}}, "resume: unknown field (known: abandon, retry)"),
    ],
)
def test_operation_action_bodies_are_checked(api, nova, ctx, body, message):
    server = nova.add()
    operation = restore(api, record_snapshot(ctx, server)).json["operation"]
    fail(ctx, operation["id"])
    resp = api.post(
        f"/v1/operations/{operation['id']}/action", body, headers=AT_1_3
    )
    assert resp.status_int == 400, resp.text
    assert resp.json["error"]["message"] == message


def test_another_projects_operation_is_not_found(api, nova, ctx):
    server = nova.add()
    operation = restore(api, record_snapshot(ctx, server)).json["operation"]
    fail(ctx, operation["id"])
    resp = operation_action(
        api, operation["id"], "abandon", who=fakes.OTHER_MEMBER
    )
    assert resp.status_int == 404
    assert resp.json["error"]["message"] == (
        f"Operation {operation['id']} could not be found."
    )


def test_operation_actions_need_microversion_1_3(api, nova, ctx, unchanged):
    server = nova.add()
    operation = restore(api, record_snapshot(ctx, server)).json["operation"]
    fail(ctx, operation["id"])
    path = f"/v1/operations/{operation['id']}/action"
    with unchanged():
        resp = api.post(path, {"abandon": {}})
    assert resp.status_int == 404, resp.text
    assert resp.json["error"]["message"] == f"No resource at {path}."
