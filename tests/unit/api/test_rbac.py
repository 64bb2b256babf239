"""Who may do what: every endpoint against every kind of caller.

The resources belong to project ``demo``. A caller outside it gets 404
for a server, snapshot or operation, exactly as if it did not exist; a
caller inside it without the needed role gets 403; a request without an
identity gets 401.
"""

import pytest
from oslo_policy import opts as policy_opts

from snapmanager_nova import context as sm_context
from snapmanager_nova import exception
from snapmanager_nova import policy
from snapmanager_nova.api import authz
from snapmanager_nova.db import api as db_api
from tests.unit.api import fakes
from tests.unit.api.conftest import ApiClient
from tests.unit.api.helpers import default_path
from tests.unit.api.helpers import policy_path
from tests.unit.api.helpers import record_snapshot

OK = "ok"

CALLERS = {
    "demo reader": fakes.READER,
    "demo member": fakes.MEMBER,
    "other member": fakes.OTHER_MEMBER,
    "admin": fakes.ADMIN,
    "demo, no roles": fakes.NO_ROLES,
    "no identity": fakes.ANONYMOUS,
}

SERVER_READ = {
    "demo reader": OK,
    "demo member": OK,
    "other member": 404,
    "admin": OK,
    "demo, no roles": 403,
    "no identity": 401,
}
SERVER_WRITE = dict(SERVER_READ, **{"demo reader": 403})
# Listings of the caller's own project: anyone with a role may list what
# their project has (another project's member sees their own, none of
# demo's).
PROJECT_LIST = dict(SERVER_READ, **{"other member": OK})
ADMIN_ONLY = {
    "demo reader": 403,
    "demo member": 403,
    "other member": 403,
    "admin": OK,
    "demo, no roles": 403,
    "no identity": 401,
}
# The project is named in the path: refusing it says nothing new, so 403.
DEFAULT_READ = dict(SERVER_READ, **{"other member": 403})
DEFAULT_WRITE = dict(SERVER_WRITE, **{"other member": 403})

POLICY_BODY = {"schedules": [{"spec": "daily@03:00"}]}

# (method, path, body, expectations, success status, policy rule)
ENDPOINTS = {
    "show policy": (
        "GET",
        "/v1/servers/{server}/snapshot-policy",
        None,
        SERVER_READ,
        200,
        "snapmanager:snapshot_policy:show",
    ),
    "set policy": (
        "PUT",
        "/v1/servers/{server}/snapshot-policy",
        POLICY_BODY,
        SERVER_WRITE,
        200,
        "snapmanager:snapshot_policy:set",
    ),
    "unset policy": (
        "DELETE",
        "/v1/servers/{server}/snapshot-policy",
        None,
        SERVER_WRITE,
        204,
        "snapmanager:snapshot_policy:unset",
    ),
    "list policies": (
        "GET",
        "/v1/snapshot-policies",
        None,
        PROJECT_LIST,
        200,
        "snapmanager:snapshot_policy:list",
    ),
    "list all projects' policies": (
        "GET",
        "/v1/snapshot-policies?all_projects=1",
        None,
        ADMIN_ONLY,
        200,
        "snapmanager:snapshot_policy:list:all_projects",
    ),
    "show project default": (
        "GET",
        "/v1/projects/demo/default-snapshot-policy",
        None,
        DEFAULT_READ,
        200,
        "snapmanager:snapshot_policy:show",
    ),
    "set project default": (
        "PUT",
        "/v1/projects/demo/default-snapshot-policy",
        POLICY_BODY,
        DEFAULT_WRITE,
        200,
        "snapmanager:snapshot_policy:set",
    ),
    "unset project default": (
        "DELETE",
        "/v1/projects/demo/default-snapshot-policy",
        None,
        DEFAULT_WRITE,
        204,
        "snapmanager:snapshot_policy:unset",
    ),
    "list snapshots": (
        "GET",
        "/v1/snapshots",
        None,
        PROJECT_LIST,
        200,
        "snapmanager:snapshot:list",
    ),
    "list snapshots by server_id": (
        "GET",
        "/v1/snapshots?server_id={server}",
        None,
        SERVER_READ,
        200,
        "snapmanager:snapshot:list",
    ),
    "list server's snapshots": (
        "GET",
        "/v1/servers/{server}/snapshots",
        None,
        SERVER_READ,
        200,
        "snapmanager:snapshot:list",
    ),
    "take snapshot": (
        "POST",
        "/v1/servers/{server}/snapshots",
        {},
        SERVER_WRITE,
        202,
        "snapmanager:snapshot:create",
    ),
    "show snapshot": (
        "GET",
        "/v1/snapshots/{snapshot}",
        None,
        SERVER_READ,
        200,
        "snapmanager:snapshot:show",
    ),
    "delete snapshot": (
        "DELETE",
        "/v1/snapshots/{snapshot}",
        None,
        SERVER_WRITE,
        202,
        "snapmanager:snapshot:delete",
    ),
    "restore snapshot": (
        "POST",
        "/v1/snapshots/{snapshot}/action",
        {"restore": {}},
        SERVER_WRITE,
        202,
        "snapmanager:snapshot:restore",
    ),
    "show operation": (
        "GET",
        "/v1/operations/{operation}",
        None,
        SERVER_READ,
        200,
        "snapmanager:operation:show",
    ),
    "retry failed restore": (
        "POST",
        "/v1/operations/{failed_restore}/action",
        {"retry": {}},
        SERVER_WRITE,
        202,
        "snapmanager:operation:retry",
    ),
    "abandon failed restore": (
        "POST",
        "/v1/operations/{failed_restore}/action",
        {"abandon": {}},
        SERVER_WRITE,
        202,
        "snapmanager:operation:abandon",
    ),
    "list stale servers": (
        "GET",
        "/v1/stale-servers",
        None,
        ADMIN_ONLY,
        200,
        "snapmanager:stale_server:list",
    ),
    # As Nova's os-quota-sets: the project's readers see, admins change.
    "show quotas": (
        "GET",
        "/v1/quota-sets/demo",
        None,
        DEFAULT_READ,
        200,
        "snapmanager:quota_set:show",
    ),
    "set quotas": (
        "PUT",
        "/v1/quota-sets/demo",
        {"quota_set": {"snapshots": 5}},
        ADMIN_ONLY,
        200,
        "snapmanager:quota_set:update",
    ),
    "drop quotas": (
        "DELETE",
        "/v1/quota-sets/demo",
        None,
        ADMIN_ONLY,
        204,
        "snapmanager:quota_set:delete",
    ),
}


