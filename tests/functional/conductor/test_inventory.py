"""The Nova inventory against the mini-cloud's real Nova.

One server lives through the module's test: the first sync (a full
listing) records it, a lock is picked up by an incremental sync
(``changes-since``) that would not have listed it otherwise, and its
deletion is found by the next one. The agents are a recorder here: what
the agent does on release is tested in the compute agent's tests.
"""

import pytest

from snapmanager_nova import context as sm_context
from snapmanager_nova.conductor import inventory
from snapmanager_nova.conductor import release
from snapmanager_nova.db import api as db_api
from tests.e2e import helpers
from tests.functional.conductor import nova_env


class RecordingAgents:
    def __init__(self):
        self.calls = []

    def release_instance(self, context, host, instance_uuid, backend, keep):
        self.calls.append(("release", host, instance_uuid, backend, keep))
        return []

    def delete_snapshot(
        self, context, host, snapshot_id, instance_uuid, backend, index, disks
    ):
        self.calls.append(("delete", host, snapshot_id, backend))


class ListingRecorder:
    """The real compute proxy, noting how servers were listed."""

    def __init__(self, compute):
        self.compute = compute
        self.queries = []
        self.configured = compute.configured

    def get(self):
        real = self.compute.get()
        recorder = self

        class Proxy:
            def servers(self, **query):
                recorder.queries.append(query)
                return real.servers(**query)

            def get_server(self, server_id):
                return real.get_server(server_id)

        return Proxy()


@pytest.fixture(scope="module")
def compute(snapmanager_env, minicloud, tmp_path_factory):
    return nova_env.lazy_compute(minicloud, tmp_path_factory.mktemp("nova"))


@pytest.fixture(scope="module")
def server(minicloud):
    demo = minicloud.connect("demo")
    created = helpers.create_server(minicloud, demo, "inventory")
    with helpers.cleanup_server(minicloud, created):
        yield created


def test_sync_follows_a_servers_life(minicloud, compute, server):
    ctx = sm_context.get_admin_context()
    demo = minicloud.connect("demo")
    # Known to Snapmanager (a policy was set), with a stale record.
    snapshot = nova_env.known_server(ctx, server, "stale", "stale-host")
    agents = RecordingAgents()
    listings = ListingRecorder(compute)
    sync = inventory.InventorySync(listings, inventory.InstanceCleanup(agents))

    assert db_api.sync_marker_get(ctx, inventory.MARKER_NAME) is None
    assert sync.sync(ctx) == 1
    row = db_api.instance_get(ctx, server.id)
    assert row.project_id == minicloud.projects["demo"]
    assert row.host == minicloud.host
    assert row.name == server.name
    assert row.nova_status == "ACTIVE"
    assert row.task_state is None
    assert not row.locked
    assert not row.boot_from_volume
    assert row.nova_synced_at is not None
    # The marker is set: from now on only changes are listed.
    marker = db_api.sync_marker_get(ctx, inventory.MARKER_NAME)
    assert "changes_since" not in listings.queries[0]

    demo.compute.lock_server(server, locked_reason="tenant: hands off")
    assert sync.sync(ctx) == 1
    row = db_api.instance_get(ctx, server.id)
    assert row.locked
    assert row.locked_reason == "tenant: hands off"
    assert listings.queries[1]["changes_since"] == marker.isoformat()
    demo.compute.unlock_server(server)

    # The host's agent is up (only a live agent is asked).
    db_api.service_heartbeat(ctx, "snapmanager-compute", minicloud.host)
    demo.compute.delete_server(server)
    demo.compute.wait_for_delete(server, wait=helpers.WAIT)
    sync.sync(ctx)
    row = db_api.instance_get(ctx, server.id)
    assert row.nova_status == "DELETED"
    assert row.deleted_at is not None
    # Nova is done with the disks: images it may have left are taken out
    # of its way, and the snapshots (not kept after delete) deleted.
    assert agents.calls == [
        ("release", minicloud.host, server.id, "file", True),
        ("delete", minicloud.host, snapshot.id, "file"),
    ]
    assert db_api.snapshot_get(ctx, snapshot.id).status == "deleting"
    # The server's schedules stop at once; its release waits for the
    # agent's report of that deletion.
    assert row.release_state == "pending"


def test_a_try_that_finds_no_domain_asks_nova(minicloud, compute):
    """The schedule's retry path (retries.SnapshotDispatcher) asks Nova
    whether a server whose agent found no domain is gone."""
    ctx = sm_context.get_admin_context()
    demo = minicloud.connect("demo")
    created = helpers.create_server(minicloud, demo, "gone")
    with helpers.cleanup_server(minicloud, created):
        db_api.instance_create_or_update(
            ctx,
            created.id,
            {"project_id": minicloud.projects["demo"], "host": "stale-host"},
        )
        schedule = db_api.schedule_create(
            ctx,
            {
                "instance_uuid": created.id,
                "family": "daily",
                "spec": "daily@02:00",
            },
        )
        gone = release.NovaGoneCheck(
            compute, inventory.InstanceCleanup(RecordingAgents())
        )
        # Still there (say, migrating): nothing recorded.
        assert not gone(ctx, created.id)
        assert db_api.instance_get(ctx, created.id).deleted_at is None

        demo.compute.delete_server(created)
        demo.compute.wait_for_delete(created, wait=helpers.WAIT)
        assert gone(ctx, created.id)
        row = db_api.instance_get(ctx, created.id)
        assert row.deleted_at is not None
        # Nothing was ever stored: the release is done at once.
        assert row.release_state == "done"
        assert not db_api.schedule_get(ctx, schedule.id).enabled
