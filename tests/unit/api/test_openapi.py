"""doc/api/openapi.yaml describes the API the application serves.

Both ways: every route served is documented and nothing else is, with
the same query parameters; and real responses of the application, for a
walk through every route, match the documented status codes, headers and
body schemas (the request bodies sent are checked against the documented
request schemas too).
"""

import json
import pathlib

import jsonschema
import pytest
import referencing
import referencing.jsonschema
import yaml

from snapmanager_nova.api import microversion
from snapmanager_nova.api import router
from snapmanager_nova.db import api as db_api
from tests.unit.api import fakes
from tests.unit.api.helpers import default_path
from tests.unit.api.helpers import policy_path

OPENAPI = pathlib.Path(__file__).parents[3] / "doc" / "api" / "openapi.yaml"
BASE_URI = "urn:snapmanager:openapi"
METHODS = ("get", "put", "post", "delete", "head", "patch")
ROUTES = router.PUBLIC_ROUTES + router.V1_ROUTES


@pytest.fixture(scope="module")
def document():
    return yaml.safe_load(OPENAPI.read_text())


@pytest.fixture(scope="module")
def registry(document):
    resource = referencing.Resource(
        contents=document, specification=referencing.jsonschema.DRAFT202012
    )
    return referencing.Registry().with_resource(BASE_URI, resource)


def _validate(registry, schema, instance, what):
    # Every schema in the document is a reference into its components,
    # which is how they are resolved here: against the whole document.
    assert set(schema) == {"$ref"}, f"{what}: inline schema {schema}"
    validator = jsonschema.Draft202012Validator(
        {"$ref": BASE_URI + schema["$ref"]}, registry=registry
    )
    errors = sorted(validator.iter_errors(instance), key=str)
    assert not errors, f"{what}: {errors[0].message} in {instance}"


def _resolve(document, item):
    while "$ref" in item:
        node = document
        for part in item["$ref"].lstrip("#/").split("/"):
            node = node[part]
        item = node
    return item


def _operation(document, method, template):
    return document["paths"][template][method.lower()]


def _query_parameters(document, template, method):
    path_item = document["paths"][template]
    parameters = path_item.get("parameters", []) + _operation(
        document, method, template
    ).get("parameters", [])
    return {
        parameter["name"]
        for parameter in (_resolve(document, p) for p in parameters)
        if parameter["in"] == "query"
    }


def test_component_schemas_are_json_schemas(document):
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_every_route_is_documented_and_nothing_else(document):
    served = {(method, path) for method, path, *_ in ROUTES}
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }
    assert served == documented


def test_query_parameters_are_documented(document):
    for method, template, _, _, query_schema in ROUTES:
        accepted = set((query_schema or {}).get("properties", {}))
        assert _query_parameters(document, template, method) == accepted, (
            method,
            template,
        )


def test_every_v1_operation_negotiates_the_version(document):
    header = {"$ref": "#/components/parameters/api_version"}
    for template, path_item in document["paths"].items():
        if not template.startswith(router.V1_PREFIX):
            continue
        for method in set(path_item) & set(METHODS):
            operation = path_item[method]
            parameters = path_item.get("parameters", []) + operation.get(
                "parameters", []
            )
            assert header in parameters, (method, template)
            assert {"400", "406"} <= set(operation["responses"]), (
                method,
                template,
            )


class RecordingClient:
    """Wraps the test client and keeps every exchange for checking."""

    def __init__(self, api):
        self.api = api
        self.exchanges = []

    def request(self, method, path, json_body=None, **kwargs):
        resp = self.api.request(method, path, json_body=json_body, **kwargs)
        self.exchanges.append((method, path, json_body, resp))
        return resp

    def expect(self, status, method, path, json_body=None, **kwargs):
        resp = self.request(method, path, json_body=json_body, **kwargs)
        assert resp.status_int == status, (method, path, resp.text)
        return resp


