"""Snapmanager's own versioned notifications, on the real RabbitMQ.

The conductor's code runs in this process as in snapmanager-conductor:
its RPC endpoint served on the test RabbitMQ, the schedule clock and the
restore orchestrator beside it, on the module's MariaDB database. The
compute agent is played by the test behind the real compute RPC API and
reports through the real conductor RPC API; Nova's compute API is a
fake (locking, stopping and starting a server are the restore tests'
business). The API runs in this process with a fake of Nova's server
lookup. A notification listener with a pool of its own receives what is
sent, exactly as an operator's consumer would.
"""

import datetime
import types

import oslo_messaging as messaging
import pytest
import webob

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import context as sm_context
from snapmanager_nova import policy
from snapmanager_nova.api import app
from snapmanager_nova.compute import rpcapi as compute_rpcapi
from snapmanager_nova.conductor import clock as clock_mod
from snapmanager_nova.conductor import manager
from snapmanager_nova.conductor import restore
from snapmanager_nova.conductor import retries
from snapmanager_nova.conductor import rpcapi as conductor_rpcapi
from snapmanager_nova.db import api as db_api
from tests.fixtures import notifications as notification_fixtures
from tests.fixtures.services import unique_host
from tests.fixtures.services import wait_until
from tests.functional.conductor import nova_env
from tests.unit.api import fakes as api_fakes
from tests.unit.db import fixtures as db_fixtures

CONF = sm_conf.CONF
BINARY = "snapmanager-conductor"
PROJECT = "project-notify"
SIZE = 3 * 1024 * 1024
FAILURE = (
    "Snapshot of instance {uuid} failed: disk vdb is a raw LVM volume, "
    "which Snapmanager cannot snapshot"
)


class Agent:
    """The agent's side, reporting through the real conductor RPC API."""

    # 1.1: the clock casts the snapshots of a host in one message.
    target = messaging.Target(version="1.1")

    def __init__(self, conductor_topic):
        self.conductor = nova_env.retarget(
            conductor_rpcapi.ConductorAPI(), conductor_topic
        )
        # instance uuid -> the error its snapshots fail with
        self.fail_with = {}

    def create_snapshot(
        self, context, instance_uuid, snapshot_id, index, quiesce
    ):
        error = self.fail_with.get(instance_uuid)
        if error is not None:
            self.conductor.snapshot_failed(context, snapshot_id, error)
            return
        path = f"/store/{instance_uuid}/{index}/vda"
        self.conductor.snapshot_created(
            context,
            snapshot_id,
            {
                "disks": [{"target": "vda", "path": path, "size": SIZE}],
                "size_bytes": SIZE,
                "quiesced": True,
                "backend": "file",
            },
        )

    def create_snapshots(self, context, snapshots):
        for item in snapshots:
            self.create_snapshot(context, **item)

    def restore_snapshot(
        self, context, operation_id, instance_uuid, backend, index, disks
    ):
        self.conductor.operation_progress(
            context, operation_id, 50, "restoring disks"
        )
        self.conductor.operation_finished(context, operation_id, None)


class FakeNova:
    """Nova's compute proxy, as far as a restore uses it."""

    def __init__(self, host):
        self.host = host
        self.servers = {}

    def add(self, server_id):
        self.servers[server_id] = types.SimpleNamespace(
            id=server_id,
            status="ACTIVE",
            task_state=None,
            is_locked=False,
            locked_reason=None,
            compute_host=self.host,
        )

    # nova.LazyCompute
    def get(self):
        return self

    def get_server(self, server_id):
        return types.SimpleNamespace(**vars(self.servers[server_id]))

    def post(self, url, json, microversion):
        server = self.servers[url.split("/")[2]]
        server.is_locked = True
        server.locked_reason = json["lock"]["locked_reason"]
        return types.SimpleNamespace(status_code=202, headers={})

    def unlock_server(self, server):
        self.servers[server.id].is_locked = False
        self.servers[server.id].locked_reason = None

    def stop_server(self, server):
        self.servers[server.id].status = "SHUTOFF"

    def start_server(self, server):
        self.servers[server.id].status = "ACTIVE"

    def wait_for_server(self, server, status, failures, interval, wait):
        assert self.servers[server.id].status == status
        return server


