"""Servers Nova deleted, against real agents and their real storage.

The agents and a conductor run as processes on the test MariaDB and a
RabbitMQ vhost of the module's own; what the conductor does when it
learns of a delete (the inventory's cleanup and the pending release's
retries) runs in this process, with its clock moved past the backoff,
and asks the real agents over the real bus. The conductor process runs
the same periodic release beside it: either may do a try, and the tests
only assert what holds whoever did it.

The agents are down or lack a backend for real: a stopped process, an
agent started with ``[compute] backends = file`` asked about an RBD
instance.
"""

import datetime
import uuid as uuid_lib

import pytest

from snapmanager_nova import conf as sm_conf
from snapmanager_nova.compute import guest
from snapmanager_nova.conductor import clock
from snapmanager_nova.conductor import inventory
from snapmanager_nova.conductor import reconcile
from snapmanager_nova.conductor import release
from snapmanager_nova.conductor import retention
from snapmanager_nova.conductor import retries
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from tests.fixtures.services import wait_until
from tests.functional.conductor import real_agent
from tests.functional.conductor import test_reconcile

CONF = sm_conf.CONF
ceph_secret = real_agent.rbd.ceph_secret
private_bus = real_agent.private_bus

# Seconds after its last heartbeat that an agent counts as down, here
# and in the conductor process: a stopped agent is seen down quickly.
DOWN_TIME = 4
# The conductor process's options: its own release retries wait long,
# so that what it does at once is what an agent's start asked for.
CONDUCTOR = {
    "service_down_time": str(DOWN_TIME),
    "retry_base_delay": "1200",
    "retry_max_delay": "2400",
}


@pytest.fixture(autouse=True)
def down_time():
    CONF.set_override("service_down_time", DOWN_TIME, "conductor")
    yield
    CONF.clear_override("service_down_time", "conductor")


@pytest.fixture(scope="module")
def file_host(private_bus, snapmanager_env, tmp_path_factory, libvirt_env):
    host = real_agent.start(
        snapmanager_env,
        tmp_path_factory,
        libvirt_env,
        conductor=CONDUCTOR,
    )
    host.start_agent("file")
    return host


def stop_agent(host):
    host.agent.terminate()
    host.agent.wait(timeout=30)
    agents = retries.AgentLiveness(max_age=0)
    wait_until(
        lambda: not agents.is_up(host.ctx, host.host),
        timeout=DOWN_TIME + 30,
        what=f"the agent on {host.host} seen down",
    )


def daily_schedule(ctx, uuid):
    """A schedule of the instance whose next run is years away: the
    conductor process leaves it alone, a clock moved there would not."""
    return db_api.schedule_create(
        ctx,
        {
            "instance_uuid": uuid,
            "family": "netapp",
            "spec": "1@mon-sun@2",
            "next_run_at": real_agent.utc(2031, 1, 1, 2, 0),
        },
    )


def take_snapshot(host, uuid, backend, schedule=None):
    """A snapshot the real agent takes, recorded by the conductor."""
    row = test_reconcile.new_row(host.ctx, uuid, backend, schedule)
    host.compute_api.create_snapshot(
        host.ctx,
        host.host,
        uuid,
        row.id,
        row.snapshot_index,
        guest.QUIESCE_PREFER,
    )
    return real_agent.snapshot_status(host.ctx, row.id, "available")


def releaser_at(host, when):
    """The in-process release, its clock at ``when``."""
    releaser = release.DeletedServerRelease(
        host.compute_api, now=lambda: when, jitter=lambda: 0.0
    )
    return releaser, inventory.InstanceCleanup(
        host.compute_api, releaser=releaser, now=lambda: when
    )


def after_backoff(ctx, uuid):
    row = db_api.instance_get(ctx, uuid)
    return row.release_next_at + datetime.timedelta(seconds=1)


def released(ctx, uuid, until, releaser):
    """Try the pending release (as the periodic task does) until it is
    done, each try past the previous one's backoff."""

    def done():
        row = db_api.instance_get(ctx, uuid)
        if row.release_state != models.RELEASE_PENDING:
            return row
        releaser.now = lambda: max(until, after_backoff(ctx, uuid))
        releaser.retry_due(ctx)
        return None

    return wait_until(done, timeout=90, interval=0.5, what="the release")