def _walk(client, nova, ctx):
    """Every route at least once with success, and the usual failures."""
    server = nova.add()
    client.expect(200, "GET", "/", who=fakes.ANONYMOUS)
    client.expect(200, "GET", "/healthcheck", who=fakes.ANONYMOUS)
    client.expect(204, "HEAD", "/healthcheck", who=fakes.ANONYMOUS)

    policy = {
        "schedules": [
            {
                "spec": "daily@02:30",
                "timezone": "Europe/Berlin",
                "retention": {"keep_count": 7, "max_age": "30d"},
            },
            {"spec": "6@mon-fri@7,19", "enabled": False},
        ],
        "keep_after_delete": True,
    }
    client.expect(200, "PUT", policy_path(server.id), policy)
    client.expect(200, "GET", policy_path(server.id))
    client.expect(200, "GET", "/v1/snapshot-policies?limit=1")
    client.expect(
        200, "GET", "/v1/snapshot-policies?all_projects=1", who=fakes.ADMIN
    )
    client.expect(
        200,
        "PUT",
        default_path(fakes.DEMO),
        {"schedules": [{"spec": "cron:0 3 * * sun"}]},
    )
    client.expect(200, "GET", default_path(fakes.DEMO))

    taken = client.expect(
        202,
        "POST",
        f"/v1/servers/{server.id}/snapshots",
        {"quiesce": "require"},
    ).json
    client.expect(202, "POST", f"/v1/servers/{server.id}/snapshots")
    snapshot_id = taken["snapshot"]["id"]
    client.expect(200, "GET", "/v1/snapshots?limit=1")
    client.expect(200, "GET", f"/v1/snapshots?server_id={server.id}")
    client.expect(200, "GET", f"/v1/servers/{server.id}/snapshots")
    db_api.snapshot_update_status(
        ctx,
        snapshot_id,
        "available",
        disks=[{"target": "vda", "path": "/store/1/vda", "size": 10}],
        size_bytes=10,
    )
    client.expect(200, "GET", f"/v1/snapshots/{snapshot_id}")
    # 1.4: the holder's host for administrators, and a snapshot whose
    # host is gone shown unavailable, with its reason.
    v14 = {"headers": {microversion.HEADER: "snapmanager 1.4"}}
    client.expect(200, "GET", "/v1/snapshots", **v14)
    gone = db_api.snapshot_create(
        ctx,
        {
            "instance_uuid": server.id,
            "snapshot_index": 99,
            "backend": "file",
            "host": "retired-host",
        },
    )
    db_api.snapshot_update_status(ctx, gone.id, "available")
    client.expect(200, "GET", f"/v1/snapshots/{gone.id}", **v14)
    client.expect(
        200, "GET", f"/v1/snapshots/{gone.id}", who=fakes.ADMIN, **v14
    )
    restore = client.expect(
        202,
        "POST",
        f"/v1/snapshots/{snapshot_id}/action",
        {"restore": {}},
    ).json
    restore_id = restore["operation"]["id"]
    client.expect(200, "GET", f"/v1/operations/{restore_id}")
    # Its snapshot is held until the restore is over; a failed one is
    # retried or abandoned (as the conductor records the outcomes).
    client.expect(409, "DELETE", f"/v1/snapshots/{snapshot_id}")
    db_api.operation_update_step(
        ctx, restore_id, None, {"state": "failed", "error": "agent down"}
    )
    act = {"headers": {microversion.HEADER: "snapmanager 1.3"}}
    restore_action = f"/v1/operations/{restore_id}/action"
    client.expect(404, "POST", restore_action, {"retry": {}})
    client.expect(400, "POST", restore_action, {"redo": {}}, **act)
    retry_id = client.expect(
        202, "POST", restore_action, {"retry": {}}, **act
    ).json["operation"]["id"]
    client.expect(409, "POST", restore_action, {"retry": {}}, **act)
    db_api.operation_update_step(
        ctx, retry_id, None, {"state": "failed", "error": "agent down"}
    )
    abandon_id = client.expect(
        202,
        "POST",
        f"/v1/operations/{retry_id}/action",
        {"abandon": {}},
        **act,
    ).json["operation"]["id"]
    db_api.operation_update_step(
        ctx, abandon_id, None, {"state": "succeeded", "step": "done"}
    )
    client.expect(202, "DELETE", f"/v1/snapshots/{snapshot_id}")

    # Failures, each as the API answers them.
    client.expect(409, "DELETE", f"/v1/snapshots/{snapshot_id}")
    client.expect(
        400, "PUT", policy_path(server.id), {"schedules": [{"spec": "x"}]}
    )
    client.expect(
        415,
        "PUT",
        policy_path(server.id),
        body=b"{}",
        content_type="text/plain",
    )
    client.expect(
        413,
        "PUT",
        default_path(fakes.DEMO),
        body=b" " * 70000,
    )
    client.expect(401, "GET", "/v1/snapshots", who=fakes.ANONYMOUS)
    client.expect(403, "DELETE", policy_path(server.id), who=fakes.READER)
    client.expect(404, "GET", f"/v1/operations/{fakes.UNKNOWN_ID}")
    client.expect(400, "GET", "/v1/snapshots?limit=0")
    stale = {
        "who": fakes.ADMIN,
        "headers": {microversion.HEADER: "snapmanager 1.2"},
    }
    client.expect(200, "GET", "/v1/stale-servers?grace=0&limit=1", **stale)
    client.expect(400, "GET", "/v1/stale-servers?grace=1h", **stale)
    client.expect(404, "GET", "/v1/stale-servers", who=fakes.ADMIN)
    quotas = {"headers": {microversion.HEADER: "snapmanager 1.1"}}
    quota_path = f"/v1/quota-sets/{fakes.DEMO}"
    client.expect(200, "GET", quota_path, **quotas)
    client.expect(
        200,
        "PUT",
        quota_path,
        json_body={"quota_set": {"snapshots": 5}},
        who=fakes.ADMIN,
        **quotas,
    )
    client.expect(403, "PUT", quota_path, json_body={}, **quotas)
    client.expect(204, "DELETE", quota_path, who=fakes.ADMIN, **quotas)
    client.expect(404, "GET", quota_path)
    for status, version in ((406, "snapmanager 9.0"), (400, "snapmanager 9")):
        client.expect(
            status,
            "GET",
            "/v1/snapshots",
            headers={microversion.HEADER: version},
        )
    nova.unavailable = True
    client.expect(503, "GET", f"/v1/servers/{server.id}/snapshots")
    nova.unavailable = False

    client.expect(204, "DELETE", policy_path(server.id))
    client.expect(204, "DELETE", default_path(fakes.DEMO))
    client.expect(404, "GET", default_path(fakes.DEMO))


