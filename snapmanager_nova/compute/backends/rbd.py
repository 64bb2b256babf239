"""Snapshots of Nova's Ceph RBD disks (``[libvirt] images_type = rbd``).

Nova keeps an instance's disks as images ``<pool>/<uuid>_disk`` (and
``_disk.local``...). A snapshot here is an RBD snapshot of every one of
them, named ``<snapshot_prefix><index>`` (:mod:`.rbd_names`); nothing is
copied, so taking one costs milliseconds whatever the disk size.
Numbers below were measured on the single-OSD test cluster with QEMU
(TCG) holding the images open (``python -m benchmarks.compute``, see
benchmarks/README.md).

Consistency across disks
    With the guest frozen (qemu-guest-agent) each image gets a plain
    snapshot, one after the other. A shut-off domain writes nothing, and a
    single disk is consistent on its own (librbd has QEMU's librbd, the
    lock owner, flush and take the snapshot): plain snapshots again. A
    running guest with several disks that cannot be frozen gets an RBD
    *group* snapshot: librbd takes the exclusive lock of every image
    (QEMU's librbd flushes and hands it over), so the guest's writes wait
    while all the per-image snapshots are made: one crash-consistent point
    across the disks. Raw cost with QEMU running, for 1/2/4 disks: plain
    snapshots 20/40-60/80-100 ms (one after the other), group snapshot
    21/24-30/40-60 ms plus 3/7/14 ms to join and leave the group.

    Images are members of the instance's group (``<prefix><uuid>``) only
    around that call. Measured: ``rbd remove`` of a group member fails
    with EMLINK, which Nova's delete (``RBDDriver._destroy_volume``) does
    not catch, so a permanent member would make Nova's instance delete,
    rebuild and shelve-offload fail. A group snapshot outlives the
    membership: it stays attached to the images (librbd's ``.group.*``
    snapshots, by image id, so renames keep them too) and is removed or
    rolled back through the group. For a rollback the images join the
    group again until it is done: librbd since 17.2 (ceph PR 58074, in
    quincy, reef and squid) refuses to roll back a group whose members
    differ from the snapshot's. The group stays while it has snapshots.

Crash safety
    Before anything is snapshotted, the instance's intent object
    (``<prefix>intent-<uuid>``, a RADOS object in the pool, not an image)
    gets the omap key ``<prefix>pending-<index>``, removed once the set is
    complete. For a one-disk instance that is one write, sent while the
    image opens: it sets the key unless the key is there already (an
    earlier attempt's), and the snapshot waits for its answer. The
    images themselves are not written: their metadata goes through the
    exclusive lock the guest's QEMU holds. Listings skip
    snapshots with an intent (or a metadata mark of an older agent);
    recovery discards them on all the instance's images and clears group
    memberships; a retry of the index removes what the earlier attempt
    left, once no call of it is still running. A set is never judged by which
    disks carry the snapshot: an instance's disks change over its life (a
    resize can add ``disk.local``), so a complete old snapshot may
    legitimately be missing on a newer disk.

Restore
    Rollback in place (``rollback_to_snap``), so ``<uuid>_disk`` stays the
    very image Nova knows, with the same id, parent and features. A 1 GiB
    image with 128 MiB data and 32 MiB changed since the snapshot rolls
    back in 20-40 ms; clone-and-swap (protect, clone, two renames) takes
    50-60 ms before the clone's flatten (200-380 ms). With object-map and
    fast-diff (Nova's default features) rollback follows the changed
    objects, not the virtual size (1/10/50 GiB: 6/6/8 ms); without them it
    grows with the virtual size (17/164/684 ms). Clone-and-swap would make
    Nova's image a clone of ours (Nova reads ``parent_info`` to place its
    own snapshots) and strand our other snapshots on an image Nova no
    longer names: rollback is always used on Nova's images. A running
    QEMU hands the exclusive lock over on request, so nothing in librbd
    stops a rollback under a live guest: images another client watches
    are refused. A disk
    Nova grew after the snapshot (resize) is grown back after the
    rollback, which restores the snapshot's size.

    A snapshot kept across a rebuild or shelve-offload (below) is on an
    image Nova no longer names: its data is copied into Nova's current
    image of the same disk, in place (zeroes, then the snapshot's
    extents, parent included), so that image also stays Nova's own. A
    copy cut short by a crash is done again by the restore's retry.

Size accounting
    ``size_bytes`` is the data the snapshot holds beyond the image's parent
    (the Glance base), from ``diff_iterate`` over whole RADOS objects, as
    ``rbd du`` reports with fast-diff; each disk's provisioned size is in
    its entry. It is not measured on the snapshot's path: :meth:`snapshot`
    returns it as None and :meth:`measure` gives it afterwards (the
    manager measures a batched snapshot once it has no other work).
    ``delete`` returns an estimate of the space it frees: the objects
    changed both before and after the snapshot. librbd (Pacific)
    diffs only from user-namespace snapshots, so group snapshots report 0.

Nova's delete, rebuild and shelve-offload
    Nova removes ``<uuid>_*`` images, retrying while they have snapshots
    (12 x 5 s by default) and then leaking them silently. :meth:`release`
    must run when Nova starts such an operation, before Nova lists the
    images: it removes our snapshots, or with ``keep`` renames the images
    that carry them out of Nova's namespace
    (``<prefix>kept-<uuid>-<n>_disk``), and Nova's first ``rbd remove``
    succeeds: 2 disks took 0.05-0.08 s to clean up after a release, as
    without snapshots (0.08-0.10 s). Removing snapshots while Nova is
    already retrying is fine (its next retry succeeds); renaming then is
    not: Nova's next retry fails with ImageNotFound and its operation
    errors, so the caller must not delay a release with ``keep``.
"""

