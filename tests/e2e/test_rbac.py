"""Who may do what: every endpoint of the API x every kind of caller.

Real Keystone tokens against the running snapmanager-api, on one demo
server that has a snapshot policy, a snapshot and an operation, in a
project that has a default policy. The expectations are the documented
ones (doc/source/api.rst, "Authentication and authorization"):

- a project's reader may read, its member may also change, an admin may
  do anything in any project;
- a server, snapshot or operation of another project is 404, as if it
  did not exist; a project's default named by another project is 403;
- a reader changing something is 403;
- no token is 401 (except `/` and `/healthcheck`, which need none);
- a project's quota set is seen by its readers and changed by an admin
  only, the stale servers are an admin's question (doc/source/quotas.rst,
  doc/source/freshness.rst).

Lists answer 200 to everyone with a token; what matters there is what
they show, which is checked too. A refused change must leave everything
as it was; a change that succeeds and uses its target up (a delete, a
restore) gets a target of its own. The routes later microversions
added are asked for at their version (below it they are 404).
"""

import dataclasses

import pytest

from snapmanager_nova.api import router
from snapmanager_nova.db import api as db_api
from tests.fixtures.services import wait_until

READER = "demo-reader"
MEMBER = "demo"
OTHER = "other"
ADMIN = "admin"
NO_TOKEN = None
CALLERS = (READER, MEMBER, OTHER, ADMIN, NO_TOKEN)

POLICY = {
    # Disabled: the clock must not take snapshots while the matrix
    # compares before and after.
    "schedules": [
        {
            "spec": "daily@03:00",
            "timezone": "Europe/Berlin",
            "retention": {"keep_count": 7},
            "enabled": False,
        }
    ],
    "keep_after_delete": False,
}
DEFAULT_POLICY = {
    "schedules": [{"spec": "weekly@sun@04:00", "enabled": False}]
}
SNAPSHOT_BODY = {"quiesce": "skip"}
RESTORE_BODY = {"restore": {}}
QUOTA_BODY = {"quota_set": {"snapshots": 500}}
WAIT = 180


def expect(reader, member, other, admin, no_token=401):
    answers = (reader, member, other, admin, no_token)
    return dict(zip(CALLERS, answers, strict=True))


