"""Retries with a real conductor: an agent that is down, then comes up.

The conductor process runs on real time with short retry delays; its own
clock takes the due window, finds the agent of the instance's host down
(it never heartbeated), and puts the snapshot back with a backoff; its
retry task casts it again once the agent is up, and the real agent takes
the snapshot of a real domain.
"""

import datetime

import pytest

from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from tests.fixtures.services import wait_until
from tests.functional.conductor import real_agent

private_bus = real_agent.private_bus


@pytest.fixture(scope="module")
def agent_host(private_bus, snapmanager_env, tmp_path_factory, libvirt_env):
    # Enough tries at 1-2 s to outlast an agent's start-up many times.
    return real_agent.start(
        snapmanager_env,
        tmp_path_factory,
        libvirt_env,
        conductor={
            "retry_base_delay": "1",
            "retry_max_delay": "2",
            "max_retries": "60",
        },
    )


def test_a_snapshot_waits_for_a_down_agent_and_succeeds_when_it_is_up(
    agent_host, libvirt_conn, domain_name
):
    ctx = agent_host.ctx
    uuid = real_agent.file_instance(agent_host, libvirt_conn, domain_name)
    agent_host.record(uuid, "file")
    db_api.schedule_create(
        ctx,
        {
            "instance_uuid": uuid,
            "family": "every",
            "spec": "every@1h",
            "next_run_at": models.utcnow() - datetime.timedelta(seconds=1),
        },
    )

    def retried():
        rows = db_api.snapshot_list(ctx, instance_uuid=uuid)
        return rows if rows and rows[0].attempts >= 2 else None

    (waiting,) = wait_until(retried, what="two tries of the snapshot")
    assert waiting.status == "creating"
    assert f"the compute agent on {agent_host.host} is down" in waiting.error
    # Nothing was taken meanwhile: the store has nothing of it.
    assert not (agent_host.store / uuid).exists()

    agent_host.start_agent()
    done = real_agent.snapshot_status(ctx, waiting.id, "available")
    assert done.error is None
    assert done.attempts >= 2
    assert done.snapshot_index == waiting.snapshot_index
    assert agent_host.stored(uuid, "file") == [done.snapshot_index]
    assert agent_host.store_dir(uuid, done.snapshot_index).is_dir()
