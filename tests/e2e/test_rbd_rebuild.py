"""Nova's rebuild of an RBD-backed server with snapshots, end to end:
the snapshots stay (``[conductor] keep_on_rebuild``, on by default), out
of Nova's way, listed, deletable and restorable (copied into the new
disk), and Nova does what it does without Snapmanager: a new disk for the
rebuilt server.

Shelve-offload takes the same path (the same release on
``instance.shelve_offload.start``:
tests/functional/conductor/test_rebuild_notifications.py, and the
two-host matrix's shelve test in tests/e2e/two_hosts.py).
"""

from snapmanager_nova.db import api as db_api
from tests.e2e import helpers
from tests.e2e import snapshot_lifecycle
from tests.e2e import test_snapshot_lifecycle_rbd

# The fixture this module uses: a Lifecycle on the RBD-backed cloud.
lifecycle = test_snapshot_lifecycle_rbd.lifecycle
USER = snapshot_lifecycle.USER
WORK_WAIT = snapshot_lifecycle.WORK_WAIT
wait_for = snapshot_lifecycle.wait_for


def listed(lifecycle, server_id):
    return [
        (row["ID"], row["Status"])
        for row in lifecycle.cli_json("server", "snapshot", "list", server_id)
    ]


def row_of(lifecycle, snapshot_id):
    with lifecycle.cloud.database() as ctx:
        return db_api.snapshot_get(ctx, snapshot_id)


def delete_by_hand(lifecycle, snapshot_id):
    lifecycle.cloud.cli(
        USER, "server", "snapshot", "delete", snapshot_id, "--wait"
    )


def test_rebuild_keeps_the_snapshots(lifecycle):
    disks = lifecycle.disks
    demo = lifecycle.demo
    (server,) = lifecycle.create_servers("rebuild-keep")
    # Known bytes in the snapshot (written while the server is off: the
    # guests have no OS), then the server runs again.
    lifecycle.stop(server)
    disks.write(server.id, snapshot_lifecycle.SNAPSHOTTED)
    taken = lifecycle.snapshot_now(server)
    demo.compute.start_server(server)
    helpers.wait_status(lifecycle.cloud.minicloud, demo, server, "ACTIVE")
    index = row_of(lifecycle, taken["id"]).snapshot_index
    old_disk = disks.identity(server.id)

    demo.compute.rebuild_server(
        server, image=lifecycle.cloud.minicloud.image_id
    )
    rebuilt = wait_for(
        lambda: (
            (s := demo.compute.get_server(server.id)).status
            in ("ACTIVE", "ERROR")
            and s.task_state is None
            and disks.identity(server.id) != old_disk
            and s
        ),
        WORK_WAIT,
        f"{server.id} rebuilt on a new disk",
        lambda: str(demo.compute.get_server(server.id)),
    )
    # Nova's rebuild went as without Snapmanager: a new disk, no error.
    assert rebuilt.status == "ACTIVE", rebuilt.fault
    assert not snapshot_lifecycle.nova_rbd_retries(lifecycle.cloud, server.id)
    helpers.check_disk_is_rbd_image(lifecycle.cloud.minicloud, server.id)

    # The snapshot is still listed and stored, on a kept image.
    assert listed(lifecycle, server.id) == [(taken["id"], "available")]
    assert disks.stored_indexes(server.id) == {index}
    kept = [
        name
        for name in disks.leftovers(server.id)
        if not disks.names.is_nova_image(server.id, name)
    ]
    assert kept, disks.leftovers(server.id)
    # Restorable: copied into the rebuilt server's new disk, which stays
    # the very image Nova made.
    new_disk = disks.identity(server.id)
    assert not disks.holds(server.id, snapshot_lifecycle.SNAPSHOTTED)
    operation = lifecycle.cli_json(
        "server",
        "snapshot",
        "restore",
        taken["id"],
        "--wait",
        timeout=snapshot_lifecycle.RESTORE_TIMEOUT,
    )
    assert (operation["state"], operation["progress"]) == (
        "succeeded",
        100,
    ), operation
    assert disks.holds(server.id, snapshot_lifecycle.SNAPSHOTTED)
    assert disks.identity(server.id) == new_disk
    after = demo.compute.get_server(server.id)
    assert (after.status, after.is_locked) == ("ACTIVE", False)
    assert listed(lifecycle, server.id) == [(taken["id"], "available")]

    # Deleted by hand, it takes its kept image along.
    delete_by_hand(lifecycle, taken["id"])
    assert disks.leftovers(server.id) == [f"{server.id}_disk"]
    assert listed(lifecycle, server.id) == []
