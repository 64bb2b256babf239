"""A project's default snapshot policy."""

from snapmanager_nova.db import api as db_api
from tests.unit.api import fakes
from tests.unit.api.helpers import default_path
from tests.unit.api.helpers import policy_path

DEFAULTS = {
    "schedules": [
        {"spec": "daily@01:00", "retention": {"daily": 7, "weekly": 4}},
        {"spec": "monthly@31@03:00", "timezone": "Asia/Kolkata"},
    ]
}


def test_put_get_delete(api, ctx):
    path = default_path(fakes.DEMO)
    resp = api.put(path, DEFAULTS)
    assert resp.status_int == 200, resp.text
    policy = resp.json["default_snapshot_policy"]
    assert policy["project_id"] == fakes.DEMO
    daily, monthly = policy["schedules"]
    assert daily["retention"] == {"daily": 7, "weekly": 4}
    assert daily["next_run_at"] == "2026-03-29T01:00:00Z"
    assert monthly["timezone"] == "Asia/Kolkata"
    # 31 March 03:00 in Kolkata (+05:30).
    assert monthly["next_run_at"] == "2026-03-30T21:30:00Z"
    rows = db_api.schedule_list(
        ctx, project_id=fakes.DEMO, is_project_default=True
    )
    assert [row.id for row in rows] == [daily["id"], monthly["id"]]
    assert all(row.instance_uuid is None for row in rows)

    assert api.get(path, who=fakes.READER).json == resp.json
    assert api.delete(path).status_int == 204
    assert db_api.schedule_list(ctx, is_project_default=True) == []
    assert api.get(path).status_int == 404
    assert api.delete(path).status_int == 404


def test_server_without_own_schedules_uses_default(api, nova):
    api.put(default_path(fakes.DEMO), DEFAULTS)
    server = nova.add()
    resp = api.put(policy_path(server.id), {"schedules": []})
    assert resp.json["snapshot_policy"]["uses_project_default"] is True


def test_defaults_are_per_project(api, ctx):
    api.put(default_path(fakes.DEMO), DEFAULTS)
    api.put(
        default_path(fakes.OTHER),
        {"schedules": [{"spec": "every@12h"}]},
        who=fakes.OTHER_MEMBER,
    )
    api.put(default_path(fakes.DEMO), {"schedules": [{"spec": "every@8h"}]})
    mine = db_api.schedule_list(
        ctx, project_id=fakes.DEMO, is_project_default=True
    )
    theirs = db_api.schedule_list(
        ctx, project_id=fakes.OTHER, is_project_default=True
    )
    assert [row.spec for row in mine] == ["every@8h"]
    assert [row.spec for row in theirs] == ["every@12h"]


def test_admin_sets_any_projects_default(api):
    resp = api.put(default_path("some-project"), DEFAULTS, who=fakes.ADMIN)
    assert resp.status_int == 200
    assert resp.json["default_snapshot_policy"]["project_id"] == (
        "some-project"
    )


def test_another_projects_default_is_403(api):
    resp = api.put(default_path(fakes.OTHER), DEFAULTS)
    assert resp.status_int == 403
    assert "snapmanager:snapshot_policy:set" in resp.json["error"]["message"]


def test_empty_default_is_refused(api, unchanged):
    with unchanged():
        resp = api.put(default_path(fakes.DEMO), {"schedules": []})
    assert resp.status_int == 400
    assert resp.json["error"]["message"] == (
        "schedules: needs at least 1 item(s)"
    )
