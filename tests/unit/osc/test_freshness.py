"""``openstack server snapshot freshness list``: requests and output."""

import json

import pytest

from snapmanager_nova.osc.v1 import freshness
from tests.unit.osc import fakes

PATH = "/v1/stale-servers"
SCHEDULE_ID = "1c4e0000-0000-4000-8000-000000000001"
WEEKLY_ID = "1c4e0000-0000-4000-8000-000000000002"


def late(schedule_id=SCHEDULE_ID, spec="daily@02:30", **fields):
    value = {
        "id": schedule_id,
        "spec": spec,
        "timezone": "Europe/Berlin",
        "newest_snapshot_at": "2026-03-08T01:30:00Z",
        "expected_window": "2026-03-10T01:30:00Z",
        "expected_by": "2026-03-10T02:30:00Z",
        "late_by": 5400,
    }
    value.update(fields)
    return value


def stale_server(*schedules, server_id=fakes.SERVER_ID):
    return {
        "server_id": server_id,
        "project_id": fakes.PROJECT_ID,
        "schedules": list(schedules) or [late()],
    }


def page(*servers, more=False):
    links = [{"rel": "next", "href": "x"}] if more else []
    return {"stale_servers": list(servers), "stale_servers_links": links}


@pytest.fixture
def api():
    return fakes.make_client()


def test_a_row_per_late_schedule(api):
    client, transport = api
    two = stale_server(
        late(),
        late(WEEKLY_ID, "weekly@sun@03:00", newest_snapshot_at=None),
    )
    transport.answer("GET", PATH, 200, page(two))
    app = fakes.make_app(client)

    fakes.run(freshness.ListStaleServers, app, "-f", "json")

    assert transport.sent[0].query == {}
    rows = json.loads(app.stdout.getvalue())
    assert rows == [
        {
            "Server ID": fakes.SERVER_ID,
            "Project ID": fakes.PROJECT_ID,
            "Schedule ID": SCHEDULE_ID,
            "Spec": "daily@02:30",
            "Timezone": "Europe/Berlin",
            "Newest Snapshot At": "2026-03-08T01:30:00Z",
            "Expected Window": "2026-03-10T01:30:00Z",
            "Expected By": "2026-03-10T02:30:00Z",
            "Late By": 5400,
        },
        dict(
            rows[0],
            **{
                "Schedule ID": WEEKLY_ID,
                "Spec": "weekly@sun@03:00",
                "Newest Snapshot At": None,
            },
        ),
    ]


def test_the_table_shows_how_late_as_a_duration(api):
    client, transport = api
    transport.answer("GET", PATH, 200, page(stale_server()))
    app = fakes.make_app(client)

    fakes.run(freshness.ListStaleServers, app, "-c", "Late By")

    assert app.stdout.getvalue().splitlines()[3] == "| 1h30m   |"


def test_project_grace_and_one_page(api):
    client, transport = api
    transport.answer("GET", PATH, 200, page(stale_server()))
    app = fakes.make_app(client)

    fakes.run(
        freshness.ListStaleServers,
        app,
        "--project",
        "demo",
        "--grace",
        "7200",
        "--limit",
        "1",
        "--marker",
        fakes.OTHER_SERVER_ID,
        "-f",
        "json",
    )

    # "demo" is the token's own project: no Keystone lookup needed.
    assert transport.sent[0].query == {
        "project_id": [fakes.PROJECT_ID],
        "grace": ["7200"],
        "limit": ["1"],
        "marker": [fakes.OTHER_SERVER_ID],
    }
    assert len(transport.sent) == 1


def test_without_limit_every_page_is_read(api):
    client, transport = api
    transport.answer("GET", PATH, 200, page(stale_server(), more=True))
    transport.answer(
        "GET",
        PATH,
        200,
        page(stale_server(server_id=fakes.OTHER_SERVER_ID)),
    )
    app = fakes.make_app(client)

    fakes.run(freshness.ListStaleServers, app, "-f", "json")

    assert transport.sent[1].query == {"marker": [fakes.SERVER_ID]}
    rows = json.loads(app.stdout.getvalue())
    assert [row["Server ID"] for row in rows] == [
        fakes.SERVER_ID,
        fakes.OTHER_SERVER_ID,
    ]


def test_nothing_stale_is_an_empty_list(api):
    client, transport = api
    transport.answer("GET", PATH, 200, page())
    app = fakes.make_app(client)

    fakes.run(freshness.ListStaleServers, app, "-f", "json")

    assert json.loads(app.stdout.getvalue()) == []


def test_a_refusal_is_the_apis_message(api):
    client, transport = api
    transport.answer(
        "GET",
        PATH,
        *fakes.error(403, "Policy does not allow stale_server:list."),
    )
    app = fakes.make_app(client)

    with pytest.raises(Exception, match="does not allow stale_server:list"):
        fakes.run(freshness.ListStaleServers, app)


def test_it_asks_for_microversion_1_2(api):
    # The route came with 1.2; the client's other requests stay at its
    # default version.
    client, transport = api
    transport.answer("GET", PATH, 200, page())
    versions = []
    send = transport.send

    def recording_send(request, **kwargs):
        versions.append(request.headers.get("OpenStack-API-Version"))
        return send(request, **kwargs)

    transport.send = recording_send
    fakes.run(freshness.ListStaleServers, fakes.make_app(client))

    assert versions == ["snapmanager 1.2"]
