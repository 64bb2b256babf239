"""``openstack server snapshot quota show|set|delete``: requests and
output."""

import json

import pytest
from osc_lib import exceptions

from snapmanager_nova.osc.v1 import quota
from tests.unit.osc import fakes

PATH = f"/v1/quota-sets/{fakes.PROJECT_ID}"


def quota_set(snapshots=100, gigabytes=-1):
    return {
        "quota_set": {
            "project_id": fakes.PROJECT_ID,
            "snapshots": {"limit": snapshots, "in_use": 3, "default": 100},
            "snapshot_gigabytes": {
                "limit": gigabytes,
                "in_use": 2,
                "default": -1,
            },
        }
    }


@pytest.fixture
def api():
    return fakes.make_client()


def test_show_own_project_at_1_1(api):
    client, transport = api
    transport.answer("GET", PATH, 200, quota_set())
    app = fakes.make_app(client)

    fakes.run(quota.ShowQuota, app, "-f", "json")

    (sent,) = transport.sent
    assert sent.headers["OpenStack-API-Version"] == "snapmanager 1.1"
    assert json.loads(app.stdout.getvalue()) == [
        {"Resource": "snapshots", "Limit": 100, "In Use": 3, "Default": 100},
        {
            "Resource": "snapshot_gigabytes",
            "Limit": -1,
            "In Use": 2,
            "Default": -1,
        },
    ]


def test_set_sends_only_the_limits_given(api):
    client, transport = api
    transport.answer("PUT", PATH, 200, quota_set(snapshots=20))
    app = fakes.make_app(client)

    fakes.run(quota.SetQuota, app, "demo", "--snapshots", "20", "-f", "json")

    assert transport.sent[0].body == {"quota_set": {"snapshots": 20}}
    rows = json.loads(app.stdout.getvalue())
    assert rows[0]["Limit"] == 20


def test_set_without_a_limit_is_refused(api):
    client, transport = api
    with pytest.raises(exceptions.CommandError, match="--snapshots"):
        fakes.run(quota.SetQuota, fakes.make_app(client), "demo")
    assert transport.sent == []


def test_delete(api):
    client, transport = api
    transport.answer("DELETE", PATH, 204)
    fakes.run(quota.DeleteQuota, fakes.make_app(client), "demo")
    assert [r.method for r in transport.sent] == ["DELETE"]


def test_refusal_shows_the_apis_message(api):
    client, transport = api
    transport.answer(
        "PUT", PATH, *fakes.error(403, "Policy does not allow it.")
    )
    with pytest.raises(exceptions.CommandError, match="Policy does not"):
        fakes.run(
            quota.SetQuota, fakes.make_app(client), "demo", "--gigabytes", "5"
        )
