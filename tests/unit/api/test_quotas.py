"""Quotas and limits: quota sets, snapshots over quota, rate limits,
schedules that run too often or keep too many."""

import pytest

from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from tests.unit.api import fakes
from tests.unit.api.helpers import default_path
from tests.unit.api.helpers import policy_path
from tests.unit.api.helpers import record_snapshot

V1_1 = {"OpenStack-API-Version": "snapmanager 1.1"}
QUOTAS = f"/v1/quota-sets/{fakes.DEMO}"


def snapshot_now(api, server, **kwargs):
    return api.post(f"/v1/servers/{server.id}/snapshots", **kwargs)


# Quota sets


def test_quota_set_shows_defaults_and_usage(api, nova, ctx, conf):
    conf.config(snapshots=7, group="quota")
    server = nova.add()
    record_snapshot(ctx, server)
    record_snapshot(ctx, server, status=models.SNAPSHOT_ERROR)
    record_snapshot(ctx, server, status=models.SNAPSHOT_DELETED)
    resp = api.get(QUOTAS, headers=V1_1, who=fakes.READER)
    assert resp.status_int == 200, resp.text
    # Failed and deleted snapshots do not count.
    assert resp.json == {
        "quota_set": {
            "project_id": fakes.DEMO,
            "snapshots": {"limit": 7, "in_use": 1, "default": 7},
            "snapshot_gigabytes": {"limit": -1, "in_use": 1, "default": -1},
        }
    }


def test_quota_sets_are_not_in_version_1_0(api):
    resp = api.get(QUOTAS, who=fakes.ADMIN)
    assert resp.status_int == 404
    assert resp.headers["OpenStack-API-Version"] == "snapmanager 1.0"


def test_admin_overrides_one_limit_then_drops_the_overrides(api):
    resp = api.put(
        QUOTAS,
        {"quota_set": {"snapshots": 3}},
        who=fakes.ADMIN,
        headers=V1_1,
    )
    assert resp.status_int == 200, resp.text
    assert resp.json["quota_set"]["snapshots"]["limit"] == 3
    assert resp.json["quota_set"]["snapshot_gigabytes"]["limit"] == -1
    # Another project keeps the defaults.
    other = api.get(
        f"/v1/quota-sets/{fakes.OTHER}", who=fakes.ADMIN, headers=V1_1
    )
    assert other.json["quota_set"]["snapshots"]["limit"] == 100
    resp = api.put(
        QUOTAS,
        {"quota_set": {"snapshot_gigabytes": 50}},
        who=fakes.ADMIN,
        headers=V1_1,
    )
    assert resp.json["quota_set"]["snapshots"]["limit"] == 3
    assert resp.json["quota_set"]["snapshot_gigabytes"]["limit"] == 50
    assert api.delete(QUOTAS, who=fakes.ADMIN, headers=V1_1).status_int == 204
    shown = api.get(QUOTAS, headers=V1_1).json["quota_set"]
    assert shown["snapshots"]["limit"] == 100
    assert shown["snapshot_gigabytes"]["limit"] == -1


@pytest.mark.parametrize(
    "body, message",
    [
        ({"quota_set": {"snapshots": -2}}, "quota_set.snapshots: "),
        ({"quota_set": {"snapshots": 10**30}}, "quota_set.snapshots: "),
        ({"quota_set": {"snapshots": "5"}}, "quota_set.snapshots: "),
        ({"quota_set": {"volumes": 5}}, "quota_set.volumes: unknown"),
        ({"quota_set": {}}, "quota_set: "),
        ({}, "quota_set: is required"),
    ],
)
def test_bad_quota_set_is_400(api, unchanged, body, message):
    with unchanged():
        resp = api.put(QUOTAS, body, who=fakes.ADMIN, headers=V1_1)
    assert resp.status_int == 400, resp.text
    assert resp.json["error"]["message"].startswith(message)


# Snapshots over quota


def test_snapshot_now_over_quota_is_403_naming_the_limit(
    api, nova, ctx, conf, compute, unchanged
):
    conf.config(snapshots=2, group="quota")
    server = nova.add()
    record_snapshot(ctx, server)
    assert snapshot_now(api, server).status_int == 202
    with unchanged():
        resp = snapshot_now(api, server)
    assert resp.status_int == 403, resp.text
    assert resp.json["error"]["message"] == (
        "Quota exceeded for snapshots: the limit is 2 and 2 are in use."
    )
    assert len(compute.casts) == 1