@pytest.fixture(scope="module")
def topic():
    return nova_env.private_topic("versioned_notifications")


@pytest.fixture(scope="module")
def received(snapmanager_env, topic):
    with notification_fixtures.listening(
        snapmanager_env.transport_url, topic
    ) as recorder:
        yield recorder


@pytest.fixture
def sending(topic):
    with notification_fixtures.sending(topic):
        yield


@pytest.fixture(scope="module")
def conductor(snapmanager_env):
    """The conductor's RPC endpoint, clock and orchestrator, and the
    agent of one compute host."""
    agent_host = unique_host("compute")
    conductor_host = unique_host("conductor")
    compute_topic = nova_env.private_topic(compute_rpcapi.TOPIC)
    conductor_topic = nova_env.private_topic(conductor_rpcapi.TOPIC)
    compute_api = nova_env.retarget(compute_rpcapi.ComputeAPI(), compute_topic)
    nova = FakeNova(agent_host)
    orchestrator = restore.RestoreOrchestrator(
        nova,
        compute_api,
        conductor_host,
        BINARY,
        spawn=lambda func, *args: func(*args),
    )
    agent = Agent(conductor_topic)
    with nova_env.rpc_server(compute_topic, agent_host, agent):
        with nova_env.rpc_server(
            conductor_topic,
            conductor_host,
            manager.ConductorManager(restores=orchestrator),
        ):
            yield types.SimpleNamespace(
                host=conductor_host,
                agent_host=agent_host,
                agent=agent,
                nova=nova,
                compute_api=compute_api,
                orchestrator=orchestrator,
            )


@pytest.fixture
def ctx(snapmanager_env):
    return sm_context.get_admin_context()


def scheduled_snapshot(ctx, conductor, fail_with=None):
    """A due daily schedule of a new server, ticked: the server's row,
    the schedule and the snapshot recorded. ``fail_with``: the error the
    agent reports instead of the snapshot."""
    db_api.service_heartbeat(ctx, retries.COMPUTE_BINARY, conductor.agent_host)
    instance = db_fixtures.make_instance(
        ctx,
        project_id=PROJECT,
        host=conductor.agent_host,
        backend="file",
        snapshot_enabled=True,
    )
    if fail_with is not None:
        conductor.agent.fail_with[instance.uuid] = fail_with.format(
            uuid=instance.uuid
        )
    now = datetime.datetime.now(datetime.UTC)
    schedule = db_fixtures.make_schedule(
        ctx,
        instance,
        spec="daily@02:00",
        timezone="UTC",
        next_run_at=now - datetime.timedelta(minutes=1),
    )
    clock = clock_mod.ScheduleClock(conductor.compute_api, now=lambda: now)
    (dispatch,) = clock.tick(ctx)
    return instance, schedule, db_api.snapshot_get(ctx, dispatch.snapshot_id)


def restore_requested(ctx, conductor):
    """A server Nova has, its snapshot made, and a restore of it asked
    for: the server's row, the snapshot and the operation."""
    instance, _, snapshot = scheduled_snapshot(ctx, conductor)
    wait_until(
        lambda: db_api.snapshot_get(ctx, snapshot.id).status == "available",
        what="the snapshot available",
    )
    conductor.nova.add(instance.uuid)
    operation = db_api.operation_create(
        ctx,
        {
            "type": "restore",
            "instance_uuid": instance.uuid,
            "snapshot_id": snapshot.id,
        },
    )
    return instance, snapshot, operation


def events_of(received, key, value, count, what):
    return wait_until(
        lambda: len(events := received.about(key, value)) >= count and events,
        timeout=30,
        what=what,
        describe=lambda: "\n".join(
            n["event_type"] for n in received.about(key, value)
        ),
    )


