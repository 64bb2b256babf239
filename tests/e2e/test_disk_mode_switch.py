"""The quickstart switched between RBD and file disks, and back.

Each run does what `python3 tools/quickstart up [--rbd]` does, in its
order: retire the demo server of the other mode while the cloud still
runs in it, switch the mini-cloud (nova-compute) and Snapmanager's agent,
then make the new demo server with its one-a-minute policy. Each demo
server is left to take a real snapshot before the next switch, so that
there is something to release. At the end no server of an earlier run
has a schedule left, a snapshot row not deleted, an RBD image (Nova's or
a kept one) or a file in the agent's snapshot store; and each run's demo
server was listed with its policy and its name.

This test holds the mini-cloud in both modes, one after the other, so it
uses the session controllers rather than the module-scoped fixtures.
"""

import importlib
import pathlib

from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from tests.fixtures import snapmanager_cloud
from tests.fixtures.services import wait_until

demo = importlib.import_module(snapmanager_cloud.MODULE_NAME + ".demo")

MODES = ("rbd", "file", "rbd")
# The demo policy takes one snapshot a minute.
SNAPSHOT_WAIT = 180


def _pool_images(ceph_client):
    import rbd

    return rbd.RBD().list(ceph_client)


def _policies(cloud):
    response = cloud.request("demo", "GET", "/v1/snapshot-policies")
    assert response.status_code == 200, response.text
    return response.json()["snapshot_policies"]


def _one_run(minicloud_session, snapmanager_session, ceph, mode):
    stack = snapmanager_session.stack
    demo.retire(stack, minicloud_session.cloud.status(), mode)
    cloud = minicloud_session.acquire(
        mode, ceph=ceph if mode == "rbd" else None
    )
    try:
        snapmanager = snapmanager_session.acquire(
            cloud, ceph=ceph if mode == "rbd" else None
        )
        server_id = demo.ensure(stack, cloud.info)
        with snapmanager.database() as ctx:
            wait_until(
                lambda: db_api.snapshot_list(
                    ctx, instance_uuid=server_id, status="available"
                ),
                timeout=SNAPSHOT_WAIT,
                interval=2,
                what=f"a snapshot of the {mode} demo server",
                describe=snapmanager.log_tails,
            )
        listed = {row["server_id"]: row for row in _policies(snapmanager)}
        assert listed[server_id]["server_name"] == demo.SERVER_NAME
        rows = snapmanager.cli_json(
            "demo", "server", "snapshot-policy", "list"
        )
        assert {(row["Server ID"], row["Server Name"]) for row in rows} >= {
            (server_id, demo.SERVER_NAME)
        }
        return snapmanager, server_id, set(listed)
    finally:
        minicloud_session.release(mode)


def test_switching_modes_leaves_nothing_behind(
    minicloud_session, snapmanager_session, ceph, ceph_client
):
    runs = []
    for mode in MODES:
        snapmanager, server_id, listed = _one_run(
            minicloud_session, snapmanager_session, ceph, mode
        )
        # The servers of earlier runs left the tenant's list.
        assert not listed & {old for _mode, old in runs}
        runs.append((mode, server_id))
    assert len({server_id for _mode, server_id in runs}) == len(MODES)

    store = pathlib.Path(snapmanager.info["dir"]) / "state" / "snapshots"
    with snapmanager.database() as ctx:
        # A server another session's switch caught in the wrong mode is
        # released once an agent serving its disks starts (it says so
        # at start): that takes a pass of the conductor, not a switch.
        wait_until(
            lambda: not db_api.instance_list_releases(ctx),
            timeout=120,
            interval=2,
            what="every earlier demo server released",
            describe=lambda: "\n".join(
                f"{row.uuid}: {row.release_error}"
                for row in db_api.instance_list_releases(ctx)
            ),
        )
        images = _pool_images(ceph_client)
        for mode, old in runs[:-1]:
            row = db_api.instance_get(ctx, old)
            assert row.deleted_at is not None, (mode, old)
            assert row.release_state == models.RELEASE_DONE, (
                mode,
                old,
                row.release_error,
            )
            assert not any(
                schedule.enabled
                for schedule in db_api.schedule_list(ctx, instance_uuid=old)
            )
            left = db_api.snapshot_list(ctx, instance_uuid=old)
            assert left, "the demo server took no snapshot"
            assert {snapshot.status for snapshot in left} == {"deleted"}
            # No window after the delete made a row.
            assert all(s.created_at <= row.deleted_at for s in left)
            # Neither Nova's image nor a kept one (which names the
            # server too).
            assert not [name for name in images if old in name]
            assert not (store / old).exists()