def test_deleted_while_its_agent_is_stopped_then_started(
    file_host, libvirt_conn, domain_name
):
    host = file_host
    ctx = host.ctx
    uuid = real_agent.file_instance(host, libvirt_conn, domain_name)
    host.record(uuid, "file", name="web-1")
    schedule = daily_schedule(ctx, uuid)
    taken = take_snapshot(host, uuid, "file", schedule)
    assert host.store_dir(uuid, taken.snapshot_index).exists()
    assert uuid in [row.uuid for row in db_api.instance_list_page(ctx)]

    # Nova deletes the server while its agent is stopped.
    stop_agent(host)
    now = models.utcnow()
    releaser, cleanup = releaser_at(host, now)
    assert cleanup.deleted(ctx, db_api.instance_get(ctx, uuid), now)

    # Stopped for good at once, whatever the agent can do.
    row = db_api.instance_get(ctx, uuid)
    assert row.deleted_at == now
    assert not db_api.schedule_get(ctx, schedule.id).enabled
    assert uuid not in [
        r.uuid for r in db_api.instance_list_page(ctx, snapshot_enabled=True)
    ]
    # No window makes a row for it any more, however late it is.
    ticking = clock.ScheduleClock(
        host.compute_api, now=lambda: real_agent.utc(2031, 6, 1, 2, 30)
    )
    ticking.tick(ctx)
    assert [s.id for s in db_api.snapshot_list(ctx, instance_uuid=uuid)] == [
        taken.id
    ]
    # The release is owed, with why, and the snapshot kept meanwhile.
    assert row.release_state == models.RELEASE_PENDING
    assert host.host in row.release_error
    assert "down" in row.release_error
    assert db_api.snapshot_get(ctx, taken.id).status == "available"
    assert host.store_dir(uuid, taken.snapshot_index).exists()
    # Shown to operators; not tried again before its backoff.
    assert uuid in [r.uuid for r in db_api.instance_list_releases(ctx)]
    assert row.release_next_at > now
    assert releaser.retry_due(ctx) == []
    # Reconciliation leaves it to the release rather than ask the host.
    later = now + datetime.timedelta(
        seconds=CONF.conductor.operation_timeout + 1
    )
    reconciler = reconcile.Reconciler(
        host.compute_api,
        retries.SnapshotDispatcher(host.compute_api, now=lambda: later),
        now=lambda: later,
    )
    assert taken.id not in [done[1] for done in reconciler.run(ctx)]

    # The agent comes back: the next try deletes the snapshot.
    host.start_agent("file")
    row = released(ctx, uuid, after_backoff(ctx, uuid), releaser)
    assert row.release_state == models.RELEASE_DONE
    assert row.release_next_at is None
    assert db_api.snapshot_get(ctx, taken.id).status == "deleted"
    assert not host.store_dir(uuid, taken.snapshot_index).exists()
    assert uuid not in [r.uuid for r in db_api.instance_list_releases(ctx)]


def test_kept_snapshots_stay_and_the_release_ends(
    file_host, libvirt_conn, domain_name
):
    host = file_host
    ctx = host.ctx
    uuid = real_agent.file_instance(host, libvirt_conn, domain_name)
    host.record(uuid, "file", keep_after_delete=True)
    taken = take_snapshot(host, uuid, "file")

    now = models.utcnow()
    _releaser, cleanup = releaser_at(host, now)
    assert cleanup.deleted(ctx, db_api.instance_get(ctx, uuid), now)

    row = db_api.instance_get(ctx, uuid)
    assert row.release_state == models.RELEASE_DONE
    # Kept: retention's roll-off (unscheduled_max_age) decides later.
    assert db_api.snapshot_get(ctx, taken.id).status == "available"
    assert host.store_dir(uuid, taken.snapshot_index).exists()


@pytest.fixture(scope="module")
def rbd_host(file_host, snapmanager_env, tmp_path_factory, libvirt_env, ceph):
    """A second agent host, serving the rbd backend."""
    host = real_agent.start(
        snapmanager_env,
        tmp_path_factory,
        libvirt_env,
        ceph=ceph,
        conductor=CONDUCTOR,
    )
    host.start_agent("rbd")
    return host


@pytest.fixture
def rbd_snapshot(
    file_host,
    rbd_host,
    libvirt_conn,
    domain_name,
    ceph,
    ceph_client,
    ceph_secret,
):
    """(layout, snapshot): an RBD instance the rbd agent snapshotted,
    now recorded on a host whose agent serves file disks only (the
    quickstart switched to file mode), its domain gone."""
    layout = real_agent.rbd.make_layout(
        ceph_client, ceph, ceph_secret, domain_name
    )
    try:
        with real_agent.rbd.defined(libvirt_conn, layout):
            rbd_host.record(layout.uuid, "rbd")
            taken = take_snapshot(rbd_host, layout.uuid, "rbd")
        db_api.instance_create_or_update(
            rbd_host.ctx, layout.uuid, {"host": file_host.host}
        )
        yield layout, taken
    finally:
        real_agent.rbd.remove_everything(ceph_client, layout.uuid)


def test_rbd_work_goes_to_an_agent_that_serves_it(
    file_host, rbd_host, rbd_snapshot, ceph_client
):
    ctx = file_host.ctx
    layout, taken = rbd_snapshot
    uuid = layout.uuid
    # Nova deleted it on the file-only host: Nova's file-mode driver
    # left the RBD image, with our snapshot on it.
    stop_agent(rbd_host)
    now = models.utcnow()
    releaser, cleanup = releaser_at(file_host, now)
    assert cleanup.deleted(ctx, db_api.instance_get(ctx, uuid), now)
    row = db_api.instance_get(ctx, uuid)
    assert row.release_state == models.RELEASE_PENDING
    assert row.release_error == (
        f"the agent on {file_host.host} does not serve the rbd "
        "backend, and no other live agent serves rbd"
    )
    assert releaser.router.lacks(file_host.host, "rbd")
    assert real_agent.rbd.snapshots(ceph_client, layout.image())

    # An agent that serves rbd comes up and says so: the conductor
    # process tries the release at once (not after its long backoff),
    # and sends it there.
    rbd_host.start_agent("rbd")
    row = wait_until(
        lambda: (
            (r := db_api.instance_get(ctx, uuid)).release_state
            == models.RELEASE_DONE
            and r
        ),
        timeout=60,
        what="the release done by the conductor process",
    )
    assert db_api.snapshot_get(ctx, taken.id).status == "deleted"
    # Nothing left in the pool: the image Nova gave up on was kept
    # with our snapshot, and removed with it.
    assert real_agent.rbd.instance_images(ceph_client, uuid) == ([], [])


