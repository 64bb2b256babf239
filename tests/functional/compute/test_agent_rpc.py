"""The whole path between the services, on real components.

snapmanager-conductor and snapmanager-compute run as processes on the
real RabbitMQ and MariaDB; the agent works on a Nova-like QEMU domain of
the private libvirtd. A due schedule in the database is taken by the
conductor's clock, cast to the agent, snapshotted, and recorded; restore
and delete go through the agent's RPC API and are recorded too.
"""

import datetime
import os

import libvirt
import pytest

from snapmanager_nova import context as sm_context
from snapmanager_nova import exception
from snapmanager_nova.compute import rpcapi as compute_rpcapi
from snapmanager_nova.conductor import restore
from snapmanager_nova.db import api as db_api
from tests.fixtures.services import unique_host
from tests.fixtures.services import wait_until
from tests.functional.compute import nova_like

PROJECT = "project-e2e"


@pytest.fixture(scope="module")
def services(snapmanager_env, nova_host):
    snapmanager_env.write_config(
        {
            "compute": {
                "instances_path": nova_host["instances"],
                "snapshot_store_path": nova_host["store"],
                "libvirt_uri": nova_host["uri"],
            },
            "conductor": {"tick_interval": "1"},
        }
    )
    host = unique_host("compute")
    conductor = snapmanager_env.start("snapmanager-conductor", "conductor-1")
    agent = snapmanager_env.start("snapmanager-compute", host)
    ctx = sm_context.get_admin_context()

    def agent_registered():
        for process in (conductor, agent):
            assert process.poll() is None, snapmanager_env.log_tails()
        return [
            s
            for s in db_api.service_list(ctx, binary="snapmanager-compute")
            if s.host == host
        ]

    wait_until(agent_registered, timeout=60, what="agent heartbeat")
    return host, ctx, conductor


def status_of(ctx, snapshot_id, wanted, timeout=60):
    def check():
        snapshot = db_api.snapshot_get(ctx, snapshot_id)
        assert snapshot.status != "error" or wanted == "error", snapshot.error
        return snapshot if snapshot.status == wanted else None

    return wait_until(check, timeout=timeout, what=f"snapshot {wanted}")


def operation_done(ctx, operation_id):
    def check():
        op = db_api.operation_get(ctx, operation_id)
        return op if op.state in ("succeeded", "failed") else None

    return wait_until(check, timeout=60, what="operation finished")


def restore_at_agent_step(ctx, instance_uuid, snapshot_id):
    """A restore as the conductor's orchestration leaves it when it hands
    the disks to the agent (the server locked and stopped in Nova)."""
    operation = db_api.operation_create(
        ctx,
        {
            "type": "restore",
            "instance_uuid": instance_uuid,
            "project_id": PROJECT,
            "snapshot_id": snapshot_id,
            "step": restore.RESTORE.name,
        },
    )
    db_api.operation_update(ctx, operation.id, {"state": "running"})
    return operation


def test_schedule_snapshot_restore_delete(
    services, snapmanager_env, make_instance
):
    host, ctx, conductor = services
    instance = make_instance()
    disk = instance.path("disk")
    db_api.instance_create_or_update(
        ctx,
        instance.uuid,
        {
            "project_id": PROJECT,
            "host": host,
            "backend": "file",
            "snapshot_enabled": True,
        },
    )
    now = datetime.datetime.now(datetime.UTC)
    schedule = db_api.schedule_create(
        ctx,
        {
            "instance_uuid": instance.uuid,
            "project_id": PROJECT,
            "family": "every",
            "spec": "every@1h",
            "next_run_at": now - datetime.timedelta(seconds=1),
        },
    )

    # The conductor's clock takes the window and the agent snapshots it.
    snapshot = wait_until(
        lambda: db_api.snapshot_list(ctx, instance_uuid=instance.uuid),
        timeout=30,
        what="the clock's snapshot row",
    )[0]
    assert snapshot.schedule_id == schedule.id
    snapshot = status_of(ctx, snapshot.id, "available")
    assert [d["target"] for d in snapshot.disks] == ["vda"]
    assert snapshot.size_bytes > 0
    assert snapshot.backend == "file"
    assert db_api.instance_get(ctx, instance.uuid).committed
    # Nova's view is untouched: the domain runs on Nova's own disk.
    assert instance.sources() == instance.nova_sources()
    assert instance.dom.snapshotNum() == 0

    # The guest writes after the snapshot, then Nova stops the instance.
    instance.hmp_io("disk", "write -P 0xcd 65536 4096")
    instance.dom.destroy()
    assert nova_like.has_pattern(disk, "qcow2", 0xCD, 65536, 4096)

    api = compute_rpcapi.ComputeAPI()
    operation = restore_at_agent_step(ctx, instance.uuid, snapshot.id)
    api.restore_snapshot(
        ctx,
        host,
        operation.id,
        instance.uuid,
        "file",
        snapshot.snapshot_index,
        snapshot.disks,
    )
    done = operation_done(ctx, operation.id)
    # The conductor took the agent's success and went on to start the
    # server; there is no Nova here, so that step is where it stops (the
    # whole orchestration with a real Nova: tests/functional/conductor/
    # test_restore.py and tests/e2e/test_osc.py).
    assert done.step == restore.START.name, (done.step, done.error)
    assert done.state == "failed"
    # The snapshotted bytes are back, the later write is gone, and the
    # chain is Nova's: disk over _base.
    assert nova_like.has_pattern(disk, "qcow2", 0xAB, 65536, 4096)
    chain = nova_like.backing_chain(disk)
    assert chain[0][0] == disk
    assert os.path.dirname(chain[1][0]).endswith("_base")

    # The failed restore holds the server and its snapshot until the
    # tenant retries or abandons it: nothing may delete the snapshot.
    assert db_api.operation_holding(ctx, instance.uuid).id == operation.id
    with pytest.raises(exception.SnapshotInUse):
        db_api.snapshot_update_status(ctx, snapshot.id, "deleting")
    # The tenant abandons it. Abandoning unlocks the server in Nova, which
    # this test has none of: with the conductor stopped, the test records
    # the abandonment's end as the conductor does once Nova has answered.
    conductor.terminate()
    conductor.wait(timeout=30)
    abandon = db_api.operation_take_over_restore(ctx, operation.id, "abandon")
    assert db_api.operation_update_step(
        ctx, abandon.id, None, {"state": "succeeded"}
    )
    assert db_api.operation_holding(ctx, instance.uuid) is None
    # The conductor records the agent's deletion below.
    snapmanager_env.start("snapmanager-conductor", "conductor-1")

    db_api.snapshot_update_status(ctx, snapshot.id, "deleting")
    api.delete_snapshot(
        ctx,
        host,
        snapshot.id,
        instance.uuid,
        "file",
        snapshot.snapshot_index,
        snapshot.disks,
    )
    status_of(ctx, snapshot.id, "deleted")
    assert api.list_snapshots(ctx, host, instance.uuid, "file") == []


def test_restore_of_a_running_instance_is_refused(services, make_instance):
    host, ctx, conductor = services
    instance = make_instance()
    db_api.instance_create_or_update(
        ctx,
        instance.uuid,
        {"project_id": PROJECT, "host": host, "backend": "file"},
    )
    assert instance.dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    operation = restore_at_agent_step(ctx, instance.uuid, None)
    compute_rpcapi.ComputeAPI().restore_snapshot(
        ctx, host, operation.id, instance.uuid, "file", 1, []
    )
    done = operation_done(ctx, operation.id)
    assert done.state == "failed"
    assert "must be shut off" in done.error
