"""snapmanager-api as a real process, on MariaDB and RabbitMQ.

Nova is :class:`tests.unit.api.nova_http.NovaStub`, reached through the
real openstacksdk and keystoneauth code with ``[nova] auth_type = none``;
a real Nova (and Keystone) come with the mini-cloud.
"""

import datetime
import json
import re
import subprocess
import threading
import urllib.error
import urllib.request
import uuid

import oslo_messaging as messaging
import pytest

from snapmanager_nova import context as sm_context
from snapmanager_nova import rpc
from snapmanager_nova import schedule
from snapmanager_nova.compute import rpcapi as compute_rpcapi
from snapmanager_nova.db import api as db_api
from tests.fixtures.services import BIN
from tests.fixtures.services import unique_host
from tests.fixtures.services import wait_until
from tests.unit.api import nova_http

MEMBER = {
    "X-Project-Id": "demo",
    "X-User-Id": "member",
    "X-Roles": "reader,member",
}
_LISTENING = re.compile(r"snapmanager-api listening on \S+ port (\d+)")


def start_api(env, name, config_text):
    """Start snapmanager-api with ``config_text`` over the env's config.

    It binds port 0 and says in its log which port it got. The process
    joins the env's, so it is stopped with them and its log is shown when
    a test fails.
    """
    extra = env.directory / f"{name}.conf"
    extra.write_text(config_text)
    log = env.directory / f"{name}.log"
    with open(log, "ab") as early_output:
        process = subprocess.Popen(
            [
                str(BIN / "snapmanager-api"),
                "--config-file",
                str(env.config),
                "--config-file",
                str(extra),
                "--log-file",
                str(log),
            ],
            stdout=early_output,
            stderr=subprocess.STDOUT,
        )
    process.log = log
    env.processes.append(process)

    def port():
        assert process.poll() is None, env.log_tails()
        match = _LISTENING.search(log.read_text())
        return match and int(match.group(1))

    return f"http://127.0.0.1:{wait_until(port, what=f'{name} listening')}"