def data(notification):
    return notification["payload"]["nova_object.data"]


def test_a_scheduled_snapshot_is_announced_start_and_end(
    ctx, conductor, received, sending
):
    instance, schedule, snapshot = scheduled_snapshot(ctx, conductor)

    start, end = events_of(
        received, "snapshot_id", snapshot.id, 2, "create.start and .end"
    )
    assert start["event_type"] == "snapmanager.snapshot.create.start"
    assert end["event_type"] == "snapmanager.snapshot.create.end"
    publisher = f"snapmanager-conductor:{CONF.host}"
    assert start["publisher_id"] == end["publisher_id"] == publisher
    assert start["priority"] == end["priority"] == "info"
    for notification in (start, end):
        payload = notification["payload"]
        assert payload["nova_object.name"] == "SnapshotActionPayload"
        assert payload["nova_object.namespace"] == "snapmanager"
        assert payload["nova_object.version"] == "1.0"
    assert data(start)["status"] == "creating"
    assert data(start)["finished_at"] is None
    assert data(start)["size_bytes"] is None
    row = db_api.snapshot_get(ctx, snapshot.id)
    assert row.status == "available"
    assert data(end) == {
        **data(end),
        "snapshot_id": snapshot.id,
        "schedule_id": schedule.id,
        "project_id": PROJECT,
        "server_id": instance.uuid,
        "status": "available",
        "backend": "file",
        "size_bytes": SIZE,
        "quiesced": True,
        "error": None,
        "operation_id": None,
    }
    assert data(end)["created_at"] is not None
    assert data(end)["finished_at"] is not None
    assert data(end)["duration_seconds"] >= 0


def test_a_failed_snapshot_is_announced_with_its_error(
    ctx, conductor, received, sending
):
    instance, schedule, snapshot = scheduled_snapshot(
        ctx, conductor, fail_with=FAILURE
    )
    error = FAILURE.format(uuid=instance.uuid)

    start, failed = events_of(
        received, "snapshot_id", snapshot.id, 2, "create.error"
    )
    assert start["event_type"] == "snapmanager.snapshot.create.start"
    assert failed["event_type"] == "snapmanager.snapshot.create.error"
    assert failed["priority"] == "error"
    assert data(failed)["status"] == "error"
    assert data(failed)["error"] == error
    assert data(failed)["schedule_id"] == schedule.id
    assert db_api.snapshot_get(ctx, snapshot.id).error == error


def test_a_restore_is_announced_start_and_end(
    ctx, conductor, received, sending
):
    instance, snapshot, operation = restore_requested(ctx, conductor)
    conductor.orchestrator.poll(ctx)

    start, end = events_of(
        received, "operation_id", operation.id, 2, "restore.start and .end"
    )
    assert start["event_type"] == "snapmanager.snapshot.restore.start"
    assert end["event_type"] == "snapmanager.snapshot.restore.end"
    assert start["publisher_id"] == f"snapmanager-conductor:{CONF.host}"
    assert end["payload"]["nova_object.name"] == "SnapshotRestorePayload"
    assert data(start)["state"] == "running"
    assert data(start)["step"] == "locking server"
    assert data(start)["finished_at"] is None
    assert data(end)["state"] == "succeeded"
    assert data(end)["progress"] == 100
    assert data(end)["snapshot_id"] == snapshot.id
    assert data(end)["server_id"] == instance.uuid
    assert data(end)["project_id"] == PROJECT
    assert data(end)["conductor_host"] == conductor.host
    assert data(end)["duration_seconds"] >= 0
    assert data(end)["error"] is None
    assert db_api.operation_get(ctx, operation.id).state == "succeeded"