def test_reconciliation_lists_and_deletes_through_an_rbd_agent(
    file_host, rbd_host, rbd_snapshot, ceph_client
):
    ctx = file_host.ctx
    layout, taken = rbd_snapshot
    # A live server whose host does not serve rbd, with a deletion of an
    # RBD snapshot that never reached an agent.
    db_api.snapshot_update_status(ctx, taken.id, "deleting")
    later = models.utcnow() + datetime.timedelta(
        seconds=CONF.conductor.operation_timeout + 1
    )
    reconciler = reconcile.Reconciler(
        file_host.compute_api,
        retries.SnapshotDispatcher(file_host.compute_api, now=lambda: later),
        now=lambda: later,
    )

    assert (reconcile.DELETE_AGAIN, taken.id) in reconciler.run(ctx)

    assert reconciler.router.lacks(file_host.host, "rbd")
    real_agent.snapshot_status(ctx, taken.id, "deleted")
    assert real_agent.rbd.snapshots(ceph_client, layout.image()) == []


def test_a_try_that_finds_the_server_gone_stops_its_schedule(file_host):
    ctx = file_host.ctx
    uuid = str(uuid_lib.uuid4())
    file_host.record(uuid, "file")
    schedule = daily_schedule(ctx, uuid)
    index = db_api.instance_allocate_snapshot_index(ctx, uuid)
    row = db_api.snapshot_create(
        ctx,
        {
            "instance_uuid": uuid,
            "snapshot_index": index,
            "schedule_id": schedule.id,
            "window_start": real_agent.utc(2031, 1, 1, 2, 0),
        },
    )
    now = models.utcnow()
    _releaser, cleanup = releaser_at(file_host, now)
    asked = []

    def gone(context, instance_uuid):
        # Nova's answer is the inventory tests' business; here Nova
        # says the server is gone.
        asked.append(instance_uuid)
        cleanup.deleted(context, db_api.instance_get(context, uuid), now)
        return True

    dispatcher = retries.SnapshotDispatcher(
        file_host.compute_api, now=lambda: now, server_gone=gone
    )
    # The real agent finds no domain for it.
    file_host.compute_api.create_snapshot(
        ctx, file_host.host, uuid, row.id, index, guest.QUIESCE_PREFER
    )
    report = wait_until(
        lambda: (r := db_api.snapshot_get(ctx, row.id)).next_attempt_at and r,
        timeout=60,
        what="the agent's report, deferred by the conductor",
    )
    assert "has no domain" in report.error
    assert dispatcher.retry_failure(ctx, row.id, _no_domain(uuid, file_host))
    assert asked == [uuid]
    failed = db_api.snapshot_get(ctx, row.id)
    assert failed.error == retries.SERVER_DELETED
    assert not db_api.schedule_get(ctx, schedule.id).enabled
    assert db_api.instance_get(ctx, uuid).deleted_at == now


def _no_domain(uuid, host):
    return f"Instance {uuid} has no domain on host {host.host}."


def test_kept_rbd_snapshots_roll_off_through_an_rbd_agent(
    file_host, rbd_host, rbd_snapshot, ceph_client
):
    ctx = file_host.ctx
    layout, taken = rbd_snapshot
    uuid = layout.uuid
    db_api.instance_create_or_update(ctx, uuid, {"keep_after_delete": True})
    now = models.utcnow()
    releaser, cleanup = releaser_at(file_host, now)

    # Deleted on the file-only host: the rbd agent keeps the image.
    assert cleanup.deleted(ctx, db_api.instance_get(ctx, uuid), now)
    assert db_api.instance_get(ctx, uuid).release_state == "done"
    assert db_api.snapshot_get(ctx, taken.id).status == "available"
    nova_images, kept = real_agent.rbd.instance_images(ceph_client, uuid)
    assert (nova_images, len(kept)) == ([], 1)

    # Kept past [conductor] unscheduled_max_age: retention deletes it,
    # through the agent that serves rbd, and the kept image with it.
    later = now + datetime.timedelta(
        days=CONF.conductor.unscheduled_max_age + 5 * 365
    )
    rolling = retention.Retention(
        file_host.compute_api, now=lambda: later, router=releaser.router
    )
    assert taken.id in rolling.roll_off(ctx)
    real_agent.snapshot_status(ctx, taken.id, "deleted")
    assert real_agent.rbd.instance_images(ceph_client, uuid) == ([], [])
