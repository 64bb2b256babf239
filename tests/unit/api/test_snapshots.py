"""Snapshots: list, show, take now, delete, restore; and operations."""

import oslo_messaging as messaging
import pytest

from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from tests.unit.api import fakes
from tests.unit.api.helpers import record_instance
from tests.unit.api.helpers import record_snapshot


def _ids(resp):
    assert resp.status_int == 200, resp.text
    return [snapshot["id"] for snapshot in resp.json["snapshots"]]


# Listing and showing


def test_list_own_project_without_deleted(api, nova, ctx):
    server, other = nova.add(), nova.add()
    kept = [
        record_snapshot(ctx, server),
        record_snapshot(ctx, other, status=models.SNAPSHOT_ERROR),
        record_snapshot(ctx, server, status=models.SNAPSHOT_CREATING),
    ]
    gone = record_snapshot(ctx, server, status=models.SNAPSHOT_DELETED)
    record_snapshot(ctx, nova.add(project_id=fakes.OTHER))
    assert _ids(api.get("/v1/snapshots", who=fakes.READER)) == [
        s.id for s in kept
    ]
    assert _ids(api.get("/v1/snapshots?status=deleted")) == [gone.id]
    assert _ids(api.get("/v1/snapshots?status=error")) == [kept[1].id]
    assert _ids(api.get(f"/v1/snapshots?server_id={other.id}")) == [kept[1].id]


def test_server_snapshots(api, nova, ctx):
    server = nova.add()
    mine = [record_snapshot(ctx, server) for _ in range(2)]
    record_snapshot(ctx, nova.add())
    assert _ids(api.get(f"/v1/servers/{server.id}/snapshots")) == [
        s.id for s in mine
    ]


def test_snapshots_of_server_nova_deleted_stay_listed(api, nova, ctx):
    server = nova.add()
    snapshot = record_snapshot(ctx, server)
    nova.delete(server)
    assert _ids(api.get(f"/v1/servers/{server.id}/snapshots")) == [snapshot.id]


def test_admin_lists_another_projects_server(api, nova, ctx):
    server = nova.add(project_id=fakes.OTHER)
    snapshot = record_snapshot(ctx, server)
    path = f"/v1/servers/{server.id}/snapshots"
    assert _ids(api.get(path, who=fakes.ADMIN)) == [snapshot.id]
    assert _ids(api.get("/v1/snapshots", who=fakes.ADMIN)) == []


@pytest.mark.parametrize(
    "base", ["/v1/snapshots?", "/v1/servers/{server}/snapshots?"]
)
def test_pagination(api, nova, ctx, base):
    server = nova.add()
    made = [record_snapshot(ctx, server).id for _ in range(5)]
    path = base.format(server=server.id) + "limit=2"
    seen, pages = [], 0
    while path:
        resp = api.get(path)
        seen += _ids(resp)
        links = resp.json["snapshots_links"]
        path = (
            links[0]["href"].removeprefix("http://localhost")
            if links
            else None
        )
        pages += 1
    assert seen == made
    assert pages == 3


def test_next_link_keeps_filters(api, nova, ctx):
    server = nova.add()
    for _ in range(2):
        record_snapshot(ctx, server)
    resp = api.get(
        f"/v1/snapshots?status=available&limit=1&server_id={server.id}"
    )
    (link,) = resp.json["snapshots_links"]
    assert link["rel"] == "next"
    assert "status=available" in link["href"]
    assert f"server_id={server.id}" in link["href"]


def test_marker_of_another_listing_is_refused(api, nova, ctx):
    theirs = record_snapshot(ctx, nova.add(project_id=fakes.OTHER))
    for marker in (theirs.id, fakes.UNKNOWN_ID):
        resp = api.get(f"/v1/snapshots?marker={marker}")
        assert resp.status_int == 400
        assert resp.json["error"]["message"] == (
            f"marker: {marker!r} is not a snapshot of this listing"
        )


