"""The release owed to servers Nova deleted, and which agent does it, on
SQLite with a fake of the agents' RPC API.

Against real agents and storage: tests/functional/conductor/
test_deleted_servers.py.
"""

import datetime

import oslo_messaging as messaging

from snapmanager_nova.conductor import inventory
from snapmanager_nova.conductor import release
from snapmanager_nova.conductor import retries
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from tests.unit.db import conftest as db_conftest
from tests.unit.db import fixtures as db_fixtures

engine = db_conftest.engine
ctx = db_conftest.ctx

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
RBD_DISKS = [{"target": "vda", "pool": "vms", "image": "x_disk"}]


class Agents:
    """The compute RPC API; ``lacking`` hosts answer as an agent without
    the rbd backend does, ``silent`` ones time out."""

    def __init__(self, lacking=(), silent=()):
        self.lacking = set(lacking)
        self.silent = set(silent)
        self.calls = []

    def _answer(self, host):
        if host in self.silent:
            raise messaging.MessagingTimeout("no reply")
        if host in self.lacking:
            raise messaging.RemoteError(
                "BackendNotEnabled",
                f"Backend 'rbd' is not enabled on host {host}.",
            )

    def release_instance(self, context, host, instance_uuid, backend, keep):
        self.calls.append(("release", host, backend, keep))
        self._answer(host)
        return []

    def delete_snapshot(
        self, context, host, snapshot_id, instance_uuid, backend, index, disks
    ):
        self.calls.append(("delete", host, backend, index))


class Liveness:
    def __init__(self, *hosts):
        self.hosts = set(hosts)

    def is_up(self, context, host):
        return host in self.hosts

    def alive_hosts(self, context):
        return set(self.hosts)


class Clock:
    def __init__(self):
        self.value = 0.0

    def __call__(self):
        return self.value


def rbd_instance(ctx, host="compute-1", **values):
    instance = db_fixtures.make_instance(
        ctx, host=host, backend="rbd", **values
    )
    index = db_api.instance_allocate_snapshot_index(ctx, instance.uuid)
    snapshot = db_fixtures.make_snapshot(ctx, instance, snapshot_index=index)
    snapshot = db_api.snapshot_update_status(
        ctx, snapshot.id, "available", disks=RBD_DISKS
    )
    return db_api.instance_get(ctx, instance.uuid), snapshot


def cleanup_of(agents, *alive, now=NOW):
    router = release.AgentRouter(Liveness(*alive), clock=Clock())
    releaser = release.DeletedServerRelease(
        agents, router=router, now=lambda: now, jitter=lambda: 0.0
    )
    return inventory.InstanceCleanup(agents, releaser, now=lambda: now)


def test_router_tries_the_own_host_first_then_others_for_rbd():
    router = release.AgentRouter(Liveness("a", "b", "c"), clock=Clock())
    instance = models.Instance(uuid="i", host="b")
    assert router.candidates(None, instance, "rbd") == ["b", "a", "c"]
    # A file-backed snapshot is in its host's store only.
    assert router.candidates(None, instance, "file") == ["b"]


def test_router_forgets_what_a_host_lacks_after_a_while():
    clock = Clock()
    router = release.AgentRouter(
        Liveness("a", "b"), forget_after=600, clock=clock
    )
    instance = models.Instance(uuid="i", host="a")
    router.learn_lacking("a", "rbd")
    assert router.candidates(None, instance, "rbd") == ["b"]
    clock.value = 601
    assert router.candidates(None, instance, "rbd") == ["a", "b"]


def test_delete_stops_the_schedules_even_when_no_agent_can_act(ctx):
    instance, snapshot = rbd_instance(ctx)
    schedule = db_fixtures.make_schedule(ctx, instance, next_run_at=NOW)
    agents = Agents(lacking={"compute-1"})
    cleanup = cleanup_of(agents, "compute-1")

    assert cleanup.deleted(ctx, instance, NOW)

    row = db_api.instance_get(ctx, instance.uuid)
    assert row.deleted_at == NOW
    assert row.release_state == models.RELEASE_PENDING
    assert row.release_attempts == 1
    assert row.release_error == (
        "the agent on compute-1 does not serve the rbd backend, and no "
        "other live agent serves rbd"
    )
    # Equal jitter with 0: half of the first delay.
    assert row.release_next_at == NOW + datetime.timedelta(seconds=15)
    stopped = db_api.schedule_get(ctx, schedule.id)
    assert (stopped.enabled, stopped.next_run_at) == (False, None)
    assert db_api.schedule_get_due(ctx, NOW + datetime.timedelta(days=9)) == []
    assert db_api.snapshot_get(ctx, snapshot.id).status == "available"
    # Seen again (the sync after the notification): nothing more.
    assert not cleanup.deleted(ctx, instance, NOW)
    assert len(agents.calls) == 1


