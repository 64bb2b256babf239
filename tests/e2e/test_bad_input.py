"""Bad input, end to end: refused with a 4xx that says what is wrong, and
nothing written.

Through the running snapmanager-api with real Keystone tokens, as the
tenant demo: invalid specs, timezones and retention values, unknown
fields, bodies that are too large or not JSON, bad query parameters, and
servers of another project or of no project. Every refusal must name the
field (and quote the value where there is one), and leave the API's view
and the database's rows of the servers involved exactly as they were.
"""

import concurrent.futures
import dataclasses
import json
import uuid

import pytest

from snapmanager_nova import exception
from snapmanager_nova.db import api as db_api
from tests.fixtures.services import wait_until

USER = "demo"
POLICY = {
    "schedules": [
        {
            "spec": "daily@02:30",
            "timezone": "Europe/Berlin",
            "retention": {"keep_count": 7},
            # The clock must not write while the tests compare.
            "enabled": False,
        }
    ]
}
# Over the default [api] max_request_body_size (64 KiB).
OVERSIZE = 70 * 1024


@dataclasses.dataclass(frozen=True)
class Case:
    """A request and what the refusal must say.

    `target` is the server the request is about: `policy` (demo's server
    that has a policy), `bare` (demo's server that has none) or `foreign`
    (a server of the project other).
    """

    name: str
    method: str
    path: str
    body: object = None
    status: int = 400
    field: str = None
    value: str = None
    target: str = "policy"
    headers: dict = None
    raw: bool = False

    def __str__(self):
        return self.name


def schedule(**fields):
    return {"schedules": [dict({"spec": "daily@02:30"}, **fields)]}


def retention(**fields):
    return schedule(retention=fields)


POLICY_PATH = "/v1/servers/{server}/snapshot-policy"
SNAPSHOTS_PATH = "/v1/servers/{server}/snapshots"
DEFAULT_PATH = "/v1/projects/{project}/default-snapshot-policy"