class LatestClient(ApiClient):
    """Every request at the newest microversion, so that the matrix
    covers the routes later versions added (they are 404 before)."""

    def request(self, *args, headers=None, **kwargs):
        headers = {
            "OpenStack-API-Version": "snapmanager latest",
            **(headers or {}),
        }
        return super().request(*args, headers=headers, **kwargs)


@pytest.fixture
def api(application):
    return LatestClient(application)


@pytest.fixture
def demo(api, nova, ctx):
    """A demo server with a policy, a snapshot, an operation, a default."""
    server = nova.add(project_id=fakes.DEMO)
    assert api.put(policy_path(server.id), POLICY_BODY).status_int == 200
    assert api.put(default_path(fakes.DEMO), POLICY_BODY).status_int == 200
    snapshot = record_snapshot(ctx, server)
    operation = db_api.operation_create(
        ctx,
        {"type": "snapshot", "instance_uuid": server.id},
    )
    # A second server, held by its failed restore (a held server takes
    # no other restore or snapshot).
    held = nova.add(project_id=fakes.DEMO)
    failed_restore = db_api.operation_create(
        ctx,
        {
            "type": "restore",
            "instance_uuid": held.id,
            "snapshot_id": record_snapshot(ctx, held).id,
        },
    )
    db_api.operation_update_step(
        ctx, failed_restore.id, None, {"state": "failed", "error": "x"}
    )
    return {
        "server": server.id,
        "snapshot": snapshot.id,
        "operation": operation.id,
        "failed_restore": failed_restore.id,
    }


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_matrix(api, demo, compute, unchanged, endpoint, caller):
    method, path, body, expectations, success, _ = ENDPOINTS[endpoint]
    expected = expectations[caller]
    path = path.format(**demo)
    if expected == OK:
        resp = api.request(method, path, who=CALLERS[caller], json_body=body)
        assert resp.status_int == success, resp.text
        return
    with unchanged():
        resp = api.request(method, path, who=CALLERS[caller], json_body=body)
    assert resp.status_int == expected, resp.text
    assert resp.json["error"]["code"] == expected
    assert compute.casts == []
    if expected == 404:
        # Word for word what a resource that does not exist gets.
        unknown = api.request(
            method,
            path.replace(demo["server"], fakes.UNKNOWN_ID)
            .replace(demo["snapshot"], fakes.UNKNOWN_ID)
            .replace(demo["operation"], fakes.UNKNOWN_ID)
            .replace(demo["failed_restore"], fakes.UNKNOWN_ID),
            who=CALLERS[caller],
            json_body=body,
        )
        assert unknown.status_int == 404
        assert resp.json["error"]["message"] == unknown.json["error"][
            "message"
        ].replace(fakes.UNKNOWN_ID, _id_in(path, demo))


def _id_in(path, ids):
    return next(value for value in ids.values() if value in path)


def test_other_project_lists_none_of_demos(api, demo):
    for path in ("/v1/snapshots", "/v1/snapshot-policies"):
        resp = api.get(path, who=fakes.OTHER_MEMBER)
        (items,) = [v for k, v in resp.json.items() if not k.endswith("links")]
        assert items == []


@pytest.fixture
def policy_file(conf, tmp_path):
    path = tmp_path / "policy.yaml"
    policy_opts.set_defaults(conf.conf)
    conf.config(policy_file=str(path), group="oslo_policy")
    policy.reset()
    return path


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_endpoint_enforces_its_rule(api, demo, policy_file, endpoint):
    """Denying exactly the documented rule refuses even an admin."""
    method, path, body, _, success, rule = ENDPOINTS[endpoint]
    policy_file.write_text(f'"{rule}": "!"\n')
    resp = api.request(
        method, path.format(**demo), who=fakes.ADMIN, json_body=body
    )
    assert resp.status_int in (403, 404), resp.text
    policy_file.write_text("{}\n")
    policy.reset()
    resp = api.request(
        method, path.format(**demo), who=fakes.ADMIN, json_body=body
    )
    assert resp.status_int == success, resp.text


def test_token_without_project_is_403(conf):
    # A domain- or system-scoped token reaches no project's resources.
    context = sm_context.RequestContext(user_id="u", roles=["admin"])
    with pytest.raises(exception.Forbidden) as caught:
        authz.authorize(context, "snapmanager:snapshot:list", fakes.DEMO)
    assert caught.value.code == 403
