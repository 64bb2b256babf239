"""The Nova inventory: mapping Nova's servers to rows, the sync's marker
and what follows a delete, on SQLite with fakes of Nova and the agents.

Against a real Nova: tests/functional/conductor/test_inventory.py.
"""

import datetime
import uuid

import pytest
from openstack import exceptions as sdk_exc
from openstack.compute.v2 import server as sdk_server

from snapmanager_nova.conductor import inventory
from snapmanager_nova.db import api as db_api
from tests.unit.db import conftest as db_conftest
from tests.unit.db import fixtures as db_fixtures

engine = db_conftest.engine
ctx = db_conftest.ctx

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)


def nova_server(server_id=None, **body):
    """openstacksdk's Server as built from Nova's JSON (admin, details)."""
    values = {
        "id": server_id or str(uuid.uuid4()),
        "tenant_id": "project-a",
        "name": "vm1",
        "status": "ACTIVE",
        "OS-EXT-SRV-ATTR:host": "compute-1",
        "OS-EXT-STS:task_state": None,
        "locked": False,
        "locked_reason": None,
        "image": {"id": "image-1", "links": []},
        "os-extended-volumes:volumes_attached": [],
    }
    values.update(body)
    return sdk_server.Server(**values)


# Mapping


def test_server_fields_map_to_the_row():
    server = nova_server(
        **{
            "OS-EXT-STS:task_state": "powering-off",
            "locked": True,
            "locked_reason": "maintenance",
        }
    )
    state = inventory.from_sdk_server(server)
    assert state.values() == {
        "project_id": "project-a",
        "host": "compute-1",
        "name": "vm1",
        "nova_status": "ACTIVE",
        "task_state": "powering-off",
        "locked": True,
        "locked_reason": "maintenance",
        "boot_from_volume": False,
    }
    assert not state.deleted


@pytest.mark.parametrize(
    "image, volumes, expected",
    [
        ("", [{"id": "v1"}], True),
        ("", [], False),
        ({"id": "image-1", "links": []}, [{"id": "v1"}], False),
    ],
)
def test_boot_from_volume_is_no_image_and_a_volume(image, volumes, expected):
    server = nova_server(
        image=image, **{"os-extended-volumes:volumes_attached": volumes}
    )
    assert inventory.from_sdk_server(server).boot_from_volume is expected


def test_a_missing_host_does_not_clear_the_recorded_one():
    server = nova_server(
        status="SHELVED_OFFLOADED", **{"OS-EXT-SRV-ATTR:host": None}
    )
    values = inventory.from_sdk_server(server).values()
    assert "host" not in values
    assert values["nova_status"] == "SHELVED_OFFLOADED"


def test_deleted_status_means_deleted():
    assert inventory.from_sdk_server(nova_server(status="DELETED")).deleted


@pytest.mark.parametrize(
    "disks, backend",
    [
        ([{"target": "vda", "pool": "vms", "image": "u_disk"}], "rbd"),
        ([{"target": "vda", "path": "/store/u/1/vda"}], "file"),
        ([], None),
        (None, None),
    ],
)
def test_backend_of_recorded_disks(disks, backend):
    assert inventory.backend_of_disks(disks) == backend


# The sync


class FakeNova:
    """Nova's compute proxy as far as the sync uses it."""

    configured = True

    def __init__(self):
        self.listing = []
        self.queries = []
        self.gone = set()

    def get(self):
        return self  # as LazyCompute.get() gives the proxy

    def servers(self, **query):
        self.queries.append(query)
        return iter(self.listing)

    def get_server(self, server_id):
        if server_id in self.gone:
            raise sdk_exc.NotFoundException()
        raise AssertionError(f"unexpected lookup of {server_id}")


class RecordingCleanup:
    def __init__(self, fail=False):
        self.seen = []
        self.fail = fail

    def deleted(self, context, instance, deleted_at):
        if self.fail:
            raise RuntimeError("no agent")
        self.seen.append(instance.uuid)


def make_sync(nova, cleanup=None, now=NOW):
    cleanup = cleanup or RecordingCleanup()
    sync = inventory.InventorySync(
        nova, cleanup, now=lambda: now, overlap=datetime.timedelta(0)
    )
    return sync, cleanup


