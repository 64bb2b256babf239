"""Bad input is refused with a 4xx naming the field, and writes nothing."""

import io
import json

import pytest
import webob

from snapmanager_nova.api import app
from tests.unit.api import fakes
from tests.unit.api.conftest import ApiClient
from tests.unit.api.helpers import default_path
from tests.unit.api.helpers import policy_path
from tests.unit.api.helpers import record_snapshot


def daily(**changes):
    return dict({"spec": "daily@02:30"}, **changes)


KNOWN_RETENTION = (
    "daily, hourly, keep_count, keep_last, max_age, monthly, weekly, yearly"
)

# (policy body, the error message exactly)
BAD_POLICIES = [
    (
        {"schedules": [daily(spec="daily@25:00")]},
        "schedules[0].spec: time: '25:00' is not HH:MM (00:00-23:59)",
    ),
    (
        {"schedules": [daily(), daily(spec="weekly@funday@09:00")]},
        "schedules[1].spec: day: 'funday' is not a weekday (mon..sun)",
    ),
    (
        {"schedules": [daily(spec="hourly@3")]},
        "schedules[0].spec: 'hourly@3' is not a known schedule "
        "(daily@HH:MM, weekly@DAY@HH:MM, monthly@D@HH:MM, every@Nh[@HH:MM], "
        "COUNT[@DAYS][@HOURS], cron:MIN HOUR DOM MON DOW)",
    ),
    (
        {"schedules": [daily(spec="cron:61 * * * *")]},
        "schedules[0].spec: cron: field 'minute' value '61' out of range 0-59",
    ),
    (
        {"schedules": [daily(spec="  ")]},
        "schedules[0].spec: must not be empty",
    ),
    (
        {"schedules": [daily(timezone="Mars/Base")]},
        "schedules[0].timezone: 'Mars/Base' is not an IANA timezone",
    ),
    (
        {"schedules": [daily(retention={"keep_count": 0})]},
        "schedules[0].retention.keep_count: 0 is not a whole number >= 1",
    ),
    (
        {"schedules": [daily(retention={"daily": -1})]},
        "schedules[0].retention.daily: -1 is not a whole number >= 0",
    ),
    (
        {"schedules": [daily(retention={"keep_count": "7"})]},
        "schedules[0].retention.keep_count: '7' is not of type "
        "['integer', 'null']",
    ),
    (
        {"schedules": [daily(retention={"keep_count": True})]},
        "schedules[0].retention.keep_count: true is not of type "
        "['integer', 'null']",
    ),
    (
        {"schedules": [daily(retention={"keep": 3})]},
        f"schedules[0].retention.keep: unknown field (known: "
        f"{KNOWN_RETENTION})",
    ),
    (
        {"schedules": [daily(retention=[7])]},
        "schedules[0].retention: [7] is not of type object",
    ),
    (
        {"schedules": [daily(spec="6@mon", retention={"keep_count": 3})]},
        "schedules[0].retention.keep_count: 3 disagrees with the count 6 "
        "of spec '6@mon'",
    ),
    (
        {"schedules": [daily(), daily(spec="Daily @ 2:30")]},
        "schedules[1]: spec 'daily@02:30' in UTC is already schedules[0]",
    ),
    (
        {"schedules": [daily(enabled="yes")]},
        "schedules[0].enabled: 'yes' is not of type boolean",
    ),
    (
        {"schedules": [daily(color="blue")]},
        "schedules[0].color: unknown field (known: enabled, retention, "
        "spec, timezone)",
    ),
    (
        {"schedules": [{"timezone": "UTC"}]},
        "schedules[0].spec: is required",
    ),
    (
        {"schedules": [daily(spec=2)]},
        "schedules[0].spec: 2 is not of type string",
    ),
    (
        {"schedules": [daily(spec="x" * 300)]},
        "schedules[0].spec: '" + "x" * 76 + "... is longer than 255 "
        "characters",
    ),
    (
        {"schedules": [daily(spec=f"every@{n}h") for n in range(21)]},
        "schedules: has more than 20 items",
    ),
    (
        {"schedules": [daily()], "quiesce": "prefer"},
        "quiesce: unknown field (known: keep_after_delete, schedules)",
    ),
    (
        {"schedules": [], "keep_after_delete": "no"},
        "keep_after_delete: 'no' is not of type boolean",
    ),
    ({}, "schedules: is required"),
    (
        {"schedules": {"spec": "daily@02:30"}},
        'schedules: {"spec": "daily@02:30"} is not of type array',
    ),
    ([], "body: [] is not of type object"),
]


@pytest.mark.parametrize("body,message", BAD_POLICIES)
def test_bad_policy_is_400(api, nova, unchanged, body, message):
    server = nova.add()
    with unchanged():
        resp = api.put(policy_path(server.id), body)
    assert resp.status_int == 400, resp.text
    assert resp.json == {
        "error": {"code": 400, "title": "Bad Request", "message": message}
    }