PUBLIC = expect(200, 200, 200, 200, 200)
READ = expect(200, 200, 404, 200)
CHANGE = expect(403, 200, 404, 200)
LIST = expect(200, 200, 200, 200)
ADMIN_ONLY = expect(403, 403, 403, 200)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One path and method of the API, and who gets what from it.

    `route` is the router's template (the test checks the table covers
    every route); `path` is filled from the World. `lists` names the
    collection of a list answer, the id field in it and the World's
    resource that `visible_to` see in it (and nobody else does).
    `uses_up` is the kind of target a successful call consumes.
    `version` is the microversion the call asks for (the route's own),
    None for none (the base version).
    """

    method: str
    route: str
    expect: dict
    path: str = None
    body: dict = None
    lists: tuple = None
    visible_to: tuple = ()
    uses_up: str = None
    version: str = None

    @property
    def headers(self):
        if self.version is None:
            return None
        return version_header(self.version)

    @property
    def changes(self):
        return self.method not in ("GET", "HEAD")

    def __str__(self):
        text = "%s %s" % (self.method, self.path or self.route)
        if self.route == OPERATION_ACTION:
            text += " %s of a %s" % (
                next(iter(self.body)),
                self.uses_up or "snapshot operation",
            )
        return text


def version_header(version):
    return {"OpenStack-API-Version": "snapmanager %s" % version}


SERVER_POLICY = "/v1/servers/{server_id}/snapshot-policy"
PROJECT_DEFAULT = "/v1/projects/{project_id}/default-snapshot-policy"
SERVER_SNAPSHOTS = "/v1/servers/{server_id}/snapshots"
SNAPSHOT = "/v1/snapshots/{snapshot_id}"
OPERATION = "/v1/operations/{operation_id}"
OPERATION_ACTION = OPERATION + "/action"
QUOTA_SET = "/v1/quota-sets/{project_id}"
QUOTA_VERSION = "1.1"
STALE_VERSION = "1.2"
ACTION_VERSION = "1.3"

ENDPOINTS = [
    Endpoint("GET", "/", PUBLIC),
    Endpoint("GET", "/healthcheck", PUBLIC),
    Endpoint("HEAD", "/healthcheck", expect(204, 204, 204, 204, 204)),
    Endpoint("GET", SERVER_POLICY, READ),
    Endpoint("PUT", SERVER_POLICY, CHANGE, body=POLICY),
    Endpoint("DELETE", SERVER_POLICY, expect(403, 204, 404, 204)),
    Endpoint(
        "GET",
        "/v1/snapshot-policies",
        LIST,
        lists=("snapshot_policies", "server_id", "server_id"),
        visible_to=(READER, MEMBER),
    ),
    Endpoint(
        "GET",
        "/v1/snapshot-policies",
        expect(403, 403, 403, 200),
        path="/v1/snapshot-policies?all_projects=1",
        lists=("snapshot_policies", "server_id", "server_id"),
        visible_to=(ADMIN,),
    ),
    Endpoint("GET", PROJECT_DEFAULT, expect(200, 200, 403, 200)),
    Endpoint(
        "PUT", PROJECT_DEFAULT, expect(403, 200, 403, 200), body=DEFAULT_POLICY
    ),
    Endpoint("DELETE", PROJECT_DEFAULT, expect(403, 204, 403, 204)),
    Endpoint(
        "GET",
        "/v1/snapshots",
        LIST,
        lists=("snapshots", "id", "snapshot_id"),
        visible_to=(READER, MEMBER),
    ),
    Endpoint(
        "GET",
        "/v1/snapshots",
        READ,
        path="/v1/snapshots?server_id={server_id}",
        lists=("snapshots", "id", "snapshot_id"),
        visible_to=(READER, MEMBER, ADMIN),
    ),
    Endpoint(
        "GET",
        SERVER_SNAPSHOTS,
        READ,
        lists=("snapshots", "id", "snapshot_id"),
        visible_to=(READER, MEMBER, ADMIN),
    ),
    Endpoint(
        "POST",
        SERVER_SNAPSHOTS,
        expect(403, 202, 404, 202),
        body=SNAPSHOT_BODY,
    ),
    Endpoint("GET", SNAPSHOT, READ),
    Endpoint(
        "DELETE", SNAPSHOT, expect(403, 202, 404, 202), uses_up="snapshot"
    ),
    Endpoint(
        "POST",
        SNAPSHOT + "/action",
        expect(403, 202, 404, 202),
        body=RESTORE_BODY,
        uses_up="server",
    ),
    Endpoint("GET", OPERATION, READ),
    # On a failed restore that holds its own server (see
    # World.failed_restore): a member or an admin takes it over.
    Endpoint(
        "POST",
        OPERATION_ACTION,
        expect(403, 202, 404, 202),
        body={"retry": {}},
        uses_up="failed restore",
        version=ACTION_VERSION,
    ),
    Endpoint(
        "POST",
        OPERATION_ACTION,
        expect(403, 202, 404, 202),
        body={"abandon": {}},
        uses_up="failed restore",
        version=ACTION_VERSION,
    ),
    # The World's operation is a snapshot taken now, not a failed
    # restore: those allowed to act on it get 409, and nothing changes.
    Endpoint(
        "POST",
        OPERATION_ACTION,
        expect(403, 409, 404, 409),
        body={"retry": {}},
        version=ACTION_VERSION,
    ),
    # No policy of the World's is stale (their schedules are disabled):
    # what matters is who may ask.
    Endpoint("GET", "/v1/stale-servers", ADMIN_ONLY, version=STALE_VERSION),
    # As Nova's os-quota-sets; the project is named in the path, so
    # another project's member is 403 (as for project defaults).
    Endpoint(
        "GET", QUOTA_SET, expect(200, 200, 403, 200), version=QUOTA_VERSION
    ),
    Endpoint(
        "PUT", QUOTA_SET, ADMIN_ONLY, body=QUOTA_BODY, version=QUOTA_VERSION
    ),
    # On a project with an override (World.target puts one), so that a
    # refused DELETE is seen to keep it and a successful one to drop it.
    Endpoint(
        "DELETE",
        QUOTA_SET,
        expect(403, 403, 403, 204),
        version=QUOTA_VERSION,
    ),
]


class World:
    """The demo project's resources the matrix is run on."""

    def __init__(self, cloud):
        self.cloud = cloud
        self.project_id = cloud.minicloud.projects["demo"]
        self.server_id = cloud.create_server(MEMBER, "rbac").id
        self.ok(MEMBER, "PUT", self._policy_path(self.server_id), POLICY)
        self.ok(MEMBER, "PUT", self._default_path(), DEFAULT_POLICY)
        self.snapshot_id, self.operation_id = self.take_snapshot(
            self.server_id
        )
        # Made when a call first needs them (see failed_restore).
        self.held_server_id = None
        self.held_snapshot_id = None
        self.failed_restore_id = None

    def close(self):
        # The default policy would apply to every later test's servers,
        # an override of the quotas to every later test's snapshots.
        response = self.cloud.request(ADMIN, "DELETE", self._default_path())
        assert response.status_code in (204, 404), response.text
        response = self.cloud.request(
            ADMIN,
            "DELETE",
            self._quota_path(),
            headers=version_header(QUOTA_VERSION),
        )
        assert response.status_code == 204, response.text

    def _policy_path(self, server_id):
        return SERVER_POLICY.format(server_id=server_id)

    def _default_path(self):
        return PROJECT_DEFAULT.format(project_id=self.project_id)

    def _quota_path(self):
        return QUOTA_SET.format(project_id=self.project_id)

    def ok(self, user, method, path, body=None, version=None):
        headers = version_header(version) if version else None
        response = self.cloud.request(
            user, method, path, json=body, headers=headers
        )
        assert response.status_code < 300, "%s %s as %s: %s %s" % (
            method,
            path,
            user,
            response.status_code,
            response.text,
        )
        return response.json() if response.content else None

    def snapshot(self, snapshot_id):
        return self.ok(ADMIN, "GET", "/v1/snapshots/%s" % snapshot_id)[
            "snapshot"
        ]

    def wait_snapshot(self, snapshot_id, status):
        def reached():
            snapshot = self.snapshot(snapshot_id)
            if snapshot["status"] == "error" and status != "error":
                pytest.fail(
                    "snapshot %s failed: %s\n%s"
                    % (snapshot_id, snapshot["error"], self.cloud.log_tails()),
                    pytrace=False,
                )
            return snapshot["status"] == status

        wait_until(
            reached,
            timeout=WAIT,
            interval=0.3,
            what="snapshot %s %s" % (snapshot_id, status),
        )

    def take_snapshot(self, server_id):
        """An available snapshot of the server, and its operation."""
        answer = self.ok(
            MEMBER,
            "POST",
            SERVER_SNAPSHOTS.format(server_id=server_id),
            SNAPSHOT_BODY,
        )
        self.wait_snapshot(answer["snapshot"]["id"], "available")
        return answer["snapshot"]["id"], answer["operation"]["id"]

    def quota_limits(self):
        quota_set = self.ok(
            ADMIN, "GET", self._quota_path(), version=QUOTA_VERSION
        )["quota_set"]
        # What the project uses is no business of the matrix.
        return {
            name: value["limit"]
            for name, value in quota_set.items()
            if isinstance(value, dict)
        }

    def quota_defaults(self):
        quota_set = self.ok(
            ADMIN, "GET", self._quota_path(), version=QUOTA_VERSION
        )["quota_set"]
        return {
            name: value["default"]
            for name, value in quota_set.items()
            if isinstance(value, dict)
        }

    def wait_operation(self, operation_id, state):
        def reached():
            operation = self.ok(
                ADMIN, "GET", OPERATION.format(operation_id=operation_id)
            )["operation"]
            if operation["state"] == "failed" and state != "failed":
                pytest.fail(
                    "operation %s failed: %s\n%s"
                    % (
                        operation_id,
                        operation["error"],
                        self.cloud.log_tails(),
                    ),
                    pytrace=False,
                )
            return operation["state"] == state

        wait_until(
            reached,
            timeout=WAIT,
            interval=0.3,
            what="operation %s %s" % (operation_id, state),
        )

    def failed_restore(self):
        """A failed restore that still holds its server: the one target
        a retry or an abandonment accepts.

        The server is a second one of the demo project's, so that its
        hold keeps no other call of the matrix from the World's server;
        the snapshot is a real one of it. The failure is recorded in the
        database rather than provoked (a real one needs a broken agent or
        Nova): the restore is created and failed in one transaction, so
        no conductor ever claims it. Unlike after a real failure, the
        server is running and not locked, which a retry (Nova can stop
        and start it) and an abandonment (no lock of ours to lift) both
        take as it is; the conductor does their work for real.
        """
        if self.failed_restore_id is not None:
            return self.failed_restore_id
        if self.held_server_id is None:
            self.held_server_id = self.cloud.create_server(
                MEMBER, "rbac-held"
            ).id
            self.held_snapshot_id = self.take_snapshot(self.held_server_id)[0]
        with self.cloud.database() as ctx:
            with db_api.context_manager.writer.using(ctx):
                operation = db_api.operation_create(
                    ctx,
                    {
                        "type": "restore",
                        "instance_uuid": self.held_server_id,
                        "snapshot_id": self.held_snapshot_id,
                    },
                )
                assert db_api.operation_update_step(
                    ctx,
                    operation.id,
                    None,
                    {"state": "failed", "error": "e2e: failed on purpose"},
                )
        self.failed_restore_id = operation.id
        return operation.id

    def target(self, endpoint, caller):
        """The IDs to fill the endpoint's path with for this call."""
        ids = {
            "server_id": self.server_id,
            "project_id": self.project_id,
            "snapshot_id": self.snapshot_id,
            "operation_id": self.operation_id,
        }
        if endpoint.expect[caller] < 300 and endpoint.uses_up == "snapshot":
            ids["snapshot_id"] = self.take_snapshot(self.server_id)[0]
        elif endpoint.expect[caller] < 300 and endpoint.uses_up == "server":
            server_id = self.cloud.create_server(MEMBER, "rbac-restore").id
            ids["snapshot_id"] = self.take_snapshot(server_id)[0]
        elif endpoint.uses_up == "failed restore":
            ids["operation_id"] = self.failed_restore()
        if endpoint.route == QUOTA_SET and endpoint.method == "DELETE":
            if self.quota_limits() == self.quota_defaults():
                self.ok(
                    ADMIN,
                    "PUT",
                    self._quota_path(),
                    QUOTA_BODY,
                    version=QUOTA_VERSION,
                )
        return ids

    def state(self):
        """What a refused change must leave as it was."""
        policy = self.ok(ADMIN, "GET", self._policy_path(self.server_id))
        default = self.ok(ADMIN, "GET", self._default_path())
        snapshots = self.ok(
            ADMIN, "GET", SERVER_SNAPSHOTS.format(server_id=self.server_id)
        )["snapshots"]
        with self.cloud.database() as ctx:
            operations = sorted(
                op.id
                for op in db_api.operation_list(
                    ctx, instance_uuid=self.server_id
                )
            )
            held = (
                sorted(
                    (op.id, op.type, op.state, op.held_instance_uuid)
                    for op in db_api.operation_list(
                        ctx, instance_uuid=self.held_server_id
                    )
                )
                if self.held_server_id
                else None
            )
        return {
            "policy": policy,
            "default": default,
            "snapshots": {s["id"]: s["status"] for s in snapshots},
            "operations": operations,
            "held server's operations": held,
            "quotas": self.quota_limits(),
        }

    def settle(self, endpoint, answer):
        """Put back what a successful change took away, and wait for the
        work it started, so that the next call finds the World as before.
        """
        if endpoint.route == SERVER_POLICY and endpoint.method == "DELETE":
            self.ok(MEMBER, "PUT", self._policy_path(self.server_id), POLICY)
        elif endpoint.route == PROJECT_DEFAULT and endpoint.method == "DELETE":
            self.ok(MEMBER, "PUT", self._default_path(), DEFAULT_POLICY)
        elif endpoint.route == SERVER_SNAPSHOTS and endpoint.method == "POST":
            self.wait_snapshot(answer["snapshot"]["id"], "available")
        elif endpoint.route == SNAPSHOT and endpoint.method == "DELETE":
            self.wait_snapshot(answer["snapshot"]["id"], "deleted")
        elif endpoint.uses_up == "failed restore":
            # The new operation holds the server until it succeeds; the
            # next call gets a failed restore of its own.
            self.wait_operation(answer["operation"]["id"], "succeeded")
            self.failed_restore_id = None
        elif endpoint.route == QUOTA_SET and endpoint.method == "PUT":
            assert (
                answer["quota_set"]["snapshots"]["limit"]
                == (QUOTA_BODY["quota_set"]["snapshots"])
            )
            self.ok(ADMIN, "DELETE", self._quota_path(), version=QUOTA_VERSION)
            assert self.quota_limits() == self.quota_defaults()
        elif endpoint.route == QUOTA_SET and endpoint.method == "DELETE":
            assert self.quota_limits() == self.quota_defaults()


@pytest.fixture(scope="module")
def world(snapmanager_cloud):
    world = World(snapmanager_cloud)
    yield world
    world.close()


def test_the_matrix_covers_every_route():
    routes = {
        (method, template)
        for method, template, *_ in router.PUBLIC_ROUTES + router.V1_ROUTES
    }
    covered = {(endpoint.method, endpoint.route) for endpoint in ENDPOINTS}
    assert covered == routes
    for endpoint in ENDPOINTS:
        assert set(endpoint.expect) == set(CALLERS), endpoint


@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: c or "no-token")
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_rbac(world, endpoint, caller):
    ids = world.target(endpoint, caller)
    path = (endpoint.path or endpoint.route).format(**ids)
    before = world.state() if endpoint.changes else None

    response = world.cloud.request(
        caller,
        endpoint.method,
        path,
        json=endpoint.body,
        headers=endpoint.headers,
    )

    expected = endpoint.expect[caller]
    assert response.status_code == expected, "%s %s as %s: %s" % (
        endpoint.method,
        path,
        caller or "no token",
        response.text,
    )
    if expected >= 400:
        assert response.json()["error"]["code"] == expected
        if endpoint.changes:
            assert world.state() == before
        return
    if endpoint.lists:
        collection, field, resource = endpoint.lists
        shown = {item[field] for item in response.json()[collection]}
        assert (ids[resource] in shown) == (caller in endpoint.visible_to)
    if endpoint.changes:
        answer = response.json() if response.content else None
        world.settle(endpoint, answer)