def test_first_sync_is_full_then_incremental(ctx):
    known = db_fixtures.make_instance(ctx, host="old-host")
    nova = FakeNova()
    nova.listing = [nova_server(known.uuid), nova_server(name="not ours")]
    sync, _ = make_sync(nova)
    assert sync.sync(ctx) == 1
    assert nova.queries == [{"details": True, "all_projects": True}]
    row = db_api.instance_get(ctx, known.uuid)
    assert (row.host, row.name, row.nova_status) == (
        "compute-1",
        "vm1",
        "ACTIVE",
    )
    assert row.nova_synced_at == NOW
    # Servers Snapmanager does not know get no row.
    assert [r.uuid for r in db_api.instance_list(ctx)] == [known.uuid]
    assert db_api.sync_marker_get(ctx, inventory.MARKER_NAME) == NOW

    later = NOW + datetime.timedelta(minutes=5)
    sync, _ = make_sync(nova, now=later)
    sync.sync(ctx)
    assert nova.queries[-1] == {
        "details": True,
        "all_projects": True,
        "changes_since": NOW.isoformat(),
    }
    assert db_api.sync_marker_get(ctx, inventory.MARKER_NAME) == later


def test_deleted_server_is_cleaned_up(ctx):
    known = db_fixtures.make_instance(ctx)
    db_api.sync_marker_set(ctx, inventory.MARKER_NAME, NOW)
    nova = FakeNova()
    nova.listing = [nova_server(known.uuid, status="DELETED")]
    sync, cleanup = make_sync(nova, now=NOW + datetime.timedelta(minutes=1))
    sync.sync(ctx)
    assert cleanup.seen == [known.uuid]
    assert db_api.instance_get(ctx, known.uuid).nova_status == "DELETED"


def test_full_sync_asks_about_known_servers_it_did_not_list(ctx):
    gone = db_fixtures.make_instance(ctx)
    nova = FakeNova()
    nova.gone.add(gone.uuid)
    sync, cleanup = make_sync(nova)
    sync.sync(ctx)
    assert cleanup.seen == [gone.uuid]


def test_a_failed_sync_keeps_the_marker(ctx):
    known = db_fixtures.make_instance(ctx)
    db_api.sync_marker_set(ctx, inventory.MARKER_NAME, NOW)
    nova = FakeNova()
    nova.listing = [nova_server(known.uuid, status="DELETED")]
    sync, _ = make_sync(
        nova, RecordingCleanup(fail=True), now=NOW + datetime.timedelta(1)
    )
    sync.sync(ctx)
    assert db_api.sync_marker_get(ctx, inventory.MARKER_NAME) == NOW


def test_unconfigured_nova_is_not_asked(ctx):
    nova = FakeNova()
    nova.configured = False
    sync, _ = make_sync(nova)
    assert sync.sync(ctx) == 0
    assert nova.queries == []


def test_an_older_observation_does_not_overwrite_a_newer_one(ctx):
    known = db_fixtures.make_instance(ctx)
    newer = inventory.from_sdk_server(nova_server(known.uuid, locked=True))
    older = inventory.from_sdk_server(nova_server(known.uuid))
    assert db_api.instance_update_inventory(
        ctx, known.uuid, newer.values(), NOW
    )
    assert not db_api.instance_update_inventory(
        ctx, known.uuid, older.values(), NOW - datetime.timedelta(seconds=1)
    )
    assert db_api.instance_get(ctx, known.uuid).locked


# After a delete


class RecordingAgents:
    def __init__(self, released=()):
        self.released = list(released)
        self.calls = []

    def release_instance(self, context, host, instance_uuid, backend, keep):
        self.calls.append(("release", host, backend, keep))
        return self.released

    def delete_snapshot(
        self, context, host, snapshot_id, instance_uuid, backend, index, disks
    ):
        self.calls.append(("delete", host, backend, index))


def snapshot_of(ctx, instance, disks):
    index = db_api.instance_allocate_snapshot_index(ctx, instance.uuid)
    snapshot = db_fixtures.make_snapshot(ctx, instance, snapshot_index=index)
    return db_api.snapshot_update_status(
        ctx, snapshot.id, "available", disks=disks
    )


RBD_DISKS = [{"target": "vda", "pool": "vms", "image": "x_disk"}]
FILE_DISKS = [{"target": "vda", "path": "/store/x/1/vda"}]