def test_bad_policy_of_existing_policy_changes_nothing(api, nova, unchanged):
    server = nova.add()
    api.put(policy_path(server.id), {"schedules": [daily()]})
    with unchanged():
        resp = api.put(
            policy_path(server.id),
            {"schedules": [daily(spec="every@1h"), daily(spec="every@5h")]},
        )
    assert resp.status_int == 400
    assert resp.json["error"]["message"] == (
        "schedules[1].spec: hours: 5 does not divide 24"
    )


def test_bad_default_is_400(api, unchanged):
    with unchanged():
        resp = api.put(
            default_path(fakes.DEMO),
            {"schedules": [daily(timezone="Europe/Nowhere")]},
        )
    assert resp.status_int == 400
    assert resp.json["error"]["message"] == (
        "schedules[0].timezone: 'Europe/Nowhere' is not an IANA timezone"
    )


def test_overlong_project_id_is_400(api, unchanged):
    with unchanged():
        resp = api.put(
            default_path("p" * 256),
            {"schedules": [daily()]},
            who=fakes.ADMIN,
        )
    assert resp.status_int == 400
    assert resp.json["error"]["message"].startswith("project_id: 'ppp")


# The body as bytes


def test_malformed_json_is_400(api, nova, unchanged):
    server = nova.add()
    with unchanged():
        resp = api.put(policy_path(server.id), body=b'{"schedules": [}')
    assert resp.status_int == 400
    assert resp.json["error"]["message"].startswith(
        "body: malformed JSON: Expecting value"
    )


def test_body_not_utf8_is_400(api, nova, unchanged):
    server = nova.add()
    with unchanged():
        resp = api.put(policy_path(server.id), body=b'{"schedules": "\xff"}')
    assert resp.status_int == 400
    assert resp.json["error"]["message"].startswith("body: malformed JSON")


def test_missing_body_is_400(api, nova, unchanged):
    server = nova.add()
    with unchanged():
        resp = api.put(policy_path(server.id))
    assert resp.status_int == 400
    assert resp.json["error"]["message"] == ("body: a JSON object is required")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", None]
)
def test_wrong_content_type_is_415(api, nova, unchanged, content_type):
    server = nova.add()
    with unchanged():
        resp = api.put(
            policy_path(server.id),
            body=json.dumps({"schedules": []}).encode(),
            content_type=content_type,
        )
    assert resp.status_int == 415, resp.text
    assert resp.json["error"]["title"] == "Unsupported Media Type"
    assert "application/json" in resp.json["error"]["message"]


def test_json_with_charset_is_fine(api, nova):
    server = nova.add()
    resp = api.put(
        policy_path(server.id),
        body=b'{"schedules": []}',
        content_type="application/json; charset=UTF-8",
    )
    assert resp.status_int == 200


def test_oversize_body_is_413(api, nova, conf, unchanged):
    server = nova.add()
    limit = conf.conf.api.max_request_body_size
    body = json.dumps(
        {"schedules": [daily(spec="daily@02:30" + " " * limit)]}
    ).encode()
    with unchanged():
        resp = api.put(policy_path(server.id), body=body)
    assert resp.status_int == 413
    assert resp.json["error"]["message"] == (
        f"Request body of {len(body)} bytes is larger than the limit of "
        f"{limit} bytes."
    )


def test_oversize_chunked_body_is_413(application, nova, conf, unchanged):
    """Without Content-Length the body is cut off at the limit as read."""
    server = nova.add()
    limit = conf.conf.api.max_request_body_size
    req = webob.Request.blank(policy_path(server.id), method="PUT")
    req.headers.update(fakes.MEMBER)
    req.content_type = "application/json"
    req.headers["Transfer-Encoding"] = "chunked"
    req.body_file = io.BytesIO(b"[" + b" " * limit + b"]")
    req.content_length = None
    req.environ["wsgi.input_terminated"] = True
    with unchanged():
        resp = req.get_response(application)
    assert resp.status_int == 413
    assert resp.json["error"]["message"] == (
        f"Request body is larger than the limit of {limit} bytes."
    )


def test_body_limit_is_configurable(api, nova, conf):
    conf.config(max_request_body_size=1024, group="api")
    server = nova.add()
    # The application reads the limit when it is built: rebuild it.
    small = ApiClient(app.create_app(conf.conf, nova_servers=nova))
    resp = small.put(
        policy_path(server.id),
        {"schedules": [daily(spec=" " * 1000 + "daily@02:30")]},
    )
    assert resp.status_int == 413


# Query strings


