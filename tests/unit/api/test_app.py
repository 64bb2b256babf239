"""The application's frame: version document, healthcheck, errors, auth."""

import pytest

from snapmanager_nova.api import app
from snapmanager_nova.api import microversion
from snapmanager_nova.api import router
from tests.unit.api import fakes
from tests.unit.api.conftest import ApiClient


def test_version_document(api):
    resp = api.get("/", who=fakes.ANONYMOUS)
    assert resp.status_int == 200
    assert resp.content_type == "application/json"
    assert resp.json == {
        "versions": [
            {
                "id": "v1",
                "status": "CURRENT",
                "min_version": "1.0",
                "version": microversion.VERSIONS[-1],
                "links": [{"rel": "self", "href": "http://localhost/v1/"}],
            }
        ]
    }


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_healthcheck_needs_no_identity(api, method):
    resp = api.request(method, "/healthcheck", who=fakes.ANONYMOUS)
    assert resp.status_int in (200, 204)


def test_every_response_has_a_request_id(api):
    for path in ("/", "/v1/snapshots", "/v1/nowhere"):
        resp = api.get(path)
        assert resp.headers["X-OpenStack-Request-Id"].startswith("req-")


@pytest.mark.parametrize("path", ["/v2/snapshots", "/v1/", "/v1/servers"])
def test_unknown_path_is_404(api, path):
    resp = api.get(path)
    assert resp.status_int == 404
    assert resp.json == {
        "error": {
            "code": 404,
            "title": "Not Found",
            "message": f"No resource at {path}.",
        }
    }


def test_wrong_method_is_405_with_allow(api):
    resp = api.request("PATCH", f"/v1/snapshots/{fakes.UNKNOWN_ID}")
    assert resp.status_int == 405
    assert resp.headers["Allow"] == "DELETE, GET"
    assert resp.json["error"]["title"] == "Method Not Allowed"


def test_anonymous_v1_request_is_401(api):
    resp = api.get("/v1/snapshots", who=fakes.ANONYMOUS)
    assert resp.status_int == 401
    assert resp.json["error"]["code"] == 401


def test_unexpected_error_is_500_without_details(conf, engine, caplog):
    class BrokenNova(fakes.FakeNovaServers):
        def get(self, context, server_id):
            raise RuntimeError("secret internals")

    api = ApiClient(app.create_app(conf.conf, nova_servers=BrokenNova()))
    resp = api.get(f"/v1/servers/{fakes.UNKNOWN_ID}/snapshot-policy")
    assert resp.status_int == 500
    assert "secret" not in resp.text
    assert resp.json["error"]["title"] == "Internal Server Error"
    assert "secret internals" in caplog.text


def test_routes_are_unique():
    keys = [
        (method, path)
        for method, path, *_ in router.PUBLIC_ROUTES + router.V1_ROUTES
    ]
    assert len(keys) == len(set(keys))


def test_every_path_parameter_is_checked():
    names = {
        name
        for _, path, *_ in router.V1_ROUTES
        for name in router._PARAMETER.findall(path)
    }
    assert names <= set(router.PATH_PARAMETERS)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/snapshots/not-a-uuid",
        "/v1/servers/%F0%90%80%80/snapshot-policy",
    ],
)
def test_id_that_cannot_be_one_is_404(api, path):
    resp = api.get(path)
    assert resp.status_int == 404, resp.text
    assert resp.json["error"]["message"].endswith("could not be found.")


@pytest.fixture
def keystone_api(conf, engine, nova):
    conf.config(auth_strategy="keystone", group="api")
    # Where clients are sent for a token; set so that refusing a request
    # needs no Keystone at all.
    conf.config(
        www_authenticate_uri="http://keystone.invalid/identity",
        group="keystone_authtoken",
    )
    return ApiClient(app.create_app(conf.conf, nova_servers=nova))


def test_keystone_refuses_missing_token(keystone_api):
    # Identity headers without a token are what keystonemiddleware strips.
    resp = keystone_api.get("/v1/snapshots", who=fakes.ADMIN)
    assert resp.status_int == 401
    assert resp.json["error"]["code"] == 401
    assert resp.headers["WWW-Authenticate"] == (
        'Keystone uri="http://keystone.invalid/identity"'
    )


def test_keystone_leaves_public_paths_open(keystone_api):
    assert keystone_api.get("/", who=fakes.ANONYMOUS).status_int == 200
    resp = keystone_api.get("/healthcheck", who=fakes.ANONYMOUS)
    assert resp.status_int == 200