def test_show(api, nova, ctx):
    server = nova.add()
    snapshot = record_snapshot(ctx, server)
    resp = api.get(f"/v1/snapshots/{snapshot.id}", who=fakes.READER)
    assert resp.status_int == 200
    shown = resp.json["snapshot"]
    assert shown["id"] == snapshot.id
    assert shown["server_id"] == server.id
    assert shown["status"] == "available"
    # Sizes and targets, but no storage paths.
    assert shown["disks"] == [{"target": "vda", "size": 1024}]
    assert shown["size_bytes"] == 1024


def test_show_unknown_is_404(api):
    resp = api.get(f"/v1/snapshots/{fakes.UNKNOWN_ID}")
    assert resp.status_int == 404
    assert resp.json["error"]["message"] == (
        f"Snapshot {fakes.UNKNOWN_ID} could not be found."
    )


# Taking a snapshot now


def test_create_records_and_casts(api, nova, compute, ctx):
    server = nova.add(host="compute-3")
    resp = api.post(f"/v1/servers/{server.id}/snapshots", {"quiesce": "skip"})
    assert resp.status_int == 202, resp.text
    snapshot = resp.json["snapshot"]
    operation = resp.json["operation"]
    assert snapshot["status"] == "creating"
    assert snapshot["schedule_id"] is None
    assert operation["type"] == "snapshot"
    assert operation["state"] == "pending"
    assert operation["snapshot_id"] == snapshot["id"]
    assert resp.headers["Location"].endswith(
        f"/v1/operations/{operation['id']}"
    )
    row = db_api.snapshot_get(ctx, snapshot["id"])
    assert row.snapshot_index == 1
    assert compute.casts == [
        (
            "create_snapshot",
            {
                "host": "compute-3",
                "instance_uuid": server.id,
                "snapshot_id": snapshot["id"],
                "index": 1,
                "quiesce": "skip",
            },
        )
    ]
    instance = db_api.instance_get(ctx, server.id)
    assert instance.host == "compute-3"
    # Taking one snapshot does not switch scheduled snapshots on.
    assert not instance.snapshot_enabled


def test_create_without_body_prefers_quiesce(api, nova, compute):
    server = nova.add()
    first = api.post(f"/v1/servers/{server.id}/snapshots", body=b"")
    second = api.post(f"/v1/servers/{server.id}/snapshots")
    assert first.status_int == second.status_int == 202
    assert [kwargs["quiesce"] for _, kwargs in compute.casts] == [
        "prefer",
        "prefer",
    ]
    # Every snapshot gets an index of its own.
    assert [kwargs["index"] for _, kwargs in compute.casts] == [1, 2]


@pytest.mark.parametrize(
    "status,host,reason",
    [
        ("BUILD", "compute-1", "it is BUILD"),
        ("SHELVED_OFFLOADED", None, "it is SHELVED_OFFLOADED and has no"),
        ("ERROR", "compute-1", "it is ERROR"),
    ],
)
def test_create_refused_when_server_not_ready(
    api, nova, compute, unchanged, status, host, reason
):
    server = nova.add(status=status, host=host)
    with unchanged():
        resp = api.post(f"/v1/servers/{server.id}/snapshots")
    assert resp.status_int == 409
    assert reason in resp.json["error"]["message"]
    assert compute.casts == []


def test_create_when_bus_is_down_fails_visibly(api, nova, compute, ctx):
    server = nova.add()
    compute.fail_with = messaging.MessageDeliveryFailure("no broker")
    resp = api.post(f"/v1/servers/{server.id}/snapshots")
    assert resp.status_int == 503
    (snapshot,) = db_api.snapshot_list(ctx, instance_uuid=server.id)
    assert snapshot.status == "error"
    assert "could not be sent" in snapshot.error
    (operation,) = db_api.operation_list(ctx, instance_uuid=server.id)
    assert operation.state == "failed"


# Deleting