BODY_CASES = [
    # Specs.
    Case(
        "hour out of range",
        "PUT",
        POLICY_PATH,
        schedule(spec="daily@25:00"),
        field="schedules[0].spec",
        value="25:00",
    ),
    Case(
        "unknown spec family",
        "PUT",
        POLICY_PATH,
        schedule(spec="hourly@5"),
        field="schedules[0].spec",
        value="hourly@5",
    ),
    Case(
        "cron minute out of range",
        "PUT",
        POLICY_PATH,
        schedule(spec="cron:61 * * * *"),
        field="schedules[0].spec",
        value="61",
    ),
    Case(
        "bad day list of a NetApp spec",
        "PUT",
        POLICY_PATH,
        schedule(spec="6@mon-funday@7,19"),
        field="schedules[0].spec",
        value="funday",
    ),
    Case(
        "spec longer than 255",
        "PUT",
        POLICY_PATH,
        schedule(spec="daily@" + "0" * 300),
        field="schedules[0].spec",
    ),
    Case(
        "the same schedule twice",
        "PUT",
        POLICY_PATH,
        {"schedules": [{"spec": "daily@02:30"}, {"spec": "daily@02:30"}]},
        field="schedules[1]",
        value="daily@02:30",
    ),
    # Timezones.
    Case(
        "unknown timezone",
        "PUT",
        POLICY_PATH,
        schedule(timezone="Mars/Olympus_Mons"),
        field="schedules[0].timezone",
        value="Mars/Olympus_Mons",
    ),
    Case(
        "timezone of the second schedule",
        "PUT",
        POLICY_PATH,
        {
            "schedules": [
                {"spec": "daily@02:30"},
                {"spec": "weekly@sun@03:00", "timezone": "Europe/Berlinn"},
            ]
        },
        field="schedules[1].timezone",
        value="Europe/Berlinn",
    ),
    Case(
        "timezone not a string",
        "PUT",
        POLICY_PATH,
        schedule(timezone=2),
        field="schedules[0].timezone",
        value="2",
    ),
    # Retention.
    Case(
        "keep_count zero",
        "PUT",
        POLICY_PATH,
        retention(keep_count=0),
        field="schedules[0].retention.keep_count",
        value="0",
    ),
    Case(
        "keep_count a word",
        "PUT",
        POLICY_PATH,
        retention(keep_count="seven"),
        field="schedules[0].retention.keep_count",
        value="seven",
    ),
    Case(
        "negative daily tier",
        "PUT",
        POLICY_PATH,
        retention(daily=-1),
        field="schedules[0].retention.daily",
        value="-1",
    ),
    Case(
        "max_age not a duration",
        "PUT",
        POLICY_PATH,
        retention(max_age="7 weeks"),
        field="schedules[0].retention.max_age",
        value="7 weeks",
    ),
    Case(
        "keep_count against a NetApp count",
        "PUT",
        POLICY_PATH,
        schedule(spec="6@mon-fri@7,19", retention={"keep_count": 3}),
        field="schedules[0].retention.keep_count",
        value="3",
    ),
    # Unknown and missing fields, wrong types.
    Case(
        "misspelt top-level field",
        "PUT",
        POLICY_PATH,
        dict(POLICY, keep_after_delet=True),
        field="keep_after_delet",
    ),
    Case(
        "unknown field of a schedule",
        "PUT",
        POLICY_PATH,
        schedule(interval="1h"),
        field="schedules[0].interval",
    ),
    Case(
        "unknown retention tier",
        "PUT",
        POLICY_PATH,
        retention(keep_forever=True),
        field="schedules[0].retention.keep_forever",
    ),
    Case(
        "no schedules",
        "PUT",
        POLICY_PATH,
        {"keep_after_delete": True},
        field="schedules",
    ),
    Case(
        "schedules not a list",
        "PUT",
        POLICY_PATH,
        {"schedules": "daily@02:30"},
        field="schedules",
        value="daily@02:30",
    ),
    Case(
        "more than 20 schedules",
        "PUT",
        POLICY_PATH,
        {"schedules": [{"spec": "daily@%02d:00" % h} for h in range(21)]},
        field="schedules",
    ),
    Case(
        "enabled not a boolean",
        "PUT",
        POLICY_PATH,
        schedule(enabled="yes"),
        field="schedules[0].enabled",
        value="yes",
    ),
    Case(
        "keep_after_delete not a boolean",
        "PUT",
        POLICY_PATH,
        dict(POLICY, keep_after_delete="no"),
        field="keep_after_delete",
        value="no",
    ),
    # Bodies that are no JSON object, or too large.
    Case(
        "body not JSON",
        "PUT",
        POLICY_PATH,
        b'{"schedules": [',
        field="body",
        raw=True,
    ),
    Case(
        "body a JSON list",
        "PUT",
        POLICY_PATH,
        [POLICY],
        field="body",
    ),
    Case("empty body", "PUT", POLICY_PATH, b"", field="body", raw=True),
    Case(
        "body not application/json",
        "PUT",
        POLICY_PATH,
        json.dumps(POLICY).encode(),
        status=415,
        headers={"Content-Type": "text/plain"},
        raw=True,
    ),
    Case(
        "oversize body",
        "PUT",
        POLICY_PATH,
        dict(POLICY, padding="x" * OVERSIZE),
        status=413,
    ),
    # The same checks on a server without a policy: nothing is created.
    Case(
        "bad spec for a server without a policy",
        "PUT",
        POLICY_PATH,
        schedule(spec="daily@24:00"),
        field="schedules[0].spec",
        value="24:00",
        target="bare",
    ),
    Case(
        "unknown field for a server without a policy",
        "PUT",
        POLICY_PATH,
        dict(POLICY, owner="demo"),
        field="owner",
        target="bare",
    ),
    Case(
        "oversize body for a server without a policy",
        "PUT",
        POLICY_PATH,
        dict(POLICY, padding="x" * OVERSIZE),
        status=413,
        target="bare",
    ),
    # Snapshots taken now, and restores.
    Case(
        "unknown quiesce mode",
        "POST",
        SNAPSHOTS_PATH,
        {"quiesce": "maybe"},
        field="quiesce",
        value="maybe",
    ),
    Case(
        "unknown field of a snapshot request",
        "POST",
        SNAPSHOTS_PATH,
        {"quiesce": "skip", "force": True},
        field="force",
    ),
    Case(
        "oversize snapshot request",
        "POST",
        SNAPSHOTS_PATH,
        {"quiesce": "skip", "note": "x" * OVERSIZE},
        status=413,
    ),
    Case(
        "unknown action",
        "POST",
        "/v1/snapshots/{snapshot}/action",
        {"rebuild": {}},
        field="rebuild",
    ),
    Case(
        "restore with an argument",
        "POST",
        "/v1/snapshots/{snapshot}/action",
        {"restore": {"snapshot_id": "latest"}},
        field="restore.snapshot_id",
    ),
    # The project's default policy.
    Case(
        "default policy without schedules",
        "PUT",
        DEFAULT_PATH,
        {"schedules": []},
        field="schedules",
    ),
    Case(
        "default policy with a bad timezone",
        "PUT",
        DEFAULT_PATH,
        schedule(timezone="UTC+2"),
        field="schedules[0].timezone",
        value="UTC+2",
    ),
    # Servers that are not the caller's.
    Case(
        "policy on another project's server",
        "PUT",
        POLICY_PATH,
        POLICY,
        status=404,
        target="foreign",
    ),
    Case(
        "snapshot of another project's server",
        "POST",
        SNAPSHOTS_PATH,
        {"quiesce": "skip"},
        status=404,
        target="foreign",
    ),
    Case(
        "policy removal on another project's server",
        "DELETE",
        POLICY_PATH,
        status=404,
        target="foreign",
    ),
    Case(
        "policy on a server that does not exist",
        "PUT",
        "/v1/servers/%s/snapshot-policy" % uuid.uuid4(),
        POLICY,
        status=404,
    ),
    Case(
        "policy on a server id that is no UUID",
        "PUT",
        "/v1/servers/not-a-server/snapshot-policy",
        POLICY,
        status=404,
    ),
]