def call(url, method="GET", body=None, headers=None):
    """(status, headers (case-insensitive), body bytes) of a request."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    for header, value in (headers or {}).items():
        req.add_header(header, value)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


@pytest.fixture(scope="module")
def nova_stub():
    stub = nova_http.NovaStub().start()
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def noauth_api(snapmanager_env, nova_stub):
    return start_api(
        snapmanager_env,
        "snapmanager-api-noauth",
        "[api]\nauth_strategy = noauth\nbind_host = 127.0.0.1\n"
        "bind_port = 0\n"
        f"[nova]\nauth_type = none\nendpoint = {nova_stub.endpoint}\n",
    )


@pytest.fixture(scope="module")
def keystone_api(snapmanager_env):
    return start_api(
        snapmanager_env,
        "snapmanager-api-keystone",
        "[api]\nauth_strategy = keystone\nbind_host = 127.0.0.1\n"
        "bind_port = 0\n"
        "[keystone_authtoken]\n"
        "www_authenticate_uri = http://keystone.invalid/identity\n"
        "auth_type = password\nauth_url = http://keystone.invalid/identity\n"
        "username = snapmanager\npassword = secret\n"
        "project_name = service\nuser_domain_name = Default\n"
        "project_domain_name = Default\n",
    )


def test_policy_set_over_http_lands_in_the_database(noauth_api, nova_stub):
    server_id = str(uuid.uuid4())
    nova_stub.add(server_id, "demo", host="compute-4")
    before = datetime.datetime.now(datetime.UTC)
    status, headers, body = call(
        f"{noauth_api}/v1/servers/{server_id}/snapshot-policy",
        "PUT",
        {
            "schedules": [
                {
                    "spec": "daily@02:30",
                    "timezone": "Europe/Berlin",
                    "retention": {"keep_count": 7},
                },
                {"spec": "every@6h"},
            ],
        },
        MEMBER,
    )
    after = datetime.datetime.now(datetime.UTC)
    assert status == 200, body
    # Asked without OpenStack-API-Version, answered at the minimum.
    assert (headers["OpenStack-API-Version"], headers["Vary"]) == (
        "snapmanager 1.0",
        "OpenStack-API-Version",
    )
    ctx = sm_context.get_admin_context()
    instance = db_api.instance_get(ctx, server_id)
    assert instance.snapshot_enabled
    assert (instance.project_id, instance.host) == ("demo", "compute-4")
    rows = db_api.schedule_list(ctx, instance_uuid=server_id)
    assert [(row.spec, row.timezone) for row in rows] == [
        ("daily@02:30", "Europe/Berlin"),
        ("every@6h", "UTC"),
    ]
    for row in rows:
        spec = schedule.parse_spec(row.spec, row.timezone)
        # The first run as of some instant during the request.
        assert row.next_run_at in (spec.next_run(before), spec.next_run(after))
        assert row.next_run_at > before
    assert rows[0].retention == {"keep_count": 7}
    shown = json.loads(
        call(
            f"{noauth_api}/v1/servers/{server_id}/snapshot-policy",
            headers=MEMBER,
        )[2]
    )
    assert [s["id"] for s in shown["snapshot_policy"]["schedules"]] == [
        row.id for row in rows
    ]


def test_other_projects_server_is_404(noauth_api, nova_stub):
    server_id = str(uuid.uuid4())
    nova_stub.add(server_id, "other")
    status, _, body = call(
        f"{noauth_api}/v1/servers/{server_id}/snapshot-policy",
        "PUT",
        {"schedules": []},
        MEMBER,
    )
    assert status == 404, body
    assert json.loads(body)["error"]["message"] == (
        f"Server {server_id} could not be found."
    )


class _RecordingAgent:
    target = messaging.Target(version="1.0")

    def __init__(self):
        self.calls = []
        self.received = threading.Event()

    def create_snapshot(self, context, **kwargs):
        self.calls.append(kwargs)
        self.received.set()


@pytest.fixture
def agent(snapmanager_env, rabbitmq):
    """An RPC server standing in for the agent of a fresh host."""
    host = unique_host("api-agent")
    endpoint = _RecordingAgent()
    server = rpc.get_server(
        messaging.Target(topic=compute_rpcapi.TOPIC, server=host), [endpoint]
    )
    server.start()
    yield host, endpoint
    server.stop()
    server.wait()
    _delete_queue(rabbitmq["transport_url"], f"{compute_rpcapi.TOPIC}.{host}")


def _delete_queue(transport_url, name):
    # The host's queue outlives its server; the host name is never reused.
    import kombu

    with kombu.Connection("amqp" + transport_url[len("rabbit") :]) as conn:
        conn.default_channel.queue_delete(name)


def test_snapshot_now_is_cast_to_the_agent(noauth_api, nova_stub, agent):
    host, endpoint = agent
    server_id = str(uuid.uuid4())
    nova_stub.add(server_id, "demo", host=host)
    status, headers, body = call(
        f"{noauth_api}/v1/servers/{server_id}/snapshots",
        "POST",
        {"quiesce": "skip"},
        MEMBER,
    )
    assert status == 202, body
    answer = json.loads(body)
    assert headers["Location"].endswith(
        f"/v1/operations/{answer['operation']['id']}"
    )
    assert endpoint.received.wait(30), "the agent got no cast"
    assert endpoint.calls == [
        {
            "instance_uuid": server_id,
            "snapshot_id": answer["snapshot"]["id"],
            "index": 1,
            "quiesce": "skip",
        }
    ]
    ctx = sm_context.get_admin_context()
    snapshot = db_api.snapshot_get(ctx, answer["snapshot"]["id"])
    assert snapshot.status == "creating"
    (operation,) = db_api.operation_list(ctx, instance_uuid=server_id)
    assert (operation.type, operation.state) == ("snapshot", "pending")


def test_keystone_without_token_is_401(keystone_api):
    status, headers, body = call(
        f"{keystone_api}/v1/snapshots", headers=MEMBER
    )
    assert status == 401
    assert json.loads(body)["error"]["code"] == 401
    assert headers["WWW-Authenticate"] == (
        'Keystone uri="http://keystone.invalid/identity"'
    )
    assert "X-OpenStack-Request-Id" in headers


def test_keystone_leaves_version_and_healthcheck_open(keystone_api):
    assert call(f"{keystone_api}/")[0] == 200
    assert call(f"{keystone_api}/healthcheck")[0] == 200


def test_lists_name_servers_and_leave_deleted_ones_out(noauth_api, nova_stub):
    server_id = str(uuid.uuid4())
    nova_stub.add(server_id, "demo", host="compute-5")
    policy_url = f"{noauth_api}/v1/servers/{server_id}/snapshot-policy"
    status, _, body = call(
        policy_url, "PUT", {"schedules": [{"spec": "daily@02:30"}]}, MEMBER
    )
    assert status == 200, body
    name = f"vm-{server_id[:8]}"
    assert json.loads(body)["snapshot_policy"]["server_name"] == name
    ctx = sm_context.get_admin_context()
    index = db_api.instance_allocate_snapshot_index(ctx, server_id)
    snapshot = db_api.snapshot_create(
        ctx, {"instance_uuid": server_id, "snapshot_index": index}
    )

    def listed(path, collection, key):
        status, _, body = call(f"{noauth_api}{path}", headers=MEMBER)
        assert status == 200, body
        return {row[key]: row for row in json.loads(body)[collection]}

    def policies():
        return listed(
            "/v1/snapshot-policies", "snapshot_policies", "server_id"
        )

    def snapshots():
        return listed(
            f"/v1/snapshots?server_id={server_id}", "snapshots", "id"
        )

    assert policies()[server_id]["server_name"] == name
    assert snapshots()[snapshot.id]["server_name"] == name

    # Nova deletes it: its policy leaves the list; its snapshots (still
    # to be released) keep their server's name.
    now = datetime.datetime.now(datetime.UTC)
    assert db_api.instance_begin_release(ctx, server_id, now, now)
    assert server_id not in policies()
    assert snapshots()[snapshot.id]["server_name"] == name
