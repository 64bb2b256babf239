"""What the API announces: its own changes, once they are committed.

Into oslo.messaging's in-memory ``test`` driver; the real RabbitMQ is in
tests/functional/test_versioned_notifications.py.
"""

import oslo_messaging as messaging

from snapmanager_nova import conf as sm_conf
from tests.unit.api import fakes
from tests.unit.api.helpers import default_path
from tests.unit.api.helpers import policy_path
from tests.unit.api.helpers import record_snapshot

CONF = sm_conf.CONF


def data(notification):
    return notification["payload"]["nova_object.data"]


def test_a_snapshot_taken_now_is_announced_with_its_operation(
    api, nova, notifications_sent
):
    server = nova.add()
    resp = api.post(f"/v1/servers/{server.id}/snapshots")
    assert resp.status_int == 202, resp.text
    (start,) = notifications_sent()
    assert start["event_type"] == "snapmanager.snapshot.create.start"
    assert start["publisher_id"] == f"snapmanager-api:{CONF.host}"
    assert data(start)["snapshot_id"] == resp.json["snapshot"]["id"]
    assert data(start)["operation_id"] == resp.json["operation"]["id"]
    assert data(start)["server_id"] == server.id
    assert data(start)["project_id"] == fakes.DEMO
    # The tenant who asked.
    assert start["context"]["user"] == fakes.MEMBER["X-User-Id"]


def test_a_refused_cast_is_announced_as_an_error(
    api, nova, compute, notifications_sent
):
    server = nova.add()
    compute.fail_with = messaging.MessageDeliveryFailure("no broker")
    assert api.post(f"/v1/servers/{server.id}/snapshots").status_int == 503
    start, error = notifications_sent()
    assert start["event_type"] == "snapmanager.snapshot.create.start"
    assert error["event_type"] == "snapmanager.snapshot.create.error"
    assert error["priority"] == "error"
    assert "could not be sent" in data(error)["error"]


def test_a_delete_is_announced_and_so_is_its_failure(
    api, nova, compute, ctx, notifications_sent
):
    snapshot = record_snapshot(ctx, nova.add(), status="error")
    resp = api.delete(f"/v1/snapshots/{snapshot.id}")
    assert resp.status_int == 202, resp.text
    (start,) = notifications_sent()
    assert start["event_type"] == "snapmanager.snapshot.delete.start"
    assert data(start)["status"] == "deleting"
    assert data(start)["operation_id"] == resp.json["operation"]["id"]

    other = record_snapshot(ctx, nova.add())
    compute.fail_with = messaging.MessagingTimeout("no broker")
    assert api.delete(f"/v1/snapshots/{other.id}").status_int == 503
    events = [n["event_type"] for n in notifications_sent()[1:]]
    assert events == [
        "snapmanager.snapshot.delete.start",
        "snapmanager.snapshot.delete.error",
    ]


def test_refused_requests_announce_nothing(api, nova, notifications_sent):
    server = nova.add(status="BUILD")
    assert api.post(f"/v1/servers/{server.id}/snapshots").status_int == 409
    assert (
        api.put(
            policy_path(server.id),
            {"schedules": [{"spec": "daily@02:00"}]},
            who=fakes.READER,
        ).status_int
        == 403
    )
    assert api.delete(default_path(fakes.DEMO)).status_int == 404
    assert notifications_sent() == []


def test_policy_changes_are_announced(api, nova, notifications_sent):
    server = nova.add()
    body = {"schedules": [{"spec": "daily@02:00"}]}
    assert api.put(policy_path(server.id), body).status_int == 200
    assert api.delete(policy_path(server.id)).status_int == 204
    update, delete = notifications_sent()
    assert update["event_type"] == "snapmanager.snapshot_policy.update"
    assert data(update)["snapshot_enabled"] is True
    assert len(data(update)["schedules"]) == 1
    assert delete["event_type"] == "snapmanager.snapshot_policy.delete"
    assert data(delete) == {
        "server_id": server.id,
        "project_id": fakes.DEMO,
        "snapshot_enabled": False,
        "keep_after_delete": False,
        "schedules": [],
    }


def test_default_policy_changes_are_announced(api, notifications_sent):
    path = default_path(fakes.DEMO)
    body = {"schedules": [{"spec": "daily@01:00", "timezone": "Asia/Tokyo"}]}
    resp = api.put(path, body)
    assert resp.status_int == 200, resp.text
    assert api.delete(path).status_int == 204
    update, delete = notifications_sent()
    assert update["event_type"] == (
        "snapmanager.default_snapshot_policy.update"
    )
    (schedule,) = data(update)["schedules"]
    assert (
        schedule["nova_object.data"]["schedule_id"]
        == (resp.json["default_snapshot_policy"]["schedules"][0]["id"])
    )
    assert schedule["nova_object.data"]["timezone"] == "Asia/Tokyo"
    assert delete["event_type"] == (
        "snapmanager.default_snapshot_policy.delete"
    )
    assert data(delete) == {"project_id": fakes.DEMO, "schedules": []}