def agent_up(ctx, host="compute-1"):
    """The host's agent heartbeats: the conductor asks only live ones."""
    db_api.service_heartbeat(ctx, "snapmanager-compute", host)


def test_release_forgets_the_snapshots_the_agent_removed(ctx):
    agent_up(ctx)
    instance = db_fixtures.make_instance(ctx, host="compute-1")
    first = snapshot_of(ctx, instance, RBD_DISKS)
    second = snapshot_of(ctx, instance, RBD_DISKS)
    agents = RecordingAgents(released=[first.snapshot_index])
    cleanup = inventory.InstanceCleanup(agents)
    assert cleanup.release(ctx, instance, "delete") == [1]
    assert agents.calls == [("release", "compute-1", "rbd", False)]
    assert db_api.snapshot_get(ctx, first.id).status == "deleted"
    assert db_api.snapshot_get(ctx, second.id).status == "available"


def test_release_with_keep_after_delete_forgets_nothing(ctx):
    agent_up(ctx)
    instance = db_fixtures.make_instance(
        ctx, host="compute-1", keep_after_delete=True
    )
    snapshot = snapshot_of(ctx, instance, RBD_DISKS)
    agents = RecordingAgents(released=[snapshot.snapshot_index])
    inventory.InstanceCleanup(agents).release(ctx, instance, "rebuild")
    assert agents.calls == [("release", "compute-1", "rbd", True)]
    assert db_api.snapshot_get(ctx, snapshot.id).status == "available"


@pytest.mark.parametrize("why", ["rebuild", "shelve-offload"])
def test_rebuild_keeps_the_snapshots_unless_the_operator_says_not(ctx, why):
    agent_up(ctx)
    instance = db_fixtures.make_instance(ctx, host="compute-1")
    snapshot = snapshot_of(ctx, instance, RBD_DISKS)
    agents = RecordingAgents(released=[snapshot.snapshot_index])
    inventory.InstanceCleanup(agents).release(ctx, instance, why)
    assert agents.calls == [("release", "compute-1", "rbd", True)]
    kept = db_api.snapshot_get(ctx, snapshot.id)
    assert kept.status == "available"
    # Marked: a record of where their data is now (kept images).
    assert kept.disks == [dict(disk, kept=True) for disk in RBD_DISKS]

    inventory.CONF.set_override("keep_on_rebuild", False, "conductor")
    try:
        inventory.InstanceCleanup(agents).release(ctx, instance, why)
    finally:
        inventory.CONF.clear_override("keep_on_rebuild", "conductor")
    assert agents.calls[-1] == ("release", "compute-1", "rbd", False)
    assert db_api.snapshot_get(ctx, snapshot.id).status == "deleted"


def test_release_without_anything_stored_asks_no_agent(ctx):
    agent_up(ctx)
    instance = db_fixtures.make_instance(ctx, host="compute-1")
    agents = RecordingAgents()
    assert inventory.InstanceCleanup(agents).release(ctx, instance, "x") == []
    assert agents.calls == []


def test_deleted_instance_has_its_snapshots_deleted_once(ctx):
    agent_up(ctx)
    instance = db_fixtures.make_instance(ctx, host="compute-1")
    snapshot = snapshot_of(ctx, instance, FILE_DISKS)
    agents = RecordingAgents()
    cleanup = inventory.InstanceCleanup(agents)
    assert cleanup.deleted(ctx, instance, NOW)
    assert agents.calls == [
        ("release", "compute-1", "file", True),
        ("delete", "compute-1", "file", snapshot.snapshot_index),
    ]
    assert db_api.snapshot_get(ctx, snapshot.id).status == "deleting"
    assert db_api.instance_get(ctx, instance.uuid).deleted_at == NOW
    # Seen again (the sync after the notification): nothing more.
    assert not cleanup.deleted(ctx, instance, NOW)
    assert len(agents.calls) == 2


def test_deleted_instance_keeps_its_snapshots_when_asked_to(ctx):
    agent_up(ctx)
    instance = db_fixtures.make_instance(
        ctx, host="compute-1", keep_after_delete=True
    )
    snapshot = snapshot_of(ctx, instance, RBD_DISKS)
    agents = RecordingAgents()
    inventory.InstanceCleanup(agents).deleted(ctx, instance, NOW)
    assert agents.calls == [("release", "compute-1", "rbd", True)]
    assert db_api.snapshot_get(ctx, snapshot.id).status == "available"
