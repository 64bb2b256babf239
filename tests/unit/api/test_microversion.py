"""API microversions: what a request asks for, what it gets, and the
headers of every answer under /v1 (doc/source/api.rst, Versions)."""

import pytest
import webob
import webob.dec

from snapmanager_nova.api import errors
from snapmanager_nova.api import microversion
from tests.unit.api import fakes
from tests.unit.api.helpers import policy_path

HEADER = microversion.HEADER
# As if the API had grown to 1.3 and no longer served 1.0 and 1.1.
GROWN = ["1.2", "1.3"]


@pytest.fixture
def grown(monkeypatch):
    monkeypatch.setattr(microversion, "VERSIONS", GROWN)


def test_versions_start_at_1_0_and_go_up_one_at_a_time():
    versions = [microversion.Version.parse(v) for v in microversion.VERSIONS]
    assert versions[0] == (1, 0)
    for before, after in zip(versions, versions[1:], strict=False):
        assert after in (
            (before.major, before.minor + 1),
            (before.major + 1, 0),
        )


@pytest.mark.parametrize(
    "header, served",
    [
        (None, "1.2"),
        ("", "1.2"),
        ("snapmanager 1.2", "1.2"),
        ("snapmanager 1.3", "1.3"),
        ("snapmanager latest", "1.3"),
        ("SnapManager  1.3 ", "1.3"),
        # Other services' entries are no business of this one.
        ("compute 2.90", "1.2"),
        ("compute 2.90, placement latest", "1.2"),
        ("compute not-a-version", "1.2"),
        ("compute 2.1,snapmanager 1.3", "1.3"),
        ("snapmanager 1.3, compute 2.1", "1.3"),
        # Of several entries for this service, the last counts.
        ("snapmanager 9.9, snapmanager 1.3", "1.3"),
    ],
)
def test_negotiated_version(grown, header, served):
    assert str(microversion.negotiate(header)) == served


@pytest.mark.parametrize(
    "header, code",
    [
        ("snapmanager 1.1", 406),  # below the minimum
        ("snapmanager 1.4", 406),  # above the maximum
        ("snapmanager 2.0", 406),
        ("snapmanager 1.3, compute 2.1, snapmanager 1.10", 406),
        ("snapmanager", 400),
        ("snapmanager 1", 400),
        ("snapmanager 1.x", 400),
        ("snapmanager 1.3.0", 400),
        ("snapmanager 01.3", 400),
        ("snapmanager 1.03", 400),
        ("snapmanager 0.9", 400),
        ("snapmanager -1.3", 400),
        ("snapmanager v1.3", 400),
        ("snapmanager Latest", 400),
        ("snapmanager 1. 3", 400),
    ],
)
def test_refused_version(grown, header, code):
    with pytest.raises(errors.HTTPError) as refused:
        microversion.negotiate(header)
    assert refused.value.code == code
    assert refused.value.message.startswith(f"{HEADER}: snapmanager ")
    assert "this API serves 1.2 to 1.3" in refused.value.message
    assert refused.value.headers == {"Vary": HEADER}


@webob.dec.wsgify
def _echo(req):
    """Answers with the version it is asked at, as a handler sees it."""
    if req.path_info == "/v1/fail":
        raise errors.HTTPError(409, "conflict")
    version = microversion.get(req)
    text = f"{version} {microversion.at_least(req, '1.3')}"
    return webob.Response(text=text, headers={"Vary": "Accept"})


def _through_middleware(path, header=None):
    req = webob.Request.blank(path)
    if header is not None:
        req.headers[HEADER] = header
    return req.get_response(microversion.MicroversionMiddleware(_echo, "/v1/"))


@pytest.mark.parametrize(
    "header, text", [(None, "1.2 False"), ("snapmanager latest", "1.3 True")]
)
def test_handler_asks_the_requests_version(grown, header, text):
    resp = _through_middleware("/v1/x", header)
    assert resp.text == text
    assert resp.headers[HEADER] == f"snapmanager {text.split()[0]}"
    # A handler's own Vary is kept.
    assert resp.headers["Vary"] == f"Accept, {HEADER}"


def test_an_error_below_is_answered_at_the_version(grown):
    resp = _through_middleware("/v1/fail", "snapmanager 1.3")
    assert resp.status_int == 409
    assert resp.json["error"]["message"] == "conflict"
    assert resp.headers[HEADER] == "snapmanager 1.3"
    assert resp.headers["Vary"] == HEADER


# Through the whole application.


def test_without_header_the_minimum_is_served(api):
    resp = api.get("/v1/snapshots")
    assert resp.status_int == 200
    assert resp.headers[HEADER] == "snapmanager 1.0"
    assert resp.headers["Vary"] == HEADER


@pytest.mark.parametrize(
    "asked, served",
    [
        ("snapmanager 1.0", "1.0"),
        ("snapmanager latest", microversion.VERSIONS[-1]),
    ],
)
def test_asked_version_is_served(api, asked, served):
    resp = api.get("/v1/snapshots", headers={HEADER: asked})
    assert resp.status_int == 200
    assert resp.headers[HEADER] == f"snapmanager {served}"


@pytest.mark.parametrize(
    "asked, code, title",
    [
        ("snapmanager 1.999", 406, "Not Acceptable"),
        ("snapmanager 2.0", 406, "Not Acceptable"),
        ("snapmanager one", 400, "Bad Request"),
    ],
)
def test_refused_version_is_a_json_error_naming_the_header(
    api, unchanged, asked, code, title
):
    with unchanged():
        resp = api.put(
            policy_path(fakes.UNKNOWN_ID),
            {"schedules": []},
            headers={HEADER: asked},
        )
    assert resp.status_int == code
    assert resp.json["error"]["code"] == code
    assert resp.json["error"]["title"] == title
    assert resp.json["error"]["message"].startswith(f"{HEADER}: ")
    assert "1.0 to" in resp.json["error"]["message"]
    # No version was served; the answer still depends on the header.
    assert HEADER not in resp.headers
    assert resp.headers["Vary"] == HEADER


def test_version_is_checked_before_the_identity(api):
    resp = api.get(
        "/v1/snapshots",
        who=fakes.ANONYMOUS,
        headers={HEADER: "snapmanager 2.0"},
    )
    assert resp.status_int == 406


@pytest.mark.parametrize(
    "method, path, kwargs, code",
    [
        ("GET", "/v1/nowhere", {}, 404),
        ("PATCH", f"/v1/snapshots/{fakes.UNKNOWN_ID}", {}, 405),
        ("GET", "/v1/snapshots", {"who": fakes.ANONYMOUS}, 401),
        ("GET", "/v1/snapshots?limit=0", {}, 400),
        ("GET", f"/v1/snapshots/{fakes.UNKNOWN_ID}", {}, 404),
        ("PUT", policy_path(fakes.UNKNOWN_ID), {"body": b" " * 70000}, 413),
    ],
)
def test_every_v1_answer_names_the_version(api, method, path, kwargs, code):
    resp = api.request(
        method, path, headers={HEADER: "snapmanager latest"}, **kwargs
    )
    assert resp.status_int == code
    assert resp.headers[HEADER] == f"snapmanager {microversion.VERSIONS[-1]}"
    assert resp.headers["Vary"] == HEADER


@pytest.mark.parametrize("path", ["/", "/healthcheck"])
def test_unversioned_paths_ignore_the_header(api, path):
    resp = api.get(
        path, who=fakes.ANONYMOUS, headers={HEADER: "snapmanager 9.0"}
    )
    assert resp.status_int == 200
    assert HEADER not in resp.headers
