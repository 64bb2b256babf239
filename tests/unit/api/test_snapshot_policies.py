"""A server's snapshot policy: set, show, replace, remove, list."""

import datetime

from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from tests.unit.api import fakes
from tests.unit.api.helpers import policy_path

BERLIN_DAILY = {
    "spec": "Daily @ 2:30",
    "timezone": "Europe/Berlin",
    "retention": {"keep_count": 7, "max_age": "30d"},
}


def test_put_sets_policy_and_first_run(api, nova, ctx):
    server = nova.add(host="compute-7")
    resp = api.put(
        policy_path(server.id),
        {"schedules": [BERLIN_DAILY], "keep_after_delete": True},
    )
    assert resp.status_int == 200, resp.text
    policy = resp.json["snapshot_policy"]
    assert policy["server_id"] == server.id
    assert policy["project_id"] == fakes.DEMO
    assert policy["keep_after_delete"] is True
    assert policy["uses_project_default"] is False
    (schedule,) = policy["schedules"]
    assert schedule["spec"] == "daily@02:30"
    assert schedule["family"] == "daily"
    assert schedule["timezone"] == "Europe/Berlin"
    assert schedule["retention"] == {"keep_count": 7, "max_age": 2592000}
    assert schedule["enabled"] is True
    # 02:30 does not exist in Berlin that night: the run is at 03:00 CEST.
    assert schedule["next_run_at"] == "2026-03-29T01:00:00Z"

    instance = db_api.instance_get(ctx, server.id)
    assert instance.snapshot_enabled and instance.keep_after_delete
    assert instance.project_id == fakes.DEMO
    assert instance.host == "compute-7"
    assert instance.backend is None
    (row,) = db_api.schedule_list(ctx, instance_uuid=server.id)
    assert row.id == schedule["id"]
    assert row.next_run_at == datetime.datetime(
        2026, 3, 29, 1, 0, tzinfo=datetime.UTC
    )
    assert row.project_id == fakes.DEMO and not row.is_project_default


def test_get_shows_what_put_set(api, nova):
    server = nova.add()
    put = api.put(policy_path(server.id), {"schedules": [BERLIN_DAILY]})
    got = api.get(policy_path(server.id), who=fakes.READER)
    assert got.status_int == 200
    assert got.json == put.json


def test_put_replaces_schedules_keeping_unchanged_ones(api, nova, ctx):
    server = nova.add()
    first = api.put(
        policy_path(server.id),
        {
            "schedules": [
                BERLIN_DAILY,
                {"spec": "weekly@sun@23:00", "retention": {"weekly": 4}},
            ]
        },
    ).json["snapshot_policy"]["schedules"]
    db_api.schedule_update(
        ctx,
        first[0]["id"],
        {"last_run_at": datetime.datetime(2026, 3, 28, 1, 30)},
    )
    second = api.put(
        policy_path(server.id),
        {
            "schedules": [
                dict(BERLIN_DAILY, retention={"keep_count": 3}),
                {"spec": "every@6h"},
            ]
        },
    ).json["snapshot_policy"]["schedules"]
    # The daily schedule is the same one, with its new retention and its
    # clock untouched; the weekly one is gone, the 6-hourly one new.
    assert second[0]["id"] == first[0]["id"]
    assert second[0]["retention"] == {"keep_count": 3}
    assert second[0]["last_run_at"] == "2026-03-28T01:30:00Z"
    assert second[0]["next_run_at"] == first[0]["next_run_at"]
    assert second[1]["id"] != first[1]["id"]
    assert second[1]["spec"] == "every@6h"
    assert second[1]["next_run_at"] == "2026-03-28T18:00:00Z"
    rows = db_api.schedule_list(ctx, instance_uuid=server.id)
    assert {row.spec for row in rows} == {"daily@02:30", "every@6h"}


def test_disabled_schedule_has_no_next_run_until_enabled(api, nova):
    server = nova.add()
    path = policy_path(server.id)
    disabled = dict(BERLIN_DAILY, enabled=False)
    (row,) = api.put(path, {"schedules": [disabled]}).json["snapshot_policy"][
        "schedules"
    ]
    assert row["enabled"] is False and row["next_run_at"] is None
    (row,) = api.put(path, {"schedules": [BERLIN_DAILY]}).json[
        "snapshot_policy"
    ]["schedules"]
    assert row["enabled"] is True
    assert row["next_run_at"] == "2026-03-29T01:00:00Z"


def test_netapp_count_becomes_keep_count(api, nova):
    server = nova.add()
    resp = api.put(
        policy_path(server.id), {"schedules": [{"spec": "6@mon-fri@7,19"}]}
    )
    (schedule,) = resp.json["snapshot_policy"]["schedules"]
    assert schedule["family"] == "netapp"
    assert schedule["retention"] == {"keep_count": 6}


def test_never_running_spec_has_no_next_run(api, nova):
    server = nova.add()
    resp = api.put(policy_path(server.id), {"schedules": [{"spec": "0@mon"}]})
    (schedule,) = resp.json["snapshot_policy"]["schedules"]
    assert schedule["next_run_at"] is None


def test_empty_schedules_mean_project_default(api, nova, ctx):
    server = nova.add()
    resp = api.put(policy_path(server.id), {"schedules": []})
    assert resp.status_int == 200
    assert resp.json["snapshot_policy"]["uses_project_default"] is True
    assert db_api.instance_get(ctx, server.id).snapshot_enabled


def test_put_records_nova_host_changes(api, nova, ctx):
    server = nova.add(host="compute-1")
    api.put(policy_path(server.id), {"schedules": []})
    nova.replace(server, host="compute-2")
    api.put(policy_path(server.id), {"schedules": []})
    assert db_api.instance_get(ctx, server.id).host == "compute-2"