QUERY_CASES = [
    Case("limit zero", "GET", "/v1/snapshots?limit=0", field="limit"),
    Case(
        "limit a word",
        "GET",
        "/v1/snapshots?limit=all",
        field="limit",
        value="all",
    ),
    Case(
        "marker no UUID",
        "GET",
        "/v1/snapshots?marker=last",
        field="marker",
        value="last",
    ),
    Case(
        "unknown status",
        "GET",
        "/v1/servers/{server}/snapshots?status=gone",
        field="status",
        value="gone",
    ),
    Case(
        "unknown query parameter",
        "GET",
        "/v1/snapshot-policies?colour=red",
        field="colour",
    ),
    Case(
        "query parameter twice",
        "GET",
        "/v1/snapshots?limit=1&limit=2",
        field="limit",
    ),
    Case(
        "all_projects not a boolean",
        "GET",
        "/v1/snapshot-policies?all_projects=maybe",
        field="all_projects",
        value="maybe",
    ),
    Case(
        "another project's server's snapshots",
        "GET",
        "/v1/snapshots?server_id={server}",
        status=404,
        target="foreign",
    ),
]


class Servers:
    """The servers the cases are about, and how to see what they have."""

    def __init__(self, cloud):
        self.cloud = cloud
        owners = {"policy": USER, "bare": USER, "foreign": "other"}
        with concurrent.futures.ThreadPoolExecutor(len(owners)) as pool:
            made = {
                key: pool.submit(cloud.create_server, user, "bad-input")
                for key, user in owners.items()
            }
        self.ids = {key: future.result().id for key, future in made.items()}
        self.project_id = cloud.minicloud.projects["demo"]
        self.request(
            USER, "PUT", POLICY_PATH.format(server=self.ids["policy"]), POLICY
        )
        answer = self.request(
            USER,
            "POST",
            SNAPSHOTS_PATH.format(server=self.ids["policy"]),
            {"quiesce": "skip"},
        )
        self.snapshot_id = answer["snapshot"]["id"]

    def request(self, user, method, path, body=None, ok=True):
        response = self.cloud.request(user, method, path, json=body)
        if ok:
            assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def path(self, case):
        return case.path.format(
            server=self.ids[case.target],
            snapshot=self.snapshot_id,
            project=self.project_id,
        )

    def seen(self, key):
        """The API's view (as admin) and the database's rows of a server."""
        server_id = self.ids[key]
        admin = self.cloud.request(
            "admin", "GET", POLICY_PATH.format(server=server_id)
        )
        snapshots = self.request(
            "admin", "GET", SNAPSHOTS_PATH.format(server=server_id)
        )["snapshots"]
        default = self.cloud.request(
            "admin", "GET", DEFAULT_PATH.format(project=self.project_id)
        )
        with self.cloud.database() as ctx:
            try:
                instance = db_api.instance_get(ctx, server_id)
            except exception.InstanceNotFound:
                instance = None
            rows = {
                # The conductor's Nova inventory may record any server;
                # what the API writes is whether it has snapshots on.
                "instance": instance
                and (
                    instance.snapshot_enabled,
                    instance.keep_after_delete,
                    instance.snapshot_index,
                ),
                "schedules": sorted(
                    (
                        row.id,
                        row.spec,
                        row.timezone,
                        row.enabled,
                        row.updated_at,
                    )
                    for row in db_api.schedule_list(
                        ctx, instance_uuid=server_id
                    )
                ),
                "snapshots": sorted(
                    (row.id, row.status)
                    for row in db_api.snapshot_list(
                        ctx, instance_uuid=server_id
                    )
                ),
                "operations": sorted(
                    row.id
                    for row in db_api.operation_list(
                        ctx, instance_uuid=server_id
                    )
                ),
            }
        return {
            "policy": (admin.status_code, admin.json()),
            "snapshots": {s["id"]: s["status"] for s in snapshots},
            "default": (default.status_code, default.json()),
            "rows": rows,
        }


