"""Reconciliation against a real agent's real storage.

The agent and a conductor run as processes; the reconciliation pass runs
in this process with its time moved past ``[conductor]
operation_timeout`` (a process cannot be time-travelled), asking the
real agent what it has. The lost work is made for real: the agent takes
snapshots whose results reach no row, and rows are left in flight that no
agent ever worked on.
"""

import datetime
import uuid as uuid_lib

from snapmanager_nova import conf as sm_conf
from snapmanager_nova.compute import guest
from snapmanager_nova.conductor import reconcile
from snapmanager_nova.conductor import retries
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from tests.fixtures.services import wait_until
from tests.functional.conductor import real_agent

CONF = sm_conf.CONF
ceph_secret = real_agent.rbd.ceph_secret


# The module's agents, one per backend, and an instance on each.
private_bus = real_agent.private_bus
agent_host = real_agent.agent_host
instance = real_agent.instance


def new_row(ctx, uuid, backend, schedule=None):
    index = db_api.instance_allocate_snapshot_index(ctx, uuid)
    return db_api.snapshot_create(
        ctx,
        {
            "instance_uuid": uuid,
            "snapshot_index": index,
            "backend": backend,
            "schedule_id": schedule.id if schedule else None,
            "window_start": real_agent.utc(2030, 1, index, 2, 0),
        },
    )


def test_stuck_rows_and_an_orphan_are_resolved(agent_host, instance):
    ctx = agent_host.ctx
    api = agent_host.compute_api
    uuid, backend, gone = instance
    schedule = db_api.schedule_create(
        ctx,
        {"instance_uuid": uuid, "family": "daily", "spec": "daily@02:00"},
    )

    # The agent takes a snapshot whose result reaches no row (reported
    # for an id nobody has): its row stays "creating".
    lost_result = new_row(ctx, uuid, backend, schedule)
    api.create_snapshot(
        ctx,
        agent_host.host,
        uuid,
        str(uuid_lib.uuid4()),
        lost_result.snapshot_index,
        guest.QUIESCE_PREFER,
    )
    # An orphan: a snapshot in storage that no row has at all.
    orphan_index = db_api.instance_allocate_snapshot_index(ctx, uuid)
    api.create_snapshot(
        ctx,
        agent_host.host,
        uuid,
        str(uuid_lib.uuid4()),
        orphan_index,
        guest.QUIESCE_PREFER,
    )
    # A window recorded and never cast (its conductor died).
    never_cast = new_row(ctx, uuid, backend, schedule)
    # A delete that never reached the agent, of a snapshot it never had.
    lost_delete = new_row(ctx, uuid, backend, schedule)
    db_api.snapshot_update_status(ctx, lost_delete.id, "available")
    db_api.snapshot_update_status(ctx, lost_delete.id, "deleting")
    wait_until(
        lambda: (
            agent_host.stored(uuid, backend)
            == [lost_result.snapshot_index, orphan_index]
        ),
        what="both snapshots in storage",
    )

    timeout = datetime.timedelta(seconds=CONF.conductor.operation_timeout)
    later = models.utcnow() + timeout + datetime.timedelta(seconds=1)
    dispatcher = retries.SnapshotDispatcher(api, now=lambda: later)
    reconciler = reconcile.Reconciler(api, dispatcher, now=lambda: later)
    assert sorted(reconciler.run(ctx)) == sorted(
        [
            (reconcile.DISCARD, lost_result.id),
            (reconcile.RETRY, never_cast.id),
            (reconcile.MARK_DELETED, lost_delete.id),
        ]
    )
    discarded = real_agent.snapshot_status(ctx, lost_result.id, "deleted")
    assert "result was lost" in discarded.error
    assert db_api.snapshot_get(ctx, lost_delete.id).status == "deleted"
    assert gone(lost_result.snapshot_index)
    # The orphan is only noted so far.
    assert agent_host.stored(uuid, backend) == [orphan_index]

    # The lost window is tried again, and this time the agent takes it.
    dispatcher.now = lambda: later + timeout
    assert dispatcher.retry_due(ctx) == [never_cast.id]
    taken = real_agent.snapshot_status(ctx, never_cast.id, "available")
    assert taken.attempts == 1

    # Unknown for a whole timeout: deleted, with a row that says why.
    reconciler.now = lambda: later + timeout
    ((kind, orphan_id),) = reconciler.run(ctx)
    assert kind == "orphan"
    orphan = real_agent.snapshot_status(ctx, orphan_id, "deleted")
    assert orphan.snapshot_index == orphan_index
    assert "no record" in orphan.error
    assert gone(orphan_index)
    assert agent_host.stored(uuid, backend) == [never_cast.snapshot_index]
    # Nothing left to settle.
    assert reconciler.run(ctx) == []