def test_delete_removes_schedules_and_keeps_snapshots(api, nova, ctx):
    server = nova.add()
    api.put(policy_path(server.id), {"schedules": [BERLIN_DAILY]})
    schedule_id = db_api.schedule_list(ctx, instance_uuid=server.id)[0].id
    snapshot = db_api.snapshot_create(
        ctx, {"instance_uuid": server.id, "schedule_id": schedule_id}
    )
    resp = api.delete(policy_path(server.id))
    assert resp.status_int == 204 and resp.body == b""
    assert db_api.schedule_list(ctx, instance_uuid=server.id) == []
    assert not db_api.instance_get(ctx, server.id).snapshot_enabled
    kept = db_api.snapshot_get(ctx, snapshot.id)
    assert kept.schedule_id is None
    assert api.get(policy_path(server.id)).status_int == 404
    assert api.delete(policy_path(server.id)).status_int == 404


def test_no_policy_is_404(api, nova):
    server = nova.add()
    resp = api.get(policy_path(server.id))
    assert resp.status_int == 404
    assert resp.json["error"]["message"] == (
        f"Server {server.id} has no snapshot policy."
    )


def test_policy_of_server_nova_deleted_is_still_shown(api, nova):
    # Snapmanager's record decides the owner once Nova has forgotten the
    # server, so a tenant can still see and remove what is left.
    server = nova.add()
    api.put(policy_path(server.id), {"schedules": [BERLIN_DAILY]})
    nova.delete(server)
    assert api.get(policy_path(server.id)).status_int == 200
    assert api.put(policy_path(server.id), {"schedules": []}).status_int == 404
    assert api.delete(policy_path(server.id)).status_int == 204


def test_unknown_server_is_404(api):
    for path in (
        policy_path("not-a-uuid"),
        policy_path(fakes.UNKNOWN_ID),
    ):
        resp = api.get(path)
        assert resp.status_int == 404
        assert "could not be found" in resp.json["error"]["message"]


def test_nova_down_is_503(api, nova):
    server = nova.add()
    nova.unavailable = True
    resp = api.put(policy_path(server.id), {"schedules": []})
    assert resp.status_int == 503
    assert resp.json["error"]["title"] == "Service Unavailable"


# Listing


def _policies(resp):
    assert resp.status_int == 200, resp.text
    return [p["server_id"] for p in resp.json["snapshot_policies"]]


def test_list_shows_own_project_only(api, nova):
    mine = [nova.add() for _ in range(3)]
    theirs = nova.add(project_id=fakes.OTHER)
    for server in mine:
        api.put(policy_path(server.id), {"schedules": [BERLIN_DAILY]})
    api.put(
        policy_path(theirs.id),
        {"schedules": []},
        who=fakes.OTHER_MEMBER,
    )
    unset = nova.add()
    api.put(policy_path(unset.id), {"schedules": []})
    api.delete(policy_path(unset.id))
    listed = _policies(api.get("/v1/snapshot-policies", who=fakes.READER))
    assert listed == sorted(server.id for server in mine)
    everyone = _policies(
        api.get("/v1/snapshot-policies?all_projects=1", who=fakes.ADMIN)
    )
    assert everyone == sorted([*(s.id for s in mine), theirs.id])
    # Without all_projects an admin sees their own project, like anyone.
    assert _policies(api.get("/v1/snapshot-policies", who=fakes.ADMIN)) == []


def test_list_schedules_belong_to_their_server(api, nova):
    a, b = nova.add(), nova.add()
    api.put(policy_path(a.id), {"schedules": [BERLIN_DAILY]})
    api.put(policy_path(b.id), {"schedules": [{"spec": "every@1h"}]})
    resp = api.get("/v1/snapshot-policies")
    specs = {
        p["server_id"]: [s["spec"] for s in p["schedules"]]
        for p in resp.json["snapshot_policies"]
    }
    assert specs == {a.id: ["daily@02:30"], b.id: ["every@1h"]}


def test_list_paginates(api, nova):
    servers = sorted((nova.add() for _ in range(5)), key=lambda s: s.id)
    for server in servers:
        api.put(policy_path(server.id), {"schedules": []})
    seen = []
    path = "/v1/snapshot-policies?limit=2"
    pages = 0
    while path:
        resp = api.get(path)
        seen += _policies(resp)
        links = resp.json["snapshot_policies_links"]
        path = (
            links[0]["href"].replace("http://localhost", "") if links else None
        )
        pages += 1
    assert seen == [server.id for server in servers]
    # 2 + 2 + 1: the short third page is known to be the last.
    assert pages == 3


def test_operator_schedules_are_neither_shown_nor_replaced(api, nova, ctx):
    server = nova.add()
    api.put(policy_path(server.id), {"schedules": [BERLIN_DAILY]})
    operator = db_api.schedule_create(
        ctx,
        {
            "instance_uuid": server.id,
            "project_id": fakes.DEMO,
            "family": "netapp",
            "spec": "2@sun",
            "source": models.SCHEDULE_SOURCE_OPERATOR,
        },
    )
    shown = api.get(policy_path(server.id)).json["snapshot_policy"]
    assert [s["spec"] for s in shown["schedules"]] == ["daily@02:30"]

    api.put(policy_path(server.id), {"schedules": [{"spec": "every@6h"}]})
    assert api.delete(policy_path(server.id)).status_int == 204
    # The operator's file is the only source of its schedules.
    (left,) = db_api.schedule_list(ctx, instance_uuid=server.id)
    assert left.id == operator.id
