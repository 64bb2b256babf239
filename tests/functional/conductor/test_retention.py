"""Retention with a real conductor and a real agent, on real storage.

The schedule clock runs in this process with an injected time (a
conductor process cannot be time-travelled) and the real compute RPC API;
the conductor process records the agent's results and applies retention,
casting deletes to the agent, which removes the snapshot store's files or
the RBD snapshots. Windows are in 2030 so that the conductor process's
own clock, on real time, never finds them due.
"""

import datetime

from snapmanager_nova.compute import rpcapi as compute_rpcapi
from snapmanager_nova.conductor import clock as clock_mod
from snapmanager_nova.conductor import retention
from snapmanager_nova.db import api as db_api
from tests.fixtures.services import wait_until
from tests.functional.conductor import real_agent
from tests.functional.conductor.real_agent import utc

ceph_secret = real_agent.rbd.ceph_secret

WINDOWS = [utc(2030, 1, day, 2, 0) for day in (1, 2, 3)]


# The module's agents, one per backend, and an instance on each.
private_bus = real_agent.private_bus
agent_host = real_agent.agent_host
instance = real_agent.instance


def take(agent_host, window):
    """One tick of the clock at ``window``; the snapshot once available."""
    clock = clock_mod.ScheduleClock(
        compute_rpcapi.ComputeAPI(),
        now=lambda: window + datetime.timedelta(seconds=30),
    )
    (dispatch,) = clock.tick(agent_host.ctx)
    return real_agent.snapshot_status(
        agent_host.ctx, dispatch.snapshot_id, "available"
    )


def test_keep_two_deletes_the_oldest_from_db_and_storage(agent_host, instance):
    ctx = agent_host.ctx
    uuid, backend, gone = instance
    db_api.schedule_create(
        ctx,
        {
            "instance_uuid": uuid,
            "family": "daily",
            "spec": "daily@02:00",
            "retention": {"keep_count": 2},
            "next_run_at": WINDOWS[0],
        },
    )
    first, second = (take(agent_host, window) for window in WINDOWS[:2])
    assert agent_host.stored(uuid, backend) == [
        first.snapshot_index,
        second.snapshot_index,
    ]
    third = take(agent_host, WINDOWS[2])

    # The conductor applied retention on the third success.
    deleted = real_agent.snapshot_status(ctx, first.id, "deleted")
    assert deleted.deleted_at is not None
    assert [
        db_api.snapshot_get(ctx, row.id).status for row in (second, third)
    ] == ["available", "available"]
    assert gone(first.snapshot_index)
    assert not gone(second.snapshot_index)
    assert agent_host.stored(uuid, backend) == [
        second.snapshot_index,
        third.snapshot_index,
    ]

    # Nova deletes the server, which keeps its snapshots for a while;
    # 30 days after the newest they roll off, the newest too.
    db_api.instance_create_or_update(ctx, uuid, {"keep_after_delete": True})
    db_api.instance_mark_deleted(ctx, uuid, WINDOWS[2])
    keeper = retention.Retention(agent_host.compute_api)
    keeper.now = lambda: WINDOWS[2] + datetime.timedelta(days=29)
    assert keeper.roll_off(ctx) == []
    keeper.now = lambda: WINDOWS[2] + datetime.timedelta(days=31)
    assert sorted(keeper.roll_off(ctx)) == sorted([second.id, third.id])
    for row in (second, third):
        real_agent.snapshot_status(ctx, row.id, "deleted")
    wait_until(
        lambda: agent_host.stored(uuid, backend) == [],
        what="the agent's storage empty",
    )
    assert gone(second.snapshot_index) and gone(third.snapshot_index)
