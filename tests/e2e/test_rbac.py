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
- no token is 401 (except `/` and `/healthcheck`, which need none).

Lists answer 200 to everyone with a token; what matters there is what
they show, which is checked too. A refused change must leave everything
as it was; a change that succeeds and uses its target up (a delete, a
restore) gets a target of its own.
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
WAIT = 180


def expect(reader, member, other, admin, no_token=401):
    answers = (reader, member, other, admin, no_token)
    return dict(zip(CALLERS, answers, strict=True))


PUBLIC = expect(200, 200, 200, 200, 200)
READ = expect(200, 200, 404, 200)
CHANGE = expect(403, 200, 404, 200)
LIST = expect(200, 200, 200, 200)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One path and method of the API, and who gets what from it.

    `route` is the router's template (the test checks the table covers
    every route); `path` is filled from the World. `lists` names the
    collection of a list answer, the id field in it and the World's
    resource that `visible_to` see in it (and nobody else does).
    `uses_up` is the kind of target a successful call consumes.
    """

    method: str
    route: str
    expect: dict
    path: str = None
    body: dict = None
    lists: tuple = None
    visible_to: tuple = ()
    uses_up: str = None

    @property
    def changes(self):
        return self.method not in ("GET", "HEAD")

    def __str__(self):
        return "%s %s" % (self.method, self.path or self.route)


SERVER_POLICY = "/v1/servers/{server_id}/snapshot-policy"
PROJECT_DEFAULT = "/v1/projects/{project_id}/default-snapshot-policy"
SERVER_SNAPSHOTS = "/v1/servers/{server_id}/snapshots"
SNAPSHOT = "/v1/snapshots/{snapshot_id}"

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
    Endpoint("GET", "/v1/operations/{operation_id}", READ),
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

    def close(self):
        # The default policy would apply to every later test's servers.
        response = self.cloud.request(ADMIN, "DELETE", self._default_path())
        assert response.status_code in (204, 404), response.text

    def _policy_path(self, server_id):
        return SERVER_POLICY.format(server_id=server_id)

    def _default_path(self):
        return PROJECT_DEFAULT.format(project_id=self.project_id)

    def ok(self, user, method, path, body=None):
        response = self.cloud.request(user, method, path, json=body)
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
        return {
            "policy": policy,
            "default": default,
            "snapshots": {s["id"]: s["status"] for s in snapshots},
            "operations": operations,
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
        caller, endpoint.method, path, json=endpoint.body
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
