"""Nova's delete, rebuild and shelve-offload remove ``<uuid>_*`` images
(``RBDDriver.cleanup_volumes``); our snapshots must not make that fail,
wait or leak. Nova's own code runs here, in a child process, against the
test cluster."""

import time

from tests.functional.compute import rbd_helpers as helpers

# The fixtures this module uses, from the shared helpers.
ceph_secret = helpers.ceph_secret
rbd_conf = helpers.rbd_conf
rbd_agent_client = helpers.rbd_agent_client
rbd_backend = helpers.rbd_backend
rbd_instance = helpers.rbd_instance

TWO_DISKS = ("disk", "disk.local")
# Nova's defaults: 12 retries, 5 s apart (about a minute, then a leak).
DEFAULT_INTERVAL = 5


def _snapshot_both_ways(backend, layout):
    """A group snapshot (running, unfrozen) and plain ones (shut off)."""
    instance = layout.instance()
    running = helpers.FakeDomain(active=True)
    group = backend.snapshot(instance, running, 1, "skip")
    plain = backend.snapshot(instance, helpers.FakeDomain(), 2, "skip")
    assert {entry["kind"] for entry in group.disks} == {"group"}
    assert {entry["kind"] for entry in plain.disks} == {"user"}
    return {1: group, 2: plain}


def test_nova_cannot_delete_an_image_left_in_a_group(
    rbd_backend, rbd_instance, ceph, ceph_client
):
    """Why group membership lasts only as long as the group snapshot."""
    import rbd

    layout = rbd_instance()
    group_name = f"snapmanager-{layout.uuid}"
    rbd.RBD().group_create(ceph_client, group_name)
    rbd.Group(ceph_client, group_name).add_image(ceph_client, layout.image())

    failed = helpers.NovaCleanup(ceph, layout.uuid, retries=2, interval=1)
    outcome = failed.run()
    # EMLINK is not among the errors Nova retries on: the delete fails.
    assert "errno 31" in outcome["error"]
    assert helpers.instance_images(ceph_client, layout.uuid)[0]

    rbd_backend.release(layout.uuid, keep=False)
    outcome = helpers.NovaCleanup(ceph, layout.uuid).run()
    assert outcome["error"] is None
    assert helpers.instance_images(ceph_client, layout.uuid) == ([], [])


def test_without_release_nova_gives_up_and_the_image_leaks(
    rbd_backend, rbd_instance, ceph, ceph_client
):
    layout = rbd_instance()
    rbd_backend.snapshot(layout.instance(), helpers.FakeDomain(), 1, "skip")
    outcome = helpers.NovaCleanup(
        ceph, layout.uuid, retries=3, interval=1
    ).run()
    print(f"\nNova cleanup without release (3 x 1 s): {outcome}")
    # No error, no image removed: the leak Nova's log barely mentions.
    assert outcome["error"] is None
    assert outcome["elapsed"] >= 2
    assert helpers.instance_images(ceph_client, layout.uuid)[0] == [
        layout.image()
    ]
    assert helpers.snapshots(ceph_client, layout.image()) == ["snapmanager-1"]


def test_release_lets_nova_delete_as_fast_as_without_snapshots(
    rbd_backend, rbd_instance, ceph, ceph_client
):
    baseline = rbd_instance(TWO_DISKS)
    plain = helpers.NovaCleanup(ceph, baseline.uuid).run()

    layout = rbd_instance(TWO_DISKS)
    _snapshot_both_ways(rbd_backend, layout)
    nova = helpers.NovaCleanup(ceph, layout.uuid)  # Nova's defaults
    started = time.monotonic()
    assert rbd_backend.release(layout.uuid, keep=False) == [1, 2]
    released = time.monotonic() - started
    outcome = nova.run()
    print(
        f"\nNova cleanup, 2 disks: no snapshots {plain['elapsed']:.3f} s; "
        f"release {released:.3f} s then cleanup {outcome['elapsed']:.3f} s "
        f"(retries {outcome['retries']} x {outcome['interval']} s)"
    )
    assert plain["error"] is None and outcome["error"] is None
    assert outcome["interval"] == DEFAULT_INTERVAL
    # First try: no retry interval was waited.
    assert outcome["elapsed"] < plain["elapsed"] + 1
    assert helpers.instance_images(ceph_client, layout.uuid) == ([], [])
    assert helpers.group_state(ceph_client, layout.uuid) is None
    assert rbd_backend.list_indexes(layout.uuid) == []