def test_a_failed_restore_is_announced_with_its_error(
    ctx, conductor, received, sending
):
    instance, _, operation = restore_requested(ctx, conductor)
    server = conductor.nova.servers[instance.uuid]
    server.is_locked, server.locked_reason = True, "tenant: hands off"
    conductor.orchestrator.poll(ctx)

    start, failed = events_of(
        received, "operation_id", operation.id, 2, "restore.error"
    )
    assert start["event_type"] == "snapmanager.snapshot.restore.start"
    assert failed["event_type"] == "snapmanager.snapshot.restore.error"
    assert failed["priority"] == "error"
    error = db_api.operation_get(ctx, operation.id).error
    assert "locked in Nova by someone else (tenant: hands off)" in error
    assert data(failed)["error"] == error
    assert data(failed)["state"] == "failed"
    assert data(failed)["step"] == "locking server"


@pytest.fixture
def api(snapmanager_env):
    """The API application in this process, Nova's lookups faked."""
    CONF([], project="snapmanager", default_config_files=[])
    CONF.set_override("auth_strategy", "noauth", "api")
    policy.reset()
    nova = api_fakes.FakeNovaServers()

    def put(path, body):
        req = webob.Request.blank(path, method="PUT")
        req.headers.update(api_fakes.MEMBER)
        req.json_body = body
        req.content_type = "application/json"
        return req.get_response(application)

    application = app.create_app(
        CONF, nova_servers=nova, compute_api=lambda: None
    )
    yield types.SimpleNamespace(nova=nova, put=put)
    policy.reset()
    CONF.clear_override("auth_strategy", "api")


def test_a_policy_update_is_announced_by_the_api(api, received, sending):
    server = api.nova.add()
    response = api.put(
        f"/v1/servers/{server.id}/snapshot-policy",
        {
            "schedules": [
                {"spec": "daily@02:30", "timezone": "Europe/Berlin"}
            ],
            "keep_after_delete": True,
        },
    )
    assert response.status_code == 200, response.text

    (update,) = events_of(
        received, "server_id", server.id, 1, "snapshot_policy.update"
    )
    assert update["event_type"] == "snapmanager.snapshot_policy.update"
    assert update["publisher_id"] == f"snapmanager-api:{CONF.host}"
    assert update["payload"]["nova_object.name"] == "SnapshotPolicyPayload"
    # The context says who changed it, without their token.
    assert update["context"]["user"] == api_fakes.MEMBER["X-User-Id"]
    assert not update["context"].get("auth_token")
    policy_data = data(update)
    assert policy_data["project_id"] == server.project_id
    assert policy_data["snapshot_enabled"] is True
    assert policy_data["keep_after_delete"] is True
    (schedule,) = policy_data["schedules"]
    assert schedule["nova_object.name"] == "SnapshotSchedulePayload"
    assert schedule["nova_object.data"]["spec"] == "daily@02:30"
    assert schedule["nova_object.data"]["timezone"] == "Europe/Berlin"
    (row,) = db_api.schedule_list(
        sm_context.get_admin_context(), instance_uuid=server.id
    )
    assert schedule["nova_object.data"]["schedule_id"] == row.id


def test_nothing_is_sent_when_notifications_are_off(
    ctx, conductor, received, topic, api
):
    with notification_fixtures.sending(topic, enabled=False):
        _, _, snapshot = scheduled_snapshot(ctx, conductor)
        wait_until(
            lambda: (
                db_api.snapshot_get(ctx, snapshot.id).status == "available"
            ),
            what="the snapshot available",
        )
        server = api.nova.add()
        response = api.put(
            f"/v1/servers/{server.id}/snapshot-policy",
            {"schedules": [{"spec": "daily@03:00"}]},
        )
        assert response.status_code == 200, response.text

    # Sent afterwards, on the same topic: once it has arrived, anything
    # sent before it has had its chance to arrive too.
    with notification_fixtures.sending(topic):
        marker = api.nova.add()
        response = api.put(
            f"/v1/servers/{marker.id}/snapshot-policy",
            {"schedules": [{"spec": "daily@03:00"}]},
        )
        assert response.status_code == 200, response.text
    events_of(received, "server_id", marker.id, 1, "the marker")
    assert received.about("snapshot_id", snapshot.id) == []
    assert received.about("server_id", server.id) == []