@pytest.mark.parametrize("status", ["available", "error"])
def test_delete_marks_deleting_and_casts(api, nova, compute, ctx, status):
    server = nova.add(host="compute-9")
    snapshot = record_snapshot(ctx, server, status=status)
    resp = api.delete(f"/v1/snapshots/{snapshot.id}")
    assert resp.status_int == 202, resp.text
    assert resp.json["snapshot"]["status"] == "deleting"
    assert resp.json["operation"]["type"] == "delete"
    assert db_api.snapshot_get(ctx, snapshot.id).status == "deleting"
    ((method, kwargs),) = compute.casts
    assert method == "delete_snapshot"
    assert kwargs["host"] == "compute-9"
    assert kwargs["snapshot_id"] == snapshot.id
    assert kwargs["index"] == snapshot.snapshot_index
    assert kwargs["backend"] == "file"
    assert kwargs["disks"] == snapshot.disks


@pytest.mark.parametrize("status", ["creating", "deleting", "deleted"])
def test_delete_in_other_states_is_409(
    api, nova, compute, ctx, unchanged, status
):
    snapshot = record_snapshot(ctx, nova.add(), status=status)
    with unchanged():
        resp = api.delete(f"/v1/snapshots/{snapshot.id}")
    assert resp.status_int == 409
    assert f"it is {status}" in resp.json["error"]["message"]
    assert compute.casts == []


def test_delete_without_host_is_409(api, nova, compute, ctx, unchanged):
    server = nova.add()
    snapshot = record_snapshot(ctx, server)
    db_api.instance_create_or_update(ctx, server.id, {"host": None})
    with unchanged():
        resp = api.delete(f"/v1/snapshots/{snapshot.id}")
    assert resp.status_int == 409
    assert "no compute host" in resp.json["error"]["message"]


def test_delete_when_bus_is_down_fails_visibly(api, nova, compute, ctx):
    snapshot = record_snapshot(ctx, nova.add())
    compute.fail_with = messaging.MessagingTimeout("no broker")
    resp = api.delete(f"/v1/snapshots/{snapshot.id}")
    assert resp.status_int == 503
    assert db_api.snapshot_get(ctx, snapshot.id).status == "error"


# Restoring


def test_restore_records_pending_operation(api, nova, compute, ctx):
    server = nova.add()
    snapshot = record_snapshot(ctx, server)
    resp = api.post(f"/v1/snapshots/{snapshot.id}/action", {"restore": {}})
    assert resp.status_int == 202, resp.text
    operation = resp.json["operation"]
    assert operation["type"] == "restore"
    assert operation["state"] == "pending"
    assert operation["progress"] == 0
    assert operation["snapshot_id"] == snapshot.id
    assert operation["server_id"] == server.id
    # The conductor orchestrates the restore; the API casts nothing.
    assert compute.casts == []
    shown = api.get(f"/v1/operations/{operation['id']}", who=fakes.READER)
    assert shown.status_int == 200
    assert shown.json["operation"] == operation


def test_second_restore_while_one_is_pending_is_409(api, nova, ctx):
    server = nova.add()
    snapshot = record_snapshot(ctx, server)
    path = f"/v1/snapshots/{snapshot.id}/action"
    assert api.post(path, {"restore": {}}).status_int == 202
    resp = api.post(path, {"restore": {}})
    assert resp.status_int == 409
    assert "busy" in resp.json["error"]["message"]


@pytest.mark.parametrize("status", ["creating", "error", "deleting"])
def test_restore_needs_available_snapshot(api, nova, ctx, unchanged, status):
    snapshot = record_snapshot(ctx, nova.add(), status=status)
    with unchanged():
        resp = api.post(f"/v1/snapshots/{snapshot.id}/action", {"restore": {}})
    assert resp.status_int == 409
    assert f"it is {status}, not available" in resp.json["error"]["message"]


def test_restore_needs_server_in_nova(api, nova, ctx, unchanged):
    server = nova.add()
    snapshot = record_snapshot(ctx, server)
    nova.delete(server)
    with unchanged():
        resp = api.post(f"/v1/snapshots/{snapshot.id}/action", {"restore": {}})
    assert resp.status_int == 409
    assert "Nova no longer has it" in resp.json["error"]["message"]