def _template_of(method, path):
    path = path.split("?")[0]
    for route_method, template, *_ in ROUTES:
        if route_method == method and router.compile_template(template).match(
            path
        ):
            return template
    raise AssertionError(f"no route for {method} {path}")


def test_responses_match_the_document(api, nova, ctx, document, registry):
    client = RecordingClient(api)
    _walk(client, nova, ctx)
    succeeded = set()
    for method, path, sent, resp in client.exchanges:
        template = _template_of(method, path)
        what = f"{method} {path} -> {resp.status_int}"
        operation = _operation(document, method, template)
        documented = operation["responses"]
        assert str(resp.status_int) in documented, f"{what}: undocumented"
        response = _resolve(document, documented[str(resp.status_int)])
        if resp.status_int < 300:
            succeeded.add((method, template))
            if sent is not None:
                body = _resolve(document, operation["requestBody"])
                _validate(
                    registry,
                    body["content"]["application/json"]["schema"],
                    sent,
                    f"{what} request",
                )
        for header in response.get("headers", {}):
            assert header in resp.headers, f"{what}: no {header} header"
        content = response.get("content")
        if not content or method == "HEAD":
            assert resp.body == b"", f"{what}: unexpected body"
            continue
        assert resp.content_type in content, f"{what}: {resp.content_type}"
        if resp.content_type == "application/json":
            _validate(
                registry,
                content["application/json"]["schema"],
                json.loads(resp.body),
                what,
            )
    assert succeeded == {(method, path) for method, path, *_ in ROUTES}