def test_rbd_release_goes_to_another_agent(ctx):
    instance, snapshot = rbd_instance(ctx)
    agents = Agents(lacking={"compute-1"})
    cleanup = cleanup_of(agents, "compute-1", "compute-2")

    cleanup.deleted(ctx, instance, NOW)

    assert agents.calls == [
        ("release", "compute-1", "rbd", True),
        ("release", "compute-2", "rbd", True),
        ("delete", "compute-2", "rbd", snapshot.snapshot_index),
    ]
    row = db_api.instance_get(ctx, instance.uuid)
    assert row.release_state == models.RELEASE_PENDING
    assert "waiting for 1 snapshot deletion" in row.release_error


def test_pending_release_is_tried_again_with_backoff_until_done(ctx):
    instance, snapshot = rbd_instance(ctx)
    agents = Agents(silent={"compute-1"})
    cleanup = cleanup_of(agents, "compute-1")
    cleanup.deleted(ctx, instance, NOW)
    releaser = cleanup.releaser
    assert (
        "did not answer"
        in db_api.instance_get(ctx, instance.uuid).release_error
    )

    # Not before its time.
    assert releaser.retry_due(ctx) == []
    waits = []
    for _ in range(3):
        row = db_api.instance_get(ctx, instance.uuid)
        waits.append(row.release_next_at - releaser.now())
        releaser.now = lambda row=row: row.release_next_at
        assert releaser.retry_due(ctx) == [instance.uuid]
    assert waits == [datetime.timedelta(seconds=s) for s in (15, 30, 60)]
    assert db_api.instance_get(ctx, instance.uuid).release_attempts == 4

    # The agent answers again: the snapshot is sent to be deleted, and
    # once its deletion is confirmed the release is done.
    agents.silent.clear()
    row = db_api.instance_get(ctx, instance.uuid)
    releaser.now = lambda: row.release_next_at
    releaser.retry_due(ctx)
    assert db_api.snapshot_get(ctx, snapshot.id).status == "deleting"
    db_api.snapshot_update_status(ctx, snapshot.id, "deleted")
    row = db_api.instance_get(ctx, instance.uuid)
    releaser.now = lambda: row.release_next_at
    releaser.retry_due(ctx)
    done = db_api.instance_get(ctx, instance.uuid)
    assert done.release_state == models.RELEASE_DONE
    assert done.release_error is None
    assert db_api.instance_list_releases(ctx) == []


def test_an_operator_gives_a_release_up(ctx):
    instance, _snapshot = rbd_instance(ctx)
    cleanup = cleanup_of(Agents(), *())
    cleanup.deleted(ctx, instance, NOW)
    assert [r.uuid for r in db_api.instance_list_releases(ctx)] == [
        instance.uuid
    ]
    assert db_api.instance_release_retry_now(ctx, instance.uuid, NOW)
    assert db_api.instance_release_finish(
        ctx, instance.uuid, models.RELEASE_ABANDONED, error="host scrapped"
    )
    assert db_api.instance_list_releases(ctx) == []
    assert not db_api.instance_release_retry_now(ctx, instance.uuid, NOW)
    cleanup.releaser.now = lambda: NOW + datetime.timedelta(days=1)
    assert cleanup.releaser.retry_due(ctx) == []


def test_pending_releases_own_their_snapshots_against_roll_off(ctx):
    instance, _snapshot = rbd_instance(ctx)
    cleanup_of(Agents(), *()).deleted(ctx, instance, NOW)
    assert db_api.snapshot_list_of_deleted_instances(ctx, None, 10) == []


