"""The api module against a real HTTP server (a stand-in for the API that
records what it is sent): which endpoint, which token, which version,
and how answers and errors come back."""

import http.server
import json
import socket
import threading
import types

import pytest
from django import test as django_test
from openstack_dashboard.test.test_data import keystone_data

from snapmanager_dashboard.api import snapmanager
from snapmanager_nova import apiclient
from tests.unit.dashboard import fakes


class _Recorder(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.sent.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers),
                "body": json.loads(body) if body else None,
            }
        )
        status, payload = self.server.answers.pop(0)
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def api_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.sent, server.answers = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _request(url, region="RegionOne"):
    request = django_test.RequestFactory().get("/")
    catalog = fakes.catalog_with_snapmanager(
        keystone_data.SERVICE_CATALOG, public_url=url
    )
    request.user = types.SimpleNamespace(
        token=types.SimpleNamespace(id="the-users-token"),
        service_catalog=catalog,
        services_region=region,
        project_id="the-project",
    )
    return request


def _url(server):
    return "http://127.0.0.1:%d" % server.server_address[1]


def test_requests_carry_the_users_token_and_the_pinned_version(api_server):
    api_server.answers.append((200, {"snapshot_policy": fakes.policy()}))
    policy = snapmanager.policy_get(_request(_url(api_server)), "srv")

    assert policy.server_id == fakes.SERVER_ID
    (sent,) = api_server.sent
    assert (sent["method"], sent["path"]) == (
        "GET",
        "/v1/servers/srv/snapshot-policy",
    )
    assert sent["headers"]["X-Auth-Token"] == "the-users-token"
    assert sent["headers"]["OpenStack-API-Version"] == (
        "snapmanager %s" % apiclient.API_VERSION
    )
    assert snapmanager.API_VERSION == apiclient.API_VERSION


def test_a_missing_policy_is_none_and_errors_carry_the_apis_text(
    api_server,
):
    request = _request(_url(api_server))
    api_server.answers.append(
        (404, {"error": {"code": 404, "message": "No policy."}})
    )
    assert snapmanager.policy_get(request, "srv") is None

    message = "schedules[0].spec: time: '25:00' is not HH:MM"
    api_server.answers.append(
        (400, {"error": {"code": 400, "message": message}})
    )
    with pytest.raises(snapmanager.APIError) as raised:
        snapmanager.policy_set(
            request, "srv", [{"spec": "daily@25:00"}], False
        )
    assert str(raised.value) == message
    assert raised.value.code == 400
    assert api_server.sent[-1]["body"] == {
        "schedules": [{"spec": "daily@25:00"}],
        "keep_after_delete": False,
    }


def test_default_policy_is_the_users_projects(api_server):
    api_server.answers.append(
        (
            200,
            {
                "default_snapshot_policy": {
                    "project_id": "the-project",
                    "schedules": [],
                }
            },
        )
    )
    snapmanager.default_policy_get(_request(_url(api_server)))
    assert api_server.sent[0]["path"] == (
        "/v1/projects/the-project/default-snapshot-policy"
    )


def test_restore_retry_and_abandon(api_server):
    request = _request(_url(api_server))
    for _ in range(3):
        api_server.answers.append((202, {"operation": fakes.operation()}))
    snapmanager.snapshot_restore(request, "snap")
    snapmanager.operation_retry(request, "op")
    snapmanager.operation_abandon(request, "op")
    assert [(s["path"], s["body"]) for s in api_server.sent] == [
        ("/v1/snapshots/snap/action", {"restore": {}}),
        ("/v1/operations/op/action", {"retry": {}}),
        ("/v1/operations/op/action", {"abandon": {}}),
    ]


@pytest.mark.parametrize(
    "endpoint_type, region, host",
    [
        ("publicURL", "RegionOne", "public.snapmanager.example.com"),
        ("internalURL", "RegionOne", "int.snapmanager.example.com"),
        ("publicURL", "RegionTwo", "two.snapmanager.example.com"),
    ],
)
def test_endpoint_follows_horizons_endpoint_type_and_region(
    endpoint_type, region, host
):
    request = _request(fakes.PUBLIC_URL, region=region)
    with django_test.override_settings(OPENSTACK_ENDPOINT_TYPE=endpoint_type):
        client = snapmanager.snapmanagerclient(request)
    assert client.base_url == "http://%s:8799/v1" % host


@pytest.mark.parametrize(
    "cacert, no_verify, verify",
    [
        (None, False, True),
        (None, True, False),
        ("/etc/ssl/cloud-ca.pem", False, "/etc/ssl/cloud-ca.pem"),
    ],
)
def test_tls_follows_horizons_settings(cacert, no_verify, verify):
    with django_test.override_settings(
        OPENSTACK_SSL_CACERT=cacert, OPENSTACK_SSL_NO_VERIFY=no_verify
    ):
        client = snapmanager.snapmanagerclient(_request(fakes.PUBLIC_URL))
    assert client._adapter.session.verify == verify


def test_is_enabled_follows_the_catalog():
    request = _request(fakes.PUBLIC_URL)
    assert snapmanager.is_enabled(request)
    request.user.service_catalog = keystone_data.SERVICE_CATALOG
    assert not snapmanager.is_enabled(request)


def test_an_api_that_does_not_answer_is_an_api_error_without_its_address():
    # A port nothing listens on: bound, then closed.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    with pytest.raises(snapmanager.APIError) as raised:
        snapmanager.policy_list(_request(url))
    assert raised.value.code == 503
    assert str(raised.value) == str(snapmanager.UNREACHABLE)
    assert "127.0.0.1" not in str(raised.value)