def test_project_override_applies_to_snapshot_now(api, nova, ctx):
    server = nova.add()
    api.put(
        QUOTAS, {"quota_set": {"snapshots": 0}}, who=fakes.ADMIN, headers=V1_1
    )
    resp = snapshot_now(api, server)
    assert resp.status_int == 403
    assert "snapshots" in resp.json["error"]["message"]
    api.put(
        QUOTAS,
        {"quota_set": {"snapshots": -1}},
        who=fakes.ADMIN,
        headers=V1_1,
    )
    assert snapshot_now(api, server).status_int == 202


def test_snapshot_now_refused_once_the_gigabytes_are_used(
    api, nova, ctx, conf, unchanged
):
    conf.config(snapshot_gigabytes=1, group="quota")
    server = nova.add()
    snapshot = record_snapshot(ctx, server)
    assert snapshot_now(api, server).status_int == 202
    db_api.snapshot_update(ctx, snapshot.id, {"size_bytes": 1024**3})
    with unchanged():
        resp = snapshot_now(api, server)
    assert resp.status_int == 403
    assert resp.json["error"]["message"] == (
        "Quota exceeded for snapshot_gigabytes: the limit is 1 and 1 are "
        "in use."
    )


def test_snapshots_on_request_are_rate_limited(
    api, nova, ctx, conf, unchanged
):
    conf.config(on_demand_snapshots=2, on_demand_period=600, group="quota")
    server = nova.add()
    other = nova.add()
    for _ in range(2):
        assert snapshot_now(api, server).status_int == 202
    # Deleting one does not make room for another.
    first = db_api.snapshot_list(ctx, instance_uuid=server.id)[0]
    db_api.snapshot_update_status(ctx, first.id, models.SNAPSHOT_ERROR)
    with unchanged():
        resp = snapshot_now(api, server)
    assert resp.status_int == 429, resp.text
    assert resp.json["error"]["message"] == (
        f"Too many snapshots taken on request of server {server.id}: at "
        "most 2 per 600 seconds."
    )
    assert 1 <= int(resp.headers["Retry-After"]) <= 600
    # Per server.
    assert snapshot_now(api, other).status_int == 202


# Schedules


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            "cron:*/5 * * * *",
            "schedules[0].spec: 'cron:*/5 * * * *' runs at "
            "2026-03-28T12:00:00Z and again at 2026-03-28T12:05:00Z; "
            "snapshots may be scheduled at most every 3600 seconds",
        ),
        (
            "every@1h@00:30",
            None,
        ),
    ],
)
def test_schedule_more_often_than_the_minimum_is_400(
    api, nova, unchanged, spec, message
):
    server = nova.add()
    body = {"schedules": [{"spec": spec}]}
    if message is None:
        assert api.put(policy_path(server.id), body).status_int == 200
        return
    with unchanged():
        resp = api.put(policy_path(server.id), body)
    assert resp.status_int == 400, resp.text
    assert resp.json["error"]["message"] == message


def test_a_once_a_month_burst_is_found(api, unchanged):
    # Every minute, but only on the 1st: far from now (NOW is the 28th).
    with unchanged():
        resp = api.put(
            default_path(fakes.DEMO),
            {"schedules": [{"spec": "cron:* * 1 * *"}]},
        )
    assert resp.status_int == 400, resp.text
    assert "2026-04-01T00:00:00Z" in resp.json["error"]["message"]


def test_daily_passes_a_daily_minimum_across_dst(api, nova, conf):
    # 23 hours apart in real time on the spring-forward night, but never
    # more often than daily on the clock.
    conf.config(min_schedule_interval=86400, group="quota")
    server = nova.add()
    resp = api.put(
        policy_path(server.id),
        {"schedules": [{"spec": "daily@02:30", "timezone": "Europe/Berlin"}]},
    )
    assert resp.status_int == 200, resp.text


@pytest.mark.parametrize(
    "schedule, message",
    [
        (
            {"spec": "daily@02:30", "retention": {"keep_count": 10**30}},
            "schedules[0].retention.keep_count: 1000000000000000000000000000"
            "000 is more than the 1000 snapshots a schedule may keep",
        ),
        (
            {"spec": "weekly@sun@03:00", "retention": {"weekly": 1001}},
            "schedules[0].retention.weekly: 1001 is more than the 1000 "
            "snapshots a schedule may keep",
        ),
        (
            {"spec": "5000@mon@03"},
            "schedules[0].spec: the count 5000 of '5000@mon@3' is more "
            "than the 1000 snapshots a schedule may keep",
        ),
    ],
)
def test_keep_counts_are_bounded(api, nova, unchanged, schedule, message):
    server = nova.add()
    with unchanged():
        resp = api.put(policy_path(server.id), {"schedules": [schedule]})
    assert resp.status_int == 400, resp.text
    assert resp.json["error"]["message"] == message
