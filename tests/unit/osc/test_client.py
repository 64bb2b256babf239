"""The REST client: paths, bodies, paging and errors as sent over
keystoneauth (the transport under the session is the only fake)."""

import pytest
from keystoneauth1 import noauth
from keystoneauth1 import session as ksa_session
from osc_lib import exceptions

from snapmanager_nova.osc.v1 import client as sm_client
from tests.unit.osc import fakes


@pytest.mark.parametrize(
    "endpoint, expected",
    [
        ("http://h:8799", "http://h:8799/v1"),
        ("http://h:8799/", "http://h:8799/v1"),
        ("http://h:8799/v1", "http://h:8799/v1"),
        ("http://h:8799/v1/", "http://h:8799/v1"),
        ("https://h/snapmanager", "https://h/snapmanager/v1"),
        ("https://h/snapmanager/v1", "https://h/snapmanager/v1"),
    ],
)
def test_versioned_endpoint(endpoint, expected):
    assert sm_client.versioned_endpoint(endpoint) == expected


@pytest.mark.parametrize("endpoint", [fakes.ENDPOINT, fakes.ENDPOINT + "/v1"])
def test_requests_go_under_v1_of_the_endpoint(endpoint):
    client, transport = fakes.make_client(endpoint)
    path = f"/v1/servers/{fakes.SERVER_ID}/snapshot-policy"
    transport.answer("GET", path, 200, {"snapshot_policy": fakes.policy()})

    assert client.show_policy(fakes.SERVER_ID) == fakes.policy()
    assert [(r.method, r.path) for r in transport.sent] == [("GET", path)]


def test_every_request_names_the_api_version_it_speaks():
    client, transport = fakes.make_client()
    path = f"/v1/servers/{fakes.SERVER_ID}/snapshot-policy"
    transport.answer("GET", path, 200, {"snapshot_policy": fakes.policy()})
    transport.answer("DELETE", path, 204)

    client.show_policy(fakes.SERVER_ID)
    client.unset_policy(fakes.SERVER_ID)

    assert [r.headers["OpenStack-API-Version"] for r in transport.sent] == [
        "snapmanager 1.0"
    ] * 2


def test_no_endpoint_names_the_option():
    session = ksa_session.Session(auth=noauth.NoAuth())
    client = sm_client.Client(session)

    with pytest.raises(exceptions.CommandError) as raised:
        client.show_policy(fakes.SERVER_ID)
    assert "--os-snapmanager-endpoint" in str(raised.value)


def test_error_carries_the_apis_message_as_it_is():
    client, transport = fakes.make_client()
    message = "schedules[0].spec: time: '25:00' is not HH:MM (00:00-23:59)"
    path = f"/v1/servers/{fakes.SERVER_ID}/snapshot-policy"
    transport.answer("PUT", path, *fakes.error(400, message))

    with pytest.raises(sm_client.APIError) as raised:
        client.set_policy(fakes.SERVER_ID, {"schedules": []})
    assert raised.value.code == 400
    assert str(raised.value) == message
    # osc-lib prints a CommandError's message and exits 1.
    assert isinstance(raised.value, exceptions.CommandError)


def test_find_policy_is_none_only_for_404():
    client, transport = fakes.make_client()
    path = f"/v1/servers/{fakes.SERVER_ID}/snapshot-policy"
    transport.answer("GET", path, *fakes.error(404, "no policy"))
    transport.answer("GET", path, *fakes.error(403, "reader"))

    assert client.find_policy(fakes.SERVER_ID) is None
    with pytest.raises(sm_client.APIError, match="reader"):
        client.find_policy(fakes.SERVER_ID)


def test_unset_sends_delete_and_takes_204():
    client, transport = fakes.make_client()
    path = f"/v1/servers/{fakes.SERVER_ID}/snapshot-policy"
    transport.answer("DELETE", path, 204)

    assert client.unset_policy(fakes.SERVER_ID) is None


def _page(items, more):
    links = [{"rel": "next", "href": "ignored"}] if more else []
    return {"snapshots": items, "snapshots_links": links}


def test_list_follows_next_pages_from_the_last_id():
    client, transport = fakes.make_client()
    first = [fakes.snapshot(id=f"id-{i}") for i in range(2)]
    second = [fakes.snapshot(id="id-2")]
    transport.answer("GET", "/v1/snapshots", 200, _page(first, True))
    transport.answer("GET", "/v1/snapshots", 200, _page(second, False))

    listed = client.list_snapshots(status="available")

    assert [s["id"] for s in listed] == ["id-0", "id-1", "id-2"]
    queries = [r.query for r in transport.sent]
    assert queries == [
        {"status": ["available"]},
        {"status": ["available"], "marker": ["id-1"]},
    ]


def test_list_with_limit_asks_for_one_page():
    client, transport = fakes.make_client()
    path = f"/v1/servers/{fakes.SERVER_ID}/snapshots"
    transport.answer("GET", path, 200, _page([fakes.snapshot()], True))

    listed = client.list_snapshots(fakes.SERVER_ID, limit=1, marker="m")

    assert len(listed) == 1
    assert [r.query for r in transport.sent] == [
        {"limit": ["1"], "marker": ["m"]}
    ]


def test_policy_list_pages_by_server_id_and_asks_all_projects():
    client, transport = fakes.make_client()
    page = {
        "snapshot_policies": [fakes.policy(server_id="s1")],
        "snapshot_policies_links": [{"rel": "next", "href": "x"}],
    }
    last = {"snapshot_policies": [], "snapshot_policies_links": []}
    transport.answer("GET", "/v1/snapshot-policies", 200, page)
    transport.answer("GET", "/v1/snapshot-policies", 200, last)

    client.list_policies(all_projects=True)

    assert [r.query for r in transport.sent] == [
        {"all_projects": ["1"]},
        {"all_projects": ["1"], "marker": ["s1"]},
    ]


def test_actions_send_the_bodies_of_the_api():
    client, transport = fakes.make_client()
    accepted = {
        "snapshot": fakes.snapshot("creating"),
        "operation": fakes.operation(type="snapshot"),
    }
    server_snapshots = f"/v1/servers/{fakes.SERVER_ID}/snapshots"
    action = f"/v1/snapshots/{fakes.SNAPSHOT_ID}/action"
    transport.answer("POST", server_snapshots, 202, accepted)
    transport.answer("POST", action, 202, {"operation": fakes.operation()})

    client.create_snapshot(fakes.SERVER_ID)
    client.create_snapshot(fakes.SERVER_ID, quiesce="require")
    client.restore_snapshot(fakes.SNAPSHOT_ID)

    assert [r.body for r in transport.sent] == [
        {},
        {"quiesce": "require"},
        {"restore": {}},
    ]


def test_error_without_the_apis_body_keeps_keystoneauths_text():
    # A proxy in front of the API answers in HTML.
    client, transport = fakes.make_client()
    path = f"/v1/servers/{fakes.SERVER_ID}/snapshot-policy"
    transport.answer("GET", path, 502, None)

    with pytest.raises(sm_client.APIError) as raised:
        client.show_policy(fakes.SERVER_ID)
    assert raised.value.code == 502
    assert "HTTP 502" in str(raised.value)