def test_release_with_keep_moves_snapshots_out_of_novas_sight(
    rbd_backend, rbd_instance, ceph, ceph_client
):
    import rbd

    baseline = rbd_instance(TWO_DISKS)
    plain = helpers.NovaCleanup(ceph, baseline.uuid).run()

    layout = rbd_instance(TWO_DISKS)
    # A config drive image: no snapshot of ours, Nova's to remove.
    config = layout.image("disk.config")
    rbd.RBD().create(ceph_client, config, 1024 * 1024, old_format=False)
    taken = _snapshot_both_ways(rbd_backend, layout)
    nova = helpers.NovaCleanup(ceph, layout.uuid)
    started = time.monotonic()
    assert rbd_backend.release(layout.uuid, keep=True) == [1, 2]
    released = time.monotonic() - started
    kept = sorted(
        f"snapmanager-kept-{layout.uuid}-2_{name}" for name in TWO_DISKS
    )
    assert helpers.instance_images(ceph_client, layout.uuid) == (
        [config],
        kept,
    )
    outcome = nova.run()
    print(
        f"\nNova cleanup, 2 disks: no snapshots {plain['elapsed']:.3f} s; "
        f"release(keep) {released:.3f} s then cleanup "
        f"{outcome['elapsed']:.3f} s"
    )
    assert plain["error"] is None and outcome["error"] is None
    assert outcome["elapsed"] < plain["elapsed"] + 1
    assert helpers.instance_images(ceph_client, layout.uuid) == ([], kept)
    assert rbd_backend.list_indexes(layout.uuid) == [1, 2]

    # A rebuild: Nova makes new images under the old names.
    for name in TWO_DISKS:
        rbd.RBD().create(
            ceph_client,
            layout.image(name),
            helpers.DISK_SIZE,
            old_format=False,
            features=helpers.nova_features(),
        )
    instance = layout.instance()
    third = rbd_backend.snapshot(instance, helpers.FakeDomain(), 3, "skip")
    assert rbd_backend.list_indexes(layout.uuid) == [1, 2, 3]
    # Restorable all the same, into the new images (copied in place:
    # test_rbd_kept_restore.py), and the new snapshot by rollback.
    rbd_backend.restore(instance, helpers.FakeDomain(), 1, taken[1].disks)
    rbd_backend.restore(instance, helpers.FakeDomain(), 3, third.disks)

    # Kept snapshots are deleted like any other; the last one takes its
    # image along, and the group goes with its last snapshot.
    rbd_backend.delete(layout.uuid, 1, taken[1].disks)
    assert helpers.instance_images(ceph_client, layout.uuid)[1] == kept
    assert helpers.group_state(ceph_client, layout.uuid) is None
    rbd_backend.delete(layout.uuid, 2, taken[2].disks)
    assert helpers.instance_images(ceph_client, layout.uuid) == (
        sorted(layout.images),
        [],
    )
    assert rbd_backend.list_indexes(layout.uuid) == [3]

    # Kept again (a second rebuild): a new, distinct generation.
    assert rbd_backend.release(layout.uuid, keep=True) == [3]
    assert helpers.instance_images(ceph_client, layout.uuid)[1] == sorted(
        f"snapmanager-kept-{layout.uuid}-3_{name}" for name in TWO_DISKS
    )


def test_release_without_keep_while_nova_retries(
    rbd_backend, rbd_instance, ceph, ceph_client
):
    """A late release still lets Nova's next retry succeed.

    Counted in Nova's tries, not timed: how long a retry takes is for
    benchmarks/ to measure, and a busy machine stretches it anyway.
    """
    layout = rbd_instance(TWO_DISKS)
    _snapshot_both_ways(rbd_backend, layout)
    nova = helpers.NovaCleanup(ceph, layout.uuid, retries=12, interval=2)
    nova.start()
    # Nova's first try (at once) has met our snapshots...
    refused = nova.wait_for_refusal()
    # ... and the release comes after it, before Nova gives up.
    rbd_backend.release(layout.uuid, keep=False)
    outcome = nova.result()
    print(f"\nNova cleanup with a release after its first try: {outcome}")
    assert outcome["error"] is None
    assert refused in layout.images
    # The refused image took a retry (or more, on a slow machine) and
    # then went; none used up Nova's retries, which would leak it.
    assert 2 <= outcome["attempts"][refused] < outcome["retries"]
    assert helpers.instance_images(ceph_client, layout.uuid) == ([], [])


def test_release_is_idempotent_and_ignores_instances_without_snapshots(
    rbd_backend, rbd_instance, ceph_client
):
    layout = rbd_instance()
    assert rbd_backend.release(layout.uuid, keep=True) == []
    assert rbd_backend.release(layout.uuid, keep=False) == []
    assert helpers.instance_images(ceph_client, layout.uuid) == (
        [layout.image()],
        [],
    )
    rbd_backend.snapshot(layout.instance(), helpers.FakeDomain(), 1, "skip")
    assert rbd_backend.release(layout.uuid, keep=True) == [1]
    assert rbd_backend.release(layout.uuid, keep=True) == []
    assert rbd_backend.list_indexes(layout.uuid) == [1]