def test_unknown_action_is_400(api, nova, ctx):
    snapshot = record_snapshot(ctx, nova.add())
    resp = api.post(f"/v1/snapshots/{snapshot.id}/action", {"revert": {}})
    assert resp.status_int == 400
    assert resp.json["error"]["message"] == (
        "revert: unknown field (known: restore)"
    )


def test_unknown_operation_is_404(api):
    resp = api.get(f"/v1/operations/{fakes.UNKNOWN_ID}")
    assert resp.status_int == 404


def test_instance_row_for_snapshots_of_new_server(api, nova, ctx):
    # A server whose first contact with Snapmanager is a snapshot taken
    # now gets its row, with no backend until the agent says which.
    server = nova.add()
    api.post(f"/v1/servers/{server.id}/snapshots")
    instance = db_api.instance_get(ctx, server.id)
    assert instance.backend is None and instance.project_id == fakes.DEMO
    record_instance(ctx, server, backend="rbd")
    resp = api.post(f"/v1/servers/{server.id}/snapshots")
    assert resp.json["snapshot"]["backend"] == "rbd"


# Snapshots whose server moved, or whose host is gone (microversion 1.4)

V14 = {"OpenStack-API-Version": "snapmanager 1.4"}


def _held_by(ctx, server, host, alive=True):
    snapshot = record_snapshot(ctx, server, host=host)
    if alive:
        db_api.service_heartbeat(ctx, db_api.COMPUTE_BINARY, host)
    return snapshot


def test_a_snapshot_whose_host_is_gone_is_shown_unavailable(api, nova, ctx):
    server = nova.add(host="compute-9")
    gone = _held_by(ctx, server, "compute-1", alive=False)
    here = _held_by(ctx, server, "compute-9")
    path = f"/v1/servers/{server.id}/snapshots"
    listed = api.get(path, headers=V14).json["snapshots"]
    assert [(s["id"], s["status"]) for s in listed] == [
        (gone.id, "unavailable"),
        (here.id, "available"),
    ]
    reason = listed[0]["unavailable_reason"]
    assert "no longer in service" in reason
    # Tenants are not told host names; administrators see the holder.
    assert "compute-1" not in reason
    assert "host" not in listed[0]
    assert listed[1]["unavailable_reason"] is None
    shown = api.get(f"/v1/snapshots/{gone.id}", who=fakes.ADMIN, headers=V14)
    assert shown.json["snapshot"]["status"] == "unavailable"
    assert shown.json["snapshot"]["host"] == "compute-1"
    # Before 1.4, as stored: nothing new in the view.
    old = api.get(f"/v1/snapshots/{gone.id}").json["snapshot"]
    assert old["status"] == "available"
    assert "unavailable_reason" not in old and "host" not in old
    # Its agent reports in again: available, nothing having changed.
    db_api.service_heartbeat(ctx, db_api.COMPUTE_BINARY, "compute-1")
    again = api.get(f"/v1/snapshots/{gone.id}", headers=V14)
    assert again.json["snapshot"]["status"] == "available"


@pytest.mark.parametrize("action", ["delete", "restore"])
def test_a_snapshot_whose_host_is_gone_is_neither_deleted_nor_restored(
    api, nova, compute, ctx, unchanged, action
):
    snapshot = _held_by(ctx, nova.add(), "compute-1", alive=False)
    with unchanged():
        if action == "delete":
            resp = api.delete(f"/v1/snapshots/{snapshot.id}")
        else:
            resp = api.post(
                f"/v1/snapshots/{snapshot.id}/action", {"restore": {}}
            )
    assert resp.status_int == 409, resp.text
    message = resp.json["error"]["message"]
    assert "no longer in service" in message
    assert "compute-1" not in message
    assert compute.casts == []


def test_a_file_snapshots_delete_goes_to_its_holder(api, nova, compute, ctx):
    # The server moved to compute-9 after compute-7 took the snapshot.
    snapshot = _held_by(ctx, nova.add(host="compute-9"), "compute-7")
    resp = api.delete(f"/v1/snapshots/{snapshot.id}")
    assert resp.status_int == 202, resp.text
    ((method, kwargs),) = compute.casts
    assert (method, kwargs["host"]) == ("delete_snapshot", "compute-7")