def test_a_retry_of_a_server_nova_reports_deleted_is_not_made(ctx):
    instance = db_fixtures.make_instance(ctx, host="compute-1")
    db_api.instance_update_inventory(
        ctx, instance.uuid, {"nova_status": "DELETED"}, NOW
    )
    schedule = db_fixtures.make_schedule(ctx, instance)
    snapshot = db_fixtures.make_snapshot(ctx, instance, schedule)
    db_api.snapshot_defer(ctx, snapshot.id, 0, NOW, "server busy")
    asked = []

    def gone(context, instance_uuid):
        asked.append(instance_uuid)
        return True

    agents = Agents()
    dispatcher = retries.SnapshotDispatcher(
        agents, now=lambda: NOW, server_gone=gone
    )
    assert dispatcher.retry_due(ctx) == [snapshot.id]
    assert asked == [instance.uuid]
    failed = db_api.snapshot_get(ctx, snapshot.id)
    assert (failed.status, failed.error) == ("error", retries.SERVER_DELETED)
    assert agents.calls == []


def test_an_agent_that_starts_has_pending_releases_tried_at_once(ctx):
    instance, snapshot = rbd_instance(ctx)
    agents = Agents(lacking={"compute-1"})
    cleanup = cleanup_of(agents, "compute-1")
    cleanup.deleted(ctx, instance, NOW)
    releaser = cleanup.releaser
    assert releaser.retry_due(ctx) == []  # its backoff is not over

    # compute-2 starts serving rbd (and says compute-1's config).
    releaser.router.agents.hosts.add("compute-2")
    releaser.agent_started(ctx, "compute-2", ["rbd"])
    releaser.agent_started(ctx, "compute-1", ["file"])
    assert releaser.retry_due(ctx) == [instance.uuid]
    # compute-1, known not to serve rbd, is not asked again.
    assert agents.calls[-2:] == [
        ("release", "compute-2", "rbd", True),
        ("delete", "compute-2", "rbd", snapshot.snapshot_index),
    ]

    # The agent's report of that deletion ends the wait at once.
    assert releaser.retry_due(ctx) == []
    deleted = db_api.snapshot_update_status(ctx, snapshot.id, "deleted")
    assert releaser.deletion_confirmed(ctx, deleted)
    assert releaser.retry_due(ctx) == [instance.uuid]
    row = db_api.instance_get(ctx, instance.uuid)
    assert row.release_state == models.RELEASE_DONE


def file_snapshots(ctx, server_host, holders):
    """A file-backed server now on ``server_host`` with a snapshot held
    by each of ``holders``."""
    instance = db_fixtures.make_instance(ctx, host=server_host, backend="file")
    snapshots = []
    for holder in holders:
        index = db_api.instance_allocate_snapshot_index(ctx, instance.uuid)
        snapshot = db_fixtures.make_snapshot(
            ctx, instance, snapshot_index=index
        )
        snapshots.append(
            db_api.snapshot_update_status(
                ctx,
                snapshot.id,
                "available",
                backend="file",
                host=holder,
                disks=[{"target": "vda", "path": "/store/disk"}],
            )
        )
    return db_api.instance_get(ctx, instance.uuid), snapshots


def test_a_moved_servers_snapshots_are_deleted_by_their_holders(ctx):
    instance, (old, new) = file_snapshots(
        ctx, "compute-2", ["compute-1", "compute-2"]
    )
    for host in ("compute-1", "compute-2"):
        db_api.service_heartbeat(ctx, "snapmanager-compute", host)
    agents = Agents()
    cleanup_of(agents, "compute-1", "compute-2").deleted(ctx, instance, NOW)
    assert sorted(call for call in agents.calls if call[0] == "delete") == [
        ("delete", "compute-1", "file", old.snapshot_index),
        ("delete", "compute-2", "file", new.snapshot_index),
    ]


def test_snapshots_on_a_gone_host_are_kept_and_hold_the_release(ctx):
    instance, (kept,) = file_snapshots(ctx, "compute-2", ["compute-1"])
    db_api.service_heartbeat(ctx, "snapmanager-compute", "compute-2")
    agents = Agents()
    cleanup_of(agents, "compute-2").deleted(ctx, instance, NOW)
    assert [call for call in agents.calls if call[0] == "delete"] == []
    # Never marked deleted with its files still there.
    assert db_api.snapshot_get(ctx, kept.id).status == "available"
    row = db_api.instance_get(ctx, instance.uuid)
    assert row.release_state == models.RELEASE_PENDING
    assert "out of service" in row.release_error
    assert kept.id in row.release_error