@pytest.fixture(scope="module")
def servers(snapmanager_cloud):
    servers = Servers(snapmanager_cloud)
    # The snapshot taken above must be done before anything is compared.
    snapshot = servers.snapshot_id

    def available():
        shown = servers.request("admin", "GET", "/v1/snapshots/" + snapshot)
        assert shown["snapshot"]["status"] != "error", shown
        return shown["snapshot"]["status"] == "available"

    wait_until(available, timeout=180, interval=0.3, what="the snapshot")
    return servers


def send(cloud, case, path):
    headers = dict(case.headers or {})
    if case.raw:
        headers.setdefault("Content-Type", "application/json")
        return cloud.request(
            USER, case.method, path, data=case.body, headers=headers
        )
    return cloud.request(
        USER, case.method, path, json=case.body, headers=headers
    )


def check_refusal(case, response):
    assert response.status_code == case.status, response.text
    error = response.json()["error"]
    assert error["code"] == case.status
    message = error["message"]
    if case.field:
        assert message.startswith(case.field + ":"), message
    if case.value:
        assert case.value in message, message


@pytest.mark.parametrize("case", BODY_CASES, ids=str)
def test_refused_and_nothing_written(snapmanager_cloud, servers, case):
    before = servers.seen(case.target)

    response = send(snapmanager_cloud, case, servers.path(case))

    check_refusal(case, response)
    assert servers.seen(case.target) == before


@pytest.mark.parametrize("case", QUERY_CASES, ids=str)
def test_bad_query_is_refused(snapmanager_cloud, servers, case):
    response = send(snapmanager_cloud, case, servers.path(case))
    check_refusal(case, response)


def test_other_project_cannot_learn_the_server_exists(
    snapmanager_cloud, servers
):
    """Another project's server and one that does not exist get the same
    answer, apart from the id."""
    foreign = servers.ids["foreign"]
    missing = str(uuid.uuid4())
    answers = []
    for server_id in (foreign, missing):
        response = snapmanager_cloud.request(
            USER, "PUT", POLICY_PATH.format(server=server_id), json=POLICY
        )
        error = response.json()["error"]
        answers.append(
            (
                response.status_code,
                error["title"],
                error["message"].replace(server_id, "<id>"),
            )
        )
    assert answers[0] == answers[1]