import contextlib
import json
import time

import libvirt
from oslo_log import log as logging

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova.compute import calls
from snapmanager_nova.compute import domain
from snapmanager_nova.compute import guest
from snapmanager_nova.compute import rbd_client
from snapmanager_nova.compute.backends import base
from snapmanager_nova.compute.backends import rbd_images
from snapmanager_nova.compute.backends import rbd_names

CONF = sm_conf.CONF
LOG = logging.getLogger(__name__)

KIND_USER = rbd_images.KIND_USER
KIND_GROUP = rbd_images.KIND_GROUP


def _test_crash_point(stage):
    """Where crash-safety tests kill the agent; does nothing otherwise.

    Stages: ``image-snapshotted`` (after each plain image snapshot),
    ``group-member-added`` (after each image joins the group),
    ``group-snapshotted`` (group snapshot made, members not yet removed)
    ``rollback-starting`` (a restore's rollback about to be called) and
    ``kept-copy-starting`` (a restore's copy from a kept image, per disk).
    """


class RbdBackend(base.Backend):
    """Snapshots of an instance's RBD images, in the images themselves."""

    name = domain.BACKEND_RBD
    # A snapshot id from Ceph's monitor and a few OSD writes per image;
    # the monitor gives one map update to the requests that arrive
    # together, so snapshots in flight together cost Ceph less each.
    waits_on_storage = True

    def __init__(self, client=None, connect=None):
        """``client`` is the agent's :class:`RbdClient` (default: the
        process's shared one); ``connect`` returns a libvirt connection,
        used at start to thaw guests (default: ``[compute] libvirt_uri``).
        """
        self._client = client or rbd_client.get_client()
        self._connect = connect or (
            lambda: libvirt.open(CONF.compute.libvirt_uri)
        )
        self.names = rbd_names.SnapshotNames(CONF.rbd.snapshot_prefix)

    # Snapshot

    def snapshot(self, instance, dom, index, quiesce):
        guest.validate_policy(quiesce)
        disks = self._rbd_disks(instance)
        # Calls that overrun their deadline are tracked per instance, so
        # that a retry can wait for them (_clean_earlier_attempt).
        with calls.scope(instance.uuid):
            return self._snapshot(instance, dom, disks, index, quiesce)

    def _snapshot(self, instance, dom, disks, index, quiesce):
        if len(disks) == 1:
            result = self._snapshot_one(
                instance, dom, disks[0], index, quiesce
            )
            if result is not None:
                return result
        states, pending = self._read_for_snapshot(instance, disks)
        if index in pending:
            states = self._clean_earlier_attempt(instance.uuid, disks, index)
        for state in states:
            if index in state.indexes:
                raise exception.SnapshotIndexInUse(
                    instance_uuid=instance.uuid, index=index
                )
        running = self._libvirt("domain state", dom.isActive)
        self._mark_pending(instance.uuid, disks, index)
        try:
            kind, quiesced, pause, created = self._take(
                instance, dom, disks, index, quiesce, running
            )
            entries = [
                self._entry(instance.uuid, disk, index, created)
                for disk in disks
            ]
        except BaseException as exc:
            # Nothing half made may stay: a snapshot that failed is gone.
            self._discard_after_failure(instance.uuid, disks, index, exc)
            raise
        # Last: until the intent goes, recovery would discard the
        # snapshot and listings do not count it.
        self._clear_pending(instance.uuid, disks, index)
        LOG.debug(
            "Snapshot %d of %s: %s, quiesced=%s, pause %.3f s",
            index,
            instance.uuid,
            kind,
            quiesced,
            pause,
        )
        return base.SnapshotResult(
            disks=entries,
            # Measured later, off the snapshot's path (:meth:`measure`).
            size_bytes=None,
            quiesced=quiesced,
            pause_seconds=pause,
        )

    def _snapshot_one(self, instance, dom, disk, index, quiesce):
        """A one-disk instance's snapshot in one call: the intent is
        claimed while the image opens, and the checks the general path
        makes before the intent (index not in use, no older agent's
        mark) are made in the open that takes the snapshot; a snapshot
        that cannot be taken there takes the intent back unchanged.
        None: left to the general path (an earlier attempt at ``index``
        to clean up first, or an older agent's mark)."""
        uuid = instance.uuid
        try:
            started = time.monotonic()
            with guest.frozen(
                dom,
                uuid,
                quiesce,
                CONF.compute.call_timeout,
                agent_channel=instance.has_agent_channel,
            ) as quiesced:
                refused, created = self._ceph(
                    f"snapshot {disk.pool}/{disk.image}@"
                    f"{self.names.snapshot(index)}",
                    rbd_images.snapshot_claimed,
                    self._client.ioctx(disk.pool),
                    disk.image,
                    self.names,
                    self.names.group(uuid),
                    index,
                    self.names.intent_object(uuid),
                    json.dumps([f"{disk.pool}/{disk.image}"]),
                    # The intent's removal and the report need not wait
                    # for the handle's close (its lock and watch).
                    close=self._client.close_later,
                )
                if created is not None:
                    _test_crash_point("image-snapshotted")
            pause = time.monotonic() - started if quiesced else 0.0
        except BaseException as exc:
            self._discard_after_failure(uuid, [disk], index, exc)
            raise
        if refused == rbd_images.CLAIMED:
            return None  # nothing written: the general path cleans up
        if refused is not None:
            # Nothing was made: the intent goes as it came.
            self._forget_intent(disk.pool, uuid, index)
            if refused == rbd_images.IN_USE:
                raise exception.SnapshotIndexInUse(
                    instance_uuid=uuid, index=index
                )
            if refused == rbd_images.MISSING:
                raise exception.UnsupportedDisks(
                    instance_uuid=uuid,
                    reason=f"RBD image {disk.pool}/{disk.image} does not "
                    "exist",
                )
            return None  # an older agent's mark: the general path
        # Last: until the intent goes, recovery would discard the
        # snapshot and listings do not count it.
        self._clear_pending(uuid, [disk], index)
        return base.SnapshotResult(
            disks=[self._entry(uuid, disk, index, {disk.image: created})],
            size_bytes=None,
            quiesced=quiesced,
            pause_seconds=pause,
        )

    def _read_for_snapshot(self, instance, disks):
        """(each disk's ImageState, the indexes being taken): one bounded
        call per pool, reading the images and the intent object."""
        by_image = {}
        pending = set()
        for pool in sorted({disk.pool for disk in disks}):
            names = [disk.image for disk in disks if disk.pool == pool]
            states, keys = self._ceph(
                f"read images of {instance.uuid} in {pool}",
                rbd_images.read_images,
                self._client.ioctx(pool),
                pool,
                self.names,
                names,
                self.names.group(instance.uuid),
                self.names.intent_object(instance.uuid),
            )
            for name, state in zip(names, states, strict=True):
                if state is None:
                    raise exception.UnsupportedDisks(
                        instance_uuid=instance.uuid,
                        reason=f"RBD image {pool}/{name} does not exist",
                    )
                by_image[(pool, name)] = state
                pending |= state.pending
            pending |= {self.names.parse_pending_key(key) for key in keys}
        states = [by_image[(disk.pool, disk.image)] for disk in disks]
        return states, pending - {None}

    def _take(self, instance, dom, disks, index, quiesce, running):
        name = self.names.snapshot(index)
        started = time.monotonic()
        with guest.frozen(
            dom,
            instance.uuid,
            quiesce,
            CONF.compute.call_timeout,
            agent_channel=instance.has_agent_channel,
        ) as quiesced:
            created = {}
            if quiesced or not running or len(disks) == 1:
                kind = KIND_USER
                for disk in disks:
                    # One read-write open for the snapshot, in one call.
                    created[disk.image] = self._ceph(
                        f"snapshot {disk.pool}/{disk.image}@{name}",
                        rbd_images.snapshot_image,
                        self._client.ioctx(disk.pool),
                        disk.image,
                        name,
                    )
                    _test_crash_point("image-snapshotted")
            else:
                kind = KIND_GROUP
                self._group_snapshot(instance.uuid, disks, name)
        # Freeze to thaw, both calls included: what the guest's I/O felt.
        pause = time.monotonic() - started if quiesced else 0.0
        return kind, quiesced, pause, created

    def _group_snapshot(self, instance_uuid, disks, name):
        pool = disks[0].pool
        if any(disk.pool != pool for disk in disks):
            raise exception.UnsupportedDisks(
                instance_uuid=instance_uuid,
                reason="its RBD disks are in several pools; Nova puts them "
                "all in [libvirt] images_rbd_pool",
            )
        group_name = self.names.group(instance_uuid)
        self._ceph(
            f"create group {group_name}",
            rbd_images.ensure_group,
            self._client.ioctx(pool),
            group_name,
        )
        with self._group_members(pool, instance_uuid, disks) as group:
            self._ceph(
                f"snapshot group {group_name}@{name}", group.create_snap, name
            )
            _test_crash_point("group-snapshotted")

    @contextlib.contextmanager
    def _group_members(self, pool, instance_uuid, disks):
        """The instance's group, opened, with ``disks`` as its members for
        the duration of the block, and none after it (even on failure: a
        permanent member breaks Nova's delete). A crash in between is
        cleaned up by recovery, which empties the group."""
        group_name = self.names.group(instance_uuid)
        ioctx = self._client.ioctx(pool)
        # Left over by a crash that recovery has not seen yet.
        self._leave_group(pool, instance_uuid)
        group = self._ceph(
            f"open group {group_name}",
            rbd_images.open_group,
            ioctx,
            group_name,
        )
        try:
            for disk in disks:
                self._ceph(
                    f"add {disk.image} to group {group_name}",
                    group.add_image,
                    ioctx,
                    disk.image,
                )
                _test_crash_point("group-member-added")
            yield group
        finally:
            self._leave_group(pool, instance_uuid)

    def _entry(self, instance_uuid, disk, index, created):
        """The JSON-able record of one disk's part of snapshot ``index``.

        ``created``: {image: provisioned size} of the plain snapshots
        just made; a group snapshot's part is read back from the image.
        ``used_bytes`` is None until :meth:`measure`.
        """
        if disk.image in created:
            size, kind = created[disk.image], KIND_USER
        else:
            state = self._read_image(instance_uuid, disk.pool, disk.image)
            snap = state.snap(index) if state else None
            if snap is None:
                raise exception.BackendError(
                    operation=f"snapshot {disk.pool}/{disk.image}",
                    origin="rbd",
                    origin_code=None,
                    detail=f"snapshot {index} missing right after creation",
                )
            size, kind = state.size, snap.kind
        entry = {
            "target": disk.target,
            "pool": disk.pool,
            "image": disk.image,
            "snapshot": self.names.snapshot(index),
            "kind": kind,
            "size": size,
            "used_bytes": None,
        }
        if kind == KIND_GROUP:
            entry["group"] = self.names.group(instance_uuid)
        return entry

    def measure(self, instance_uuid, index, disks):
        """(``disks`` with each entry's ``used_bytes``, their sum) of a
        snapshot already reported: the data it holds beyond the image's
        parent, by ``diff_iterate`` over whole objects (fast-diff reads
        the object map). Done after the snapshot is reported, so that
        walking an image never delays taking the next snapshot.
        """
        measured = []
        with calls.scope(instance_uuid):
            for entry in disks:
                if entry["kind"] == KIND_USER:
                    # Opened at the snapshot by its name: one open.
                    _size, used = self._client.data_call(
                        f"measure {entry['pool']}/{entry['image']}@"
                        f"{entry['snapshot']}",
                        rbd_images.measure_snapshot,
                        self._client.ioctx(entry["pool"]),
                        entry["image"],
                        entry["snapshot"],
                    )
                    measured.append(dict(entry, used_bytes=used))
                    continue
                state = self._read_image(
                    instance_uuid, entry["pool"], entry["image"]
                )
                snap = state.snap(index) if state else None
                if snap is None:
                    # Deleted meanwhile: nothing left to measure.
                    raise exception.SnapshotNotFound(
                        snapshot_id=f"{index} of {instance_uuid}"
                    )
                _size, used = self._client.data_call(
                    f"measure {entry['pool']}/{entry['image']}@{snap.name}",
                    rbd_images.measure,
                    self._client.ioctx(entry["pool"]),
                    entry["image"],
                    snap.id,
                )
                measured.append(dict(entry, used_bytes=used))
        return measured, sum(entry["used_bytes"] for entry in measured)

    # Restore

    def restore(self, instance, dom, index, disks):
        uuid = instance.uuid
        current = self._rbd_disks(instance)
        states = {
            disk.image: self._existing_image(instance, disk)
            for disk in current
        }
        if index in self._pending(uuid, current, states.values()):
            raise exception.SnapshotNotRestorable(
                instance_uuid=uuid,
                index=index,
                reason="it was never completed",
            )
        covered = [disk for disk in current if states[disk.image].snap(index)]
        if not covered:
            sources = self._kept_sources(uuid, current, index)
            if sources:
                return self._restore_kept(instance, index, disks, sources)
        wanted = {entry["image"] for entry in disks} or {
            disk.image for disk in covered
        }
        missing = wanted - {disk.image for disk in covered}
        if missing or not covered:
            raise exception.SnapshotNotRestorable(
                instance_uuid=uuid,
                index=index,
                reason=self._why_not_here(uuid, index, missing or wanted),
            )
        for disk in current:
            if disk not in covered:
                # A disk added after the snapshot (a resize that brought an
                # ephemeral disk) had no data then: it is left as it is.
                LOG.warning(
                    "Snapshot %d of %s does not cover %s; left unchanged",
                    index,
                    uuid,
                    disk.image,
                )
        sizes = {disk.image: self._check_not_in_use(disk) for disk in covered}
        kinds = {states[disk.image].snap(index).kind for disk in covered}
        started = time.monotonic()
        name = self.names.snapshot(index)
        if kinds == {KIND_GROUP}:
            # librbd 17.2 and later (and 16.2's last fixes) refuse a group
            # rollback unless the group's members are the snapshot's
            # images; ours left the group right after the snapshot, so
            # they join it again for the rollback, and leave after it.
            with self._group_members(covered[0].pool, uuid, covered) as group:
                _test_crash_point("rollback-starting")
                self._client.data_call(
                    f"roll back group {self.names.group(uuid)} to {name}",
                    group.rollback_to_snap,
                    name,
                )
        else:
            for disk in covered:
                with self._client.image(disk.pool, disk.image) as image:
                    _test_crash_point("rollback-starting")
                    self._client.data_call(
                        f"roll back {disk.pool}/{disk.image} to {name}",
                        image.rollback_to_snap,
                        name,
                    )
        for disk in covered:
            self._grow_back(disk, sizes[disk.image])
        LOG.info(
            "Rolled %s back to snapshot %d (%s) in %.3f s",
            ", ".join(disk.image for disk in covered),
            index,
            "/".join(sorted(kinds)),
            time.monotonic() - started,
        )

    def _kept_holding(self, instance_uuid, pool, index):
        """States of the instance's kept images in ``pool`` that hold
        snapshot ``index``."""
        states = (
            self._read_image(instance_uuid, pool, name)
            for name in self._instance_images(pool, instance_uuid)[1]
        )
        return [state for state in states if state and state.snap(index)]

    def _kept_sources(self, instance_uuid, current, index):
        """{Nova's current disk: the kept image's state} for the disks
        whose snapshot ``index`` is on a kept image of the same disk
        (``disk``, ``disk.local``): Nova replaced them after it."""
        sources = {}
        for pool in sorted({disk.pool for disk in current}):
            for state in self._kept_holding(instance_uuid, pool, index):
                disk_name = self.names.parse_kept_image(state.name)[2]
                for disk in current:
                    if disk.pool == pool and disk.name == disk_name:
                        sources[disk] = state
        return sources

    def _restore_kept(self, instance, index, disks, sources):
        """Restore a snapshot Nova's rebuild or shelve-offload left on
        kept images: its data is copied into Nova's current images of the
        same disks (rbd_images.copy_snapshot); the kept images and their
        snapshots stay as they were, restorable again."""
        uuid = instance.uuid
        wanted = {entry["image"] for entry in disks}
        missing = wanted - {disk.image for disk in sources}
        if missing:
            raise exception.SnapshotNotRestorable(
                instance_uuid=uuid,
                index=index,
                reason=f"not found on {', '.join(sorted(missing))}",
            )
        for disk in sources:
            self._check_not_in_use(disk)
        started = time.monotonic()
        copied = 0
        for disk, state in sorted(sources.items(), key=lambda i: i[0].image):
            _test_crash_point("kept-copy-starting")
            copied += self._client.data_call(
                f"copy {state.pool}/{state.name} at snapshot {index} into "
                f"{disk.pool}/{disk.image}",
                rbd_images.copy_snapshot,
                self._client.ioctx(disk.pool),
                state.name,
                state.snap(index).id,
                disk.image,
            )
        LOG.info(
            "Restored snapshot %d of %s from kept images into %s: "
            "%d bytes in %.3f s",
            index,
            uuid,
            ", ".join(sorted(disk.image for disk in sources)),
            copied,
            time.monotonic() - started,
        )

    def _check_not_in_use(self, disk):
        """Refuse to roll back an image a guest has open; return its size.

        Rolling back takes the exclusive lock, which a running QEMU hands
        over on request (measured): only the watchers show that a guest
        still uses the image, here or on another host after a migration.
        """
        me = self._client.instance_id()
        with self._client.image(disk.pool, disk.image) as image:
            watchers = self._ceph(
                f"watchers of {disk.pool}/{disk.image}",
                rbd_images.watchers,
                image,
            )
            size = self._ceph(f"size of {disk.image}", image.size)
        others = [w for w in watchers if w["id"] != me]
        if others:
            raise exception.ImageInUse(
                pool=disk.pool,
                image=disk.image,
                watchers=", ".join(w["addr"] for w in others),
            )
        return size

    def _grow_back(self, disk, size):
        with self._client.image(disk.pool, disk.image) as image:
            rolled_back = self._ceph(f"size of {disk.image}", image.size)
            if rolled_back < size:
                # Nova grows disks on resize and never shrinks them: the
                # flavor's size stays, the guest finds its old data in it.
                self._ceph(
                    f"resize {disk.pool}/{disk.image}", image.resize, size
                )

    def _why_not_here(self, instance_uuid, index, images):
        pool = CONF.rbd.pool
        kept = self._kept_holding(instance_uuid, pool, index)
        if kept:
            return (
                f"it is on {pool}/{kept[0].name}: the instance's disks "
                "were replaced (rebuild, shelve offload) after it was taken"
            )
        return f"not found on {', '.join(sorted(images))}"

    # Delete

    def delete(self, instance_uuid, index, disks):
        pools = {entry["pool"] for entry in disks if entry.get("pool")}
        pools.add(CONF.rbd.pool)
        freed = 0
        for pool in sorted(pools):
            nova, kept = self._instance_images(pool, instance_uuid)
            states = self._read_images(instance_uuid, pool, nova + kept)
            freed += sum(
                self._estimate_freed(state, index) for state in states
            )
            self._discard(instance_uuid, pool, index, states)
            for state in states:
                if state.name in kept:
                    self._remove_spent_kept_image(instance_uuid, state)
            self._remove_group_if_unused(pool, instance_uuid)
        return freed

    def _estimate_freed(self, state, index):
        snap = state.snap(index)
        if snap is None:
            return 0
        position = state.snaps.index(snap)
        before = state.snaps[position - 1] if position else None
        after = (
            state.snaps[position + 1]
            if position + 1 < len(state.snaps)
            else None
        )
        if snap.namespace != rbd_images.NS_USER or (
            before is not None and before.namespace != rbd_images.NS_USER
        ):
            return 0  # librbd diffs from user-namespace snapshots only
        return self._client.data_call(
            f"estimate space of {state.name}@{snap.name}",
            rbd_images.exclusive_bytes,
            self._client.ioctx(state.pool),
            state,
            before,
            snap,
            after,
        )

    def _remove_spent_kept_image(self, instance_uuid, state):
        fresh = self._read_image(instance_uuid, state.pool, state.name)
        if fresh is None or fresh.indexes:
            return
        # Its last snapshot of ours is gone: nothing is kept any more, and
        # nobody else knows the image. Snapshots others left (Nova's
        # nova-resize) went out of use with the instance.
        try:
            self._ceph(
                f"remove kept image {state.pool}/{state.name}",
                rbd_images.remove_image,
                self._client.ioctx(state.pool),
                fresh,
            )
        except exception.BackendError as exc:
            # The snapshot itself is gone, which is what was asked; the
            # image (a clone's parent, say) is retried by the next delete
            # or left to the operator, and says so in the log.
            LOG.warning(
                "Kept image %s/%s has no snapshot left but cannot be "
                "removed: %s",
                state.pool,
                state.name,
                exc,
            )
            return
        LOG.info("Removed kept image %s/%s", state.pool, state.name)

    # Listing

    def list_indexes(self, instance_uuid):
        pool = CONF.rbd.pool
        nova, kept = self._instance_images(pool, instance_uuid)
        indexes, pending = set(), self._intents(pool, instance_uuid)
        for state in self._read_images(instance_uuid, pool, nova + kept):
            indexes |= state.indexes
            pending |= state.pending
        incomplete = {
            index
            for index, complete in self._group_snapshots(
                pool, instance_uuid
            ).items()
            if not complete
        }
        return sorted(indexes - pending - incomplete)

    # Recovery

    def recover(self, instances):
        actions = []
        conn = None
        if instances:
            try:
                conn = self._libvirt("libvirt connect", self._connect)
            except exception.BackendError as exc:
                # Storage recovery does not need libvirt: go on without
                # thawing rather than leave partial snapshots behind.
                LOG.error("Cannot reach libvirt to thaw guests: %s", exc)
        for instance in instances:
            try:
                actions.extend(self._recover_instance(conn, instance))
            except exception.SnapmanagerException as exc:
                # One unreachable image must not keep the agent from
                # starting or from recovering the other instances.
                LOG.error("Recovery of %s failed: %s", instance.uuid, exc)
        # The connection is the agent's shared one (LibvirtConnection):
        # it stays open for everything that runs after recovery.
        return actions

    def _recover_instance(self, conn, instance):
        uuid = instance.uuid
        thawed = self._thaw(conn, uuid) if conn is not None else 0
        discarded = []
        pools = {disk.pool for disk in instance.disks} | {CONF.rbd.pool}
        for pool in sorted(pools):
            left = self._leave_group(pool, uuid)
            if left:
                LOG.warning(
                    "Removed %s from group %s, left by an interrupted "
                    "snapshot",
                    ", ".join(left),
                    self.names.group(uuid),
                )
            nova, kept = self._instance_images(pool, uuid)
            states = self._read_images(uuid, pool, nova + kept)
            unfinished = set().union(*(state.pending for state in states))
            unfinished |= self._intents(pool, uuid)
            unfinished |= {
                index
                for index, complete in self._group_snapshots(
                    pool, uuid
                ).items()
                if not complete
            }
            for index in sorted(unfinished):
                self._discard(uuid, pool, index, states)
                discarded.append(index)
            self._remove_group_if_unused(pool, uuid)
            self._drop_intents(pool, uuid)
        thaw_note = f"guest was frozen: thawed {thawed} filesystem(s)"
        detail = "partial snapshot removed from every disk"
        if thawed:
            detail = f"{detail}; {thaw_note}"
        actions = [
            base.RecoveryAction(
                instance_uuid=uuid,
                snapshot_index=index,
                action="discarded",
                detail=detail,
            )
            for index in discarded
        ]
        if thawed and not discarded:
            # The crash came after a snapshot was complete and before the
            # thaw: report it against that (newest) snapshot, which stays.
            existing = self.list_indexes(uuid)
            actions.append(
                base.RecoveryAction(
                    instance_uuid=uuid,
                    snapshot_index=existing[-1] if existing else 0,
                    action="thawed",
                    detail=thaw_note,
                )
            )
        return actions

    def _thaw(self, conn, instance_uuid):
        """Thaw a running guest; the number of filesystems thawed.

        A crash between freeze and thaw would leave the guest frozen for
        ever. Thawing a guest that is not frozen does nothing, so every
        running domain gets a thaw at start.
        """
        try:
            dom = self._libvirt(
                "domain lookup", conn.lookupByUUIDString, instance_uuid
            )
            if not self._libvirt("domain state", dom.isActive):
                return 0
            return self._libvirt("fsThaw", dom.fsThaw) or 0
        except exception.BackendError as exc:
            if guest.cannot_freeze(exc):
                return 0  # no agent: it cannot have been frozen by us
            if exc.kwargs.get("origin_code") == libvirt.VIR_ERR_NO_DOMAIN:
                return 0  # gone since the manager listed it
            LOG.warning("Cannot thaw %s: %s", instance_uuid, exc)
            return 0

    # Nova's delete, rebuild and shelve-offload

    def release(self, instance_uuid, keep):
        """Let Nova remove the instance's images on its first try.

        Call when Nova starts deleting, rebuilding or shelve-offloading
        the instance, before Nova's driver lists ``<uuid>_*`` images. Not
        for an evacuation: Nova keeps the images on shared storage.

        ``keep=False`` removes our snapshots of Nova's images. ``keep=True``
        renames the images that carry our snapshots to kept images, which
        Nova does not see; their snapshots stay listed, deletable and
        restorable (copied into the disks Nova makes next), and the
        delete of the last one removes the image. Snapshots not complete
        are discarded either way. Idempotent. Returns the indexes removed
        (``keep=False``) or kept (``keep=True``).
        """
        pool = CONF.rbd.pool
        self._leave_group(pool, instance_uuid)
        nova, _kept = self._instance_images(pool, instance_uuid)
        states = self._read_images(instance_uuid, pool, nova)
        pending = set().union(*(s.pending for s in states))
        for index in sorted(pending | self._intents(pool, instance_uuid)):
            self._discard(instance_uuid, pool, index, states)
            states = self._read_images(instance_uuid, pool, nova)
        self._drop_intents(pool, instance_uuid)
        indexes = sorted(set().union(*(state.indexes for state in states)))
        if not keep:
            for index in indexes:
                self._discard(instance_uuid, pool, index, states)
            self._remove_group_if_unused(pool, instance_uuid)
            LOG.info(
                "Released %s for Nova: snapshots %s removed",
                instance_uuid,
                indexes,
            )
            return indexes
        if not indexes:
            return []
        generation = indexes[-1]
        ioctx = self._client.ioctx(pool)
        for state in states:
            if not state.indexes:
                continue  # disk.config, disk.swap: Nova's to remove
            disk_name = state.name[
                len(self.names.nova_prefix(instance_uuid)) :
            ]
            kept_name = self.names.kept_image(
                instance_uuid, generation, disk_name
            )
            self._ceph(
                f"rename {pool}/{state.name} to {kept_name}",
                rbd_images.rename,
                ioctx,
                state.name,
                kept_name,
            )
            LOG.info(
                "Kept %s/%s as %s (snapshots %s)",
                pool,
                state.name,
                kept_name,
                sorted(state.indexes),
            )
        return indexes

    # Building blocks

    def _ceph(self, operation, func, *args, **kwargs):
        return self._client.call(operation, func, *args, **kwargs)

    @staticmethod
    def _libvirt(operation, func, *args):
        return calls.bounded(operation, CONF.compute.call_timeout, func, *args)

    @staticmethod
    def _rbd_disks(instance):
        disks = [d for d in instance.disks if isinstance(d, domain.RbdDisk)]
        if not disks or len(disks) != len(instance.disks):
            raise exception.UnsupportedDisks(
                instance_uuid=instance.uuid,
                reason="the RBD backend needs all its disks to be RBD images",
            )
        return disks

    def _existing_image(self, instance, disk):
        state = self._read_image(instance.uuid, disk.pool, disk.image)
        if state is None:
            raise exception.UnsupportedDisks(
                instance_uuid=instance.uuid,
                reason=f"RBD image {disk.pool}/{disk.image} does not exist",
            )
        return state

    def _instance_images(self, pool, instance_uuid):
        """(Nova's images, kept images) of the instance in ``pool``."""
        names = self._ceph(
            f"list images in {pool}",
            rbd_images.list_images,
            self._client.ioctx(pool),
        )
        return self.names.instance_images(instance_uuid, names)

    def _read_image(self, instance_uuid, pool, name):
        return self._ceph(
            f"read {pool}/{name}",
            rbd_images.read_image,
            self._client.ioctx(pool),
            pool,
            name,
            self.names,
            self.names.group(instance_uuid),
        )

    def _read_images(self, instance_uuid, pool, names):
        states = (self._read_image(instance_uuid, pool, n) for n in names)
        return [state for state in states if state is not None]

    def _group_snapshots(self, pool, instance_uuid):
        """{index: complete} of the instance's group snapshots."""
        snaps = self._ceph(
            f"list group {self.names.group(instance_uuid)}",
            rbd_images.group_snaps,
            self._client.ioctx(pool),
            self.names.group(instance_uuid),
        )
        found = {}
        for name, state in snaps:
            index = self.names.parse_snapshot(name)
            if index is not None:
                found[index] = state == rbd_images.GROUP_SNAP_COMPLETE
        return found

    def _leave_group(self, pool, instance_uuid):
        """Take every image out of the instance's group; their names."""
        return self._ceph(
            f"empty group {self.names.group(instance_uuid)}",
            rbd_images.empty_group,
            self._client.ioctx(pool),
            self.names.group(instance_uuid),
        )

    def _remove_group_if_unused(self, pool, instance_uuid):
        self._ceph(
            f"remove group {self.names.group(instance_uuid)}",
            rbd_images.remove_group_if_unused,
            self._client.ioctx(pool),
            self.names.group(instance_uuid),
        )

    # Crash intent: the instance's intent object (one per pool of its
    # disks), never the images: writing an image's metadata goes through
    # its exclusive lock, which QEMU holds (librbd hands the request to
    # QEMU's librbd, or takes the lock when QEMU has not written yet).

    def _mark_pending(self, instance_uuid, disks, index):
        key = self.names.pending_key(index)
        value = json.dumps([f"{d.pool}/{d.image}" for d in disks])
        name = self.names.intent_object(instance_uuid)
        for pool in sorted({disk.pool for disk in disks}):
            self._ceph(
                f"record intent {key} of {instance_uuid}",
                rbd_images.intent_set,
                self._client.ioctx(pool),
                name,
                key,
                value,
            )

    def _clear_pending(self, instance_uuid, disks, index):
        for pool in sorted({disk.pool for disk in disks}):
            self._forget_intent(pool, instance_uuid, index)

    def _forget_intent(self, pool, instance_uuid, index):
        key = self.names.pending_key(index)
        self._ceph(
            f"forget intent {key} of {instance_uuid}",
            rbd_images.intent_remove,
            self._client.ioctx(pool),
            self.names.intent_object(instance_uuid),
            key,
        )

    def _intents(self, pool, instance_uuid):
        """Indexes the instance's intent object in ``pool`` records."""
        keys = self._ceph(
            f"read intent of {instance_uuid}",
            rbd_images.intent_read,
            self._client.ioctx(pool),
            self.names.intent_object(instance_uuid),
        )
        parsed = {self.names.parse_pending_key(key) for key in keys}
        return parsed - {None}

    def _drop_intents(self, pool, instance_uuid):
        self._ceph(
            f"drop intent object of {instance_uuid}",
            rbd_images.intent_drop,
            self._client.ioctx(pool),
            self.names.intent_object(instance_uuid),
        )

    def _pending(self, instance_uuid, disks, states):
        """Indexes being taken: the intent objects, and the image
        metadata marks older agents set."""
        pending = set().union(*(state.pending for state in states))
        for pool in sorted({disk.pool for disk in disks}):
            pending |= self._intents(pool, instance_uuid)
        return pending

    def _clean_earlier_attempt(self, instance_uuid, disks, index):
        """Remove what an earlier attempt at snapshot ``index`` left (it
        timed out, or failed and could not clean up); the images' states
        after it.

        A call of that attempt still running in librbd could create
        something after the clean-up: wait for it first, within the call
        deadline, and fail (to be retried again) if it is still running.
        """
        if not calls.settle(instance_uuid, CONF.compute.call_timeout):
            raise exception.BackendTimeout(
                operation=f"earlier attempt at snapshot {index}",
                timeout=CONF.compute.call_timeout,
                origin="timeout",
                origin_code=None,
                detail="a call of it is still running",
            )
        LOG.warning(
            "Snapshot %d of %s was tried before and did not finish: "
            "removing what that attempt left and taking it again",
            index,
            instance_uuid,
        )
        states = []
        for pool in sorted({disk.pool for disk in disks}):
            self._leave_group(pool, instance_uuid)
            nova, kept = self._instance_images(pool, instance_uuid)
            pool_states = self._read_images(instance_uuid, pool, nova + kept)
            self._discard(instance_uuid, pool, index, pool_states)
        for disk in disks:
            states.append(
                self._read_image(instance_uuid, disk.pool, disk.image)
            )
        return [state for state in states if state is not None]

    def _discard(self, instance_uuid, pool, index, states):
        """Remove every trace of snapshot ``index`` in ``pool``.

        Idempotent: the group snapshot (whatever its state), the plain
        snapshots on every image of the instance, an older agent's marks
        in their metadata, and the intent.
        """
        name = self.names.snapshot(index)
        ioctx = self._client.ioctx(pool)
        self._ceph(
            f"remove group snapshot {name}",
            rbd_images.remove_group_snap,
            ioctx,
            self.names.group(instance_uuid),
            name,
        )
        key = self.names.pending_key(index)
        for state in states:
            self._ceph(
                f"remove {pool}/{state.name}@{name}",
                rbd_images.remove_user_snap,
                ioctx,
                state.name,
                name,
            )
            if index in state.pending:  # an older agent's mark
                self._ceph(
                    f"unmark {state.name}",
                    rbd_images.remove_metadata,
                    ioctx,
                    state.name,
                    key,
                )
        # Last: until it goes, the index is not counted.
        self._forget_intent(pool, instance_uuid, index)

    def _discard_after_failure(self, instance_uuid, disks, index, exc):
        if isinstance(exc, exception.BackendTimeout):
            # The abandoned call may still be running inside librbd and
            # may yet create what a cleanup now would miss. The intent
            # stays: the snapshot is not counted, and a retry of the index
            # (once that call ended), delete() of the index or recovery at
            # the next start removes whatever it left.
            LOG.error(
                "Snapshot %d of %s timed out; its remains are removed by "
                "its retry, its delete or at the next start",
                index,
                instance_uuid,
            )
            return
        try:
            for pool in sorted({disk.pool for disk in disks}):
                self._leave_group(pool, instance_uuid)
                names = [d.image for d in disks if d.pool == pool]
                states = self._read_images(instance_uuid, pool, names)
                self._discard(instance_uuid, pool, index, states)
        except exception.SnapmanagerException:
            # The intent stays where the cleanup failed: recovery
            # finishes it at the agent's next start.
            LOG.exception(
                "Cannot remove the partial snapshot %d of %s",
                index,
                instance_uuid,
            )