BAD_QUERIES = [
    (
        "/v1/snapshots?color=red",
        "color: unknown query parameter (known: limit, marker, server_id, "
        "status)",
    ),
    ("/v1/snapshots?limit=0", "limit: '0' is not between 1 and 1000"),
    ("/v1/snapshots?limit=1001", "limit: '1001' is not between 1 and 1000"),
    ("/v1/snapshots?limit=ten", "limit: 'ten' is not a whole number"),
    ("/v1/snapshots?limit=-1", "limit: '-1' is not a whole number"),
    (
        "/v1/snapshots?status=broken",
        "status: 'broken' is not one of creating, available, error, "
        "deleting, deleted",
    ),
    ("/v1/snapshots?server_id=vm1", "server_id: 'vm1' is not a UUID"),
    ("/v1/snapshots?marker=last", "marker: 'last' is not a UUID"),
    (
        "/v1/snapshots?limit=1&limit=2",
        "limit: is given more than once",
    ),
    (
        "/v1/snapshot-policies?all_projects=yes",
        "all_projects: 'yes' is not one of 0, 1, false, true",
    ),
    (
        "/v1/snapshot-policies?project_id=other",
        "project_id: unknown query parameter (known: all_projects, limit, "
        "marker)",
    ),
    (
        f"/v1/servers/{fakes.UNKNOWN_ID}/snapshots?server_id=x",
        "server_id: unknown query parameter (known: limit, marker, status)",
    ),
    (
        f"/v1/servers/{fakes.UNKNOWN_ID}/snapshot-policy?verbose=1",
        "verbose: unknown query parameter (known: none)",
    ),
    (
        f"/v1/operations/{fakes.UNKNOWN_ID}?fields=state",
        "fields: unknown query parameter (known: none)",
    ),
]


@pytest.mark.parametrize("path,message", BAD_QUERIES)
def test_bad_query_is_400(api, path, message):
    resp = api.get(path)
    assert resp.status_int == 400, resp.text
    assert resp.json["error"]["message"] == message


def test_unknown_query_on_write_is_400(api, nova, ctx, unchanged):
    snapshot = record_snapshot(ctx, nova.add())
    with unchanged():
        resp = api.delete(f"/v1/snapshots/{snapshot.id}?force=1")
    assert resp.status_int == 400
    assert resp.json["error"]["message"] == (
        "force: unknown query parameter (known: none)"
    )


def test_limit_respects_max_limit(api, conf):
    conf.config(max_limit=5, group="api")
    resp = api.get("/v1/snapshots?limit=6")
    assert resp.status_int == 400
    assert resp.json["error"]["message"] == (
        "limit: '6' is not between 1 and 5"
    )


def test_create_snapshot_bad_quiesce(api, nova, compute, unchanged):
    server = nova.add()
    with unchanged():
        resp = api.post(
            f"/v1/servers/{server.id}/snapshots", {"quiesce": "always"}
        )
    assert resp.status_int == 400
    assert resp.json["error"]["message"] == (
        "quiesce: 'always' is not one of prefer, require, skip"
    )
    assert compute.casts == []


def test_restore_with_options_is_400(api, nova, ctx, unchanged):
    snapshot = record_snapshot(ctx, nova.add())
    with unchanged():
        resp = api.post(
            f"/v1/snapshots/{snapshot.id}/action",
            {"restore": {"start": True}},
        )
    assert resp.status_int == 400
    assert resp.json["error"]["message"] == (
        "restore.start: unknown field (known: none)"
    )


def test_other_projects_server_is_404_even_with_a_valid_body(
    api, nova, unchanged
):
    theirs = nova.add(project_id=fakes.OTHER)
    with unchanged():
        resp = api.put(policy_path(theirs.id), {"schedules": [daily()]})
    assert resp.status_int == 404
    assert resp.json["error"]["message"] == (
        f"Server {theirs.id} could not be found."
    )


@pytest.mark.parametrize("charset", ["no-such-charset", "base64", "x" * 300])
def test_unknown_charset_is_415(api, nova, unchanged, charset):
    server = nova.add()
    with unchanged():
        resp = api.put(
            policy_path(server.id),
            body=b'{"schedules": []}',
            content_type=f"application/json; charset={charset}",
        )
    assert resp.status_int == 415, resp.text
    assert "charset" in resp.json["error"]["message"]


@pytest.mark.parametrize("depth", [40, 5000, 30000])
def test_deeply_nested_body_is_400(api, nova, unchanged, depth):
    server = nova.add()
    body = b'{"schedules": ' + b"[" * depth + b"]" * depth + b"}"
    with unchanged():
        resp = api.put(policy_path(server.id), body=body)
    assert resp.status_int == 400, resp.text
    assert resp.json["error"]["message"].startswith(
        "body: is nested deeper than"
    )
