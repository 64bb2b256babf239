"""Snapshots of file-backed (qcow2) instances into Snapmanager's store.

Nova keeps such an instance's disks as ``<instances_path>/<uuid>/disk``
(and ``disk.local``...): qcow2 files over a file of its image cache,
``<instances_path>/_base/<name>`` (:mod:`.nova_files`). A snapshot copies
each Nova ``disk`` file (everything the guest wrote since Nova created
it) into the store (:mod:`.store`) as a qcow2 delta over the store's own
copy of the base, taken once and shared, because Nova deletes unused
bases and a snapshot may outlive both the instance and its image.

How a running domain's disks are caught at one instant
(``[compute] file_snapshot_mode``):

``external``
    One external disk-only snapshot over all the instance's disks
    (atomic, quiesced when the policy and the guest allow) puts an
    overlay on each (:mod:`.overlay`); Nova's ``disk`` files are now
    frozen and are copied into the store; an active, shallow block commit
    per disk merges the overlay back and pivots (:mod:`.merge`), so the
    domain runs on Nova's ``disk`` again and the chain is exactly Nova's
    ``disk -> _base``. Between the overlay and the pivot the domain's XML
    names a file Nova does not know: ``pause_seconds`` is that window.
``backup``
    libvirt's push backup (:mod:`.backup`) copies each disk as it was at
    the job's start while the guest keeps writing to Nova's files: the
    XML is never wrong. The copy is a full image of the disk, not a
    delta over the base, so it takes more space in the store.
``incremental``
    The same push backup, plus a checkpoint (:mod:`.checkpoints`): the
    first snapshot is full, each next one copies only the clusters the
    guest wrote since the previous one, into a qcow2 over the previous
    stored file (a chain in the store, see :mod:`.store`). When change
    tracking was lost the snapshot is a full one and says why
    (``full_reason``). Deleting a snapshot in the middle of a chain
    merges it into its child.

A shut-off domain has no writer: its files are copied as they are, and
the copy is thrown away if the domain starts or a file changes meanwhile.

Every step is safe to interrupt with kill -9 (:mod:`.crashpoints` names
the steps the tests interrupt). The store only counts a snapshot once it
is complete (:mod:`.store`), overlays are named after their snapshot
index, and :meth:`Qcow2Backend.recover` finishes any commit left half
done (online, or offline with ``qemu-img commit`` for a domain that
stopped meanwhile), so no guest write made into an overlay is ever lost.

Root-only file work goes through :mod:`snapmanager_nova.privsep.fs`;
every libvirt and qemu-img call is bounded by
:func:`snapmanager_nova.compute.calls.bounded`.
"""

import datetime
import os
import time

import libvirt
from oslo_log import log as logging
from oslo_utils import excutils

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova import qemu_img
from snapmanager_nova.compute import connection
from snapmanager_nova.compute import domain
from snapmanager_nova.compute import guest
from snapmanager_nova.compute.backends import backup
from snapmanager_nova.compute.backends import base
from snapmanager_nova.compute.backends import checkpoints
from snapmanager_nova.compute.backends import crashpoints
from snapmanager_nova.compute.backends import file_restore
from snapmanager_nova.compute.backends import merge
from snapmanager_nova.compute.backends import nova_files
from snapmanager_nova.compute.backends import overlay
from snapmanager_nova.compute.backends import store as store_mod
from snapmanager_nova.privsep import fs

CONF = sm_conf.CONF
LOG = logging.getLogger(__name__)

MODE_EXTERNAL = "external"
MODE_BACKUP = "backup"
MODE_INCREMENTAL = "incremental"
MODE_OFFLINE = "offline"

# A stored disk is either a qcow2 delta over the store's copy of its
# base, or a self-contained image (a raw disk's copy, a backup).
LAYOUT_DELTA = file_restore.LAYOUT_DELTA
LAYOUT_FULL = file_restore.LAYOUT_FULL


class Qcow2Backend(base.Backend):
    """Snapshots of instances whose disks are files under instances_path."""

    name = domain.BACKEND_FILE

    def __init__(self, connect=None):
        """``connect`` returns a libvirt connection; recovery uses it to
        find the domains of the instances it is given (default: open
        ``[compute] libvirt_uri``)."""
        self._libvirt = connection.LibvirtConnection(connect)

    @property
    def store(self):
        return store_mod.Store(CONF.compute.snapshot_store_path)

    # -- Snapshot -------------------------------------------------------

    def snapshot(self, instance, dom, index, quiesce):
        guest.validate_policy(quiesce)
        if self._recover_domain(instance.uuid, dom):
            # An earlier operation's commit failed and left an overlay:
            # it is merged now, so look at the disks again.
            instance = nova_files.describe(dom)
        layers = [
            nova_files.layer(instance.uuid, disk)
            for disk in nova_files.nova_disks(instance)
        ]
        if not nova_files.call("domain state", dom.isActive):
            return self._snapshot_offline(instance, dom, index, layers)
        xml = nova_files.call("domain XML", dom.XMLDesc, 0)
        targets = [disk.target for disk in overlay.domain_disks(xml)]
        self._check_no_block_job(instance, dom, layers)
        mode = CONF.compute.file_snapshot_mode
        if mode in (MODE_BACKUP, MODE_INCREMENTAL):
            # Dirty bitmaps live in qcow2 files only: flat raw disks
            # (Nova's use_cow_images=False) get full backups.
            chainable = all(layer.disk.format == "qcow2" for layer in layers)
            if (
                backup.supported(dom)
                and mode == MODE_INCREMENTAL
                and chainable
            ):
                return self._snapshot_incremental(
                    instance, dom, index, quiesce, layers, targets
                )
            if backup.supported(dom):
                return self._snapshot_backup(
                    instance, dom, index, quiesce, layers, targets
                )
            LOG.warning(
                "libvirt-python here has no backup API; snapshotting %s "
                "with an external snapshot instead",
                instance.uuid,
            )
        return self._snapshot_external(
            instance, dom, index, quiesce, layers, targets
        )

    def _snapshot_external(
        self, instance, dom, index, quiesce, layers, targets
    ):
        partial = self._begin(instance.uuid, index, layers, MODE_EXTERNAL)
        overlays = {
            layer.disk.target: nova_files.overlay_path(layer.disk, index)
            for layer in layers
        }
        pending = [
            (layer.disk.target, overlays[layer.disk.target], layer.disk.path)
            for layer in layers
        ]
        published = False
        try:
            started = time.monotonic()
            try:
                quiesced = overlay.create(
                    dom,
                    overlay.snapshot_xml(overlays, targets),
                    instance.uuid,
                    quiesce,
                    CONF.compute.call_timeout,
                )
            except Exception:
                with excutils.save_and_reraise_exception():
                    self._remove_unused(instance.uuid, dom, overlays.values())
            try:
                crashpoints.reached("overlay-created")
                disks = self._copy_layers(
                    instance.uuid, index, partial, layers
                )
                size = self._publish(
                    instance.uuid,
                    index,
                    partial,
                    MODE_EXTERNAL,
                    quiesced,
                    disks,
                )
                published = True
            finally:
                # Whatever happened to the copy, the overlay must not
                # outlive the operation.
                merge.finish(instance.uuid, dom, pending)
                pause = time.monotonic() - started
        except Exception:
            with excutils.save_and_reraise_exception():
                self._undo_store(instance.uuid, index, partial, published)
        LOG.info(
            "Snapshot %s of %s: %d disk(s), %d bytes, overlay for %.3f s",
            index,
            instance.uuid,
            len(disks),
            size,
            pause,
        )
        return base.SnapshotResult(
            disks=disks,
            size_bytes=size,
            quiesced=quiesced,
            pause_seconds=pause,
        )

    def _snapshot_backup(self, instance, dom, index, quiesce, layers, targets):
        partial = self._begin(instance.uuid, index, layers, MODE_BACKUP)
        files = {
            layer.disk.target: os.path.join(partial, layer.disk.name)
            for layer in layers
        }
        timeout = CONF.compute.call_timeout
        try:
            started = time.monotonic()
            with guest.frozen(
                dom,
                instance.uuid,
                quiesce,
                timeout,
                agent_channel=instance.has_agent_channel,
            ) as quiesced:
                backup.begin(dom, backup.backup_xml(files, targets), timeout)
            # The guest only notices the freeze; the disks never move.
            pause = time.monotonic() - started if quiesced else 0.0
            crashpoints.reached("backup-started")
            disks = self._finish_backup(
                instance.uuid, index, dom, layers, files
            )
            size = self._publish(
                instance.uuid, index, partial, MODE_BACKUP, quiesced, disks
            )
        except Exception:
            with excutils.save_and_reraise_exception():
                self._abort_backup(dom, partial)
                self._undo_store(instance.uuid, index, partial, False)
        return base.SnapshotResult(
            disks=disks,
            size_bytes=size,
            quiesced=quiesced,
            pause_seconds=pause,
        )

    def _finish_backup(self, instance_uuid, index, dom, layers, files):
        """Wait for the backup job; the stored disks' descriptions."""
        timeout = CONF.compute.call_timeout
        total = CONF.compute.copy_timeout
        backup.wait(dom, time.monotonic() + total, timeout, total)
        disks = []
        for layer in layers:
            path = files[layer.disk.target]
            # libvirtd wrote the file: hand it to the agent.
            nova_files.call(
                f"adopt {layer.disk.name}",
                fs.adopt_in_store,
                path,
                os.geteuid(),
                os.getegid(),
            )
            disks.append(
                self._stored(
                    instance_uuid, index, layer, path, "qcow2", LAYOUT_FULL
                )
            )
        return disks

    def _snapshot_incremental(
        self, instance, dom, index, quiesce, layers, targets
    ):
        timeout = CONF.compute.call_timeout
        tracked = [layer.disk.target for layer in layers]
        partial = self._begin(instance.uuid, index, layers, MODE_INCREMENTAL)
        files = {
            layer.disk.target: os.path.join(partial, layer.disk.name)
            for layer in layers
        }
        checkpoint = checkpoints.name(index)
        since = None
        try:
            # A bitmap of this index left by an earlier attempt (a retry
            # after a timeout) would make the checkpoint's creation fail.
            checkpoints.remove(dom, checkpoint, tracked, targets, timeout)
            parent, full_reason = self._chain_parent(
                instance.uuid, dom, layers, tracked, targets
            )
            if parent is not None:
                for layer in layers:
                    # The target reads as the parent until QEMU writes
                    # the changed clusters into it.
                    nova_files.call(
                        f"create {layer.disk.name}",
                        qemu_img.create_over,
                        files[layer.disk.target],
                        os.path.join("..", str(parent), layer.disk.name),
                        "qcow2",
                    )
            started = time.monotonic()
            with guest.frozen(
                dom,
                instance.uuid,
                quiesce,
                timeout,
                agent_channel=instance.has_agent_channel,
            ) as quiesced:
                if parent is not None:
                    # The parent's checkpoint record is defined again, if
                    # its bitmap is intact, as late as possible (the guest
                    # is frozen already): from here to the job's start it
                    # is on the domain, and it must go whatever happens.
                    since = checkpoints.name(parent)
                    problem = checkpoints.restore_record(
                        dom, since, tracked, targets, timeout
                    )
                    if problem:
                        self._lost_tracking(
                            dom, since, files, tracked, targets
                        )
                        since = parent = None
                        full_reason = f"change tracking was lost ({problem})"
                backup.begin(
                    dom,
                    backup.backup_xml(files, targets, incremental=since),
                    timeout,
                    checkpoint_xml=checkpoints.checkpoint_xml(
                        checkpoint, tracked, targets
                    ),
                    reuse=since is not None,
                )
            pause = time.monotonic() - started if quiesced else 0.0
            crashpoints.reached("checkpoint-created")
            # Nova must never find our records on its domain: they go
            # now, the bitmaps stay in QEMU.
            records = [checkpoint] + ([since] if since else [])
            records = self._forget_during_job(dom, records)
            crashpoints.reached("backup-started")
            disks = self._finish_backup(
                instance.uuid, index, dom, layers, files
            )
            for name in records:
                checkpoints.forget(dom, name, timeout)
            for record in disks:
                record["parent"] = parent
                record["full_reason"] = full_reason
            size = self._publish(
                instance.uuid,
                index,
                partial,
                MODE_INCREMENTAL,
                quiesced,
                disks,
                extra={
                    "parent": parent,
                    "checkpoint": checkpoint,
                    "full_reason": full_reason,
                },
            )
        except Exception:
            with excutils.save_and_reraise_exception():
                if since:
                    # First: a record on a domain Nova just stopped would
                    # fail Nova's undefine.
                    self._quietly(checkpoints.forget, dom, since)
                self._abort_backup(dom, partial)
                self._undo_store(instance.uuid, index, partial, False)
                self._quietly(
                    checkpoints.remove, dom, checkpoint, tracked, targets
                )
        if since:
            # The new bitmap records every write from now on; the old
            # one is of no more use.
            self._quietly(checkpoints.remove, dom, since, tracked, targets)
        crashpoints.reached("incremental-published")
        if full_reason:
            LOG.warning(
                "Snapshot %s of %s is a full copy: %s",
                index,
                instance.uuid,
                full_reason,
            )
        LOG.info(
            "Snapshot %s of %s: %d disk(s), %d bytes stored (over %s)",
            index,
            instance.uuid,
            len(disks),
            size,
            parent,
        )
        return base.SnapshotResult(
            disks=disks,
            size_bytes=size,
            quiesced=quiesced,
            pause_seconds=pause,
        )

    @staticmethod
    def _forget_during_job(dom, records):
        """Forget checkpoint records now; return those libvirt kept.

        libvirt 9.0 lets a record go while the backup job runs, so none
        stays while data is copied; should a libvirt refuse, they go as
        soon as the job has ended.
        """
        kept = []
        for name in records:
            try:
                checkpoints.forget(dom, name, CONF.compute.call_timeout)
            except exception.BackendError as exc:
                LOG.warning(
                    "Checkpoint record %s stays until the backup job ends: %s",
                    name,
                    exc,
                )
                kept.append(name)
        return kept

    def _chain_parent(self, instance_uuid, dom, layers, tracked, targets):
        """(index of the parent, None), or (None, why a full copy).

        From the store alone; whether the parent's bitmap is intact is
        checked right before the job.
        """
        latest = self.store.latest(instance_uuid)
        if latest is None:
            return None, "first snapshot of the instance"
        parent, manifest = latest
        if manifest.get("mode") != MODE_INCREMENTAL or not manifest.get(
            "checkpoint"
        ):
            return None, "the previous snapshot tracked no changes"
        stored = [
            (d["name"], d["target"], d["virtual_size"], d["stored_format"])
            for d in manifest["disks"]
        ]
        current = [
            (layer.disk.name, layer.disk.target, layer.virtual_size, "qcow2")
            for layer in layers
        ]
        if stored != current:
            self._quietly(
                checkpoints.remove,
                dom,
                manifest["checkpoint"],
                tracked,
                targets,
            )
            return None, "the instance's disks changed"
        return parent, None

    def _lost_tracking(self, dom, checkpoint, files, tracked, targets):
        """Back to a full copy: no targets over the parent, no bitmap.

        Whatever is left of the parent's bitmap goes: an inconsistent
        one would make Nova's qemu-img resize fail.
        """
        for path in files.values():
            os.unlink(path)
        self._quietly(checkpoints.remove, dom, checkpoint, tracked, targets)

    @staticmethod
    def _quietly(func, *args):
        """A clean-up of our checkpoints that must not hide the result."""
        try:
            func(*args, CONF.compute.call_timeout)
        except Exception:
            LOG.exception("Cannot clean up checkpoint %s", args[1])

    def _snapshot_offline(self, instance, dom, index, layers):
        before = [nova_files.file_state(layer.disk.path) for layer in layers]
        partial = self._begin(instance.uuid, index, layers, MODE_OFFLINE)
        try:
            disks = self._copy_layers(instance.uuid, index, partial, layers)
            if nova_files.call("domain state", dom.isActive):
                raise exception.DisksChanged(
                    instance_uuid=instance.uuid,
                    reason="the domain was started",
                )
            after = [
                nova_files.file_state(layer.disk.path) for layer in layers
            ]
            if after != before:
                raise exception.DisksChanged(
                    instance_uuid=instance.uuid,
                    reason="a disk file was written",
                )
            size = self._publish(
                instance.uuid, index, partial, MODE_OFFLINE, False, disks
            )
        except Exception:
            with excutils.save_and_reraise_exception():
                self._undo_store(instance.uuid, index, partial, False)
        return base.SnapshotResult(
            disks=disks, size_bytes=size, quiesced=False, pause_seconds=0.0
        )

    def _begin(self, instance_uuid, index, layers, mode):
        bases = {
            layer.backing_name: layer.backing
            for layer in layers
            if layer.backing
        }

        def copy_base(name, destination):
            nova_files.data_call(
                f"copy base {name}",
                fs.copy_to_store,
                bases[name],
                destination,
                os.geteuid(),
                os.getegid(),
            )

        partial = self.store.begin(
            instance_uuid,
            index,
            sorted(bases),
            copy_base,
            mode=mode,
            # QEMU, as its own user, writes a backup's targets itself.
            qemu_writes=mode in (MODE_BACKUP, MODE_INCREMENTAL),
        )
        try:
            for name, path in bases.items():
                self._check_base_copy(name, path)
        except Exception:
            with excutils.save_and_reraise_exception():
                self.store.discard(partial)
        return partial

    def _check_base_copy(self, name, nova_path):
        # A base is named after its image and images never change, so a
        # copy of the same name is the same file; a size mismatch means
        # something else is going on and nothing is layered over it.
        state = nova_files.file_state(nova_path)
        stored = os.stat(self.store.base_path(name)).st_size
        if state is None or state[0] != stored:
            raise exception.SnapshotStoreError(
                path=self.store.base_path(name),
                reason=f"does not match {nova_path}",
            )

    def _copy_layers(self, instance_uuid, index, partial, layers):
        disks = []
        for position, layer in enumerate(layers):
            path = os.path.join(partial, layer.disk.name)
            nova_files.data_call(
                f"copy {layer.disk.name}",
                fs.copy_to_store,
                layer.disk.path,
                path,
                os.geteuid(),
                os.getegid(),
            )
            if layer.backing:
                # The copy's header still names Nova's base; the store's
                # copy of it holds the same bytes, so only the header
                # changes.
                nova_files.call(
                    f"rebase {layer.disk.name}",
                    qemu_img.rebase_unsafe,
                    path,
                    layer.disk.format,
                    self.store.base_path(layer.backing_name),
                    layer.backing_format,
                )
            if position == 0:
                crashpoints.reached("copy-half")
            disks.append(
                self._stored(
                    instance_uuid,
                    index,
                    layer,
                    path,
                    layer.disk.format,
                    LAYOUT_DELTA if layer.backing else LAYOUT_FULL,
                )
            )
        return disks

    def _stored(self, instance_uuid, index, layer, partial_path, fmt, layout):
        """The JSON-able description of one stored disk."""
        record = {
            "target": layer.disk.target,
            "name": layer.disk.name,
            "format": layer.disk.format,
            "layout": layout,
            "path": os.path.join(
                self.store.snapshot_dir(instance_uuid, index), layer.disk.name
            ),
            "stored_format": fmt,
            "virtual_size": layer.virtual_size,
            "allocated_bytes": store_mod.allocated_bytes(partial_path),
            "backing": None,
        }
        if layer.backing:
            record["backing"] = {
                "name": layer.backing_name,
                "format": layer.backing_format,
                "path": layer.backing,
                "stored_path": self.store.base_path(layer.backing_name),
            }
        return record

    def _publish(
        self, instance_uuid, index, partial, mode, quiesced, disks, extra=None
    ):
        size = sum(disk["allocated_bytes"] for disk in disks)
        self.store.finish(
            partial,
            {
                **(extra or {}),
                "instance_uuid": instance_uuid,
                "index": index,
                "mode": mode,
                "quiesced": quiesced,
                "created_at": datetime.datetime.now(datetime.UTC).isoformat(),
                "disks": disks,
                "size_bytes": size,
                "bases": sorted(
                    {d["backing"]["name"] for d in disks if d["backing"]}
                ),
            },
        )
        return size

    def _undo_store(self, instance_uuid, index, partial, published):
        try:
            if published:
                self.store.remove(instance_uuid, index)
            else:
                self.store.discard(partial)
        except Exception:
            # The original error matters more; recovery removes the rest.
            LOG.exception("Cannot remove the copy of snapshot %s", index)

    def _abort_backup(self, dom, partial):
        try:
            backup.abort_if_writing_under(
                dom, partial, CONF.compute.call_timeout
            )
        except Exception:
            LOG.exception("Cannot abort the backup job into %s", partial)

    # -- Restore, delete, list ------------------------------------------

    def restore(self, instance, dom, index, disks):
        """Put snapshot ``index`` back in place of Nova's disk files.

        The manifest in the store, not ``disks``, says what the snapshot
        holds (see :mod:`.file_restore`).
        """
        if nova_files.call("domain state", dom.isActive):
            raise exception.InstanceNotShutOff(
                instance_uuid=instance.uuid, state="running"
            )
        if self._recover_domain(instance.uuid, dom):
            instance = nova_files.describe(dom)
        file_restore.restore(self.store, instance, index)

    def delete(self, instance_uuid, index, disks):
        child = self.store.child_of(instance_uuid, index)
        if self.store.merging(instance_uuid, index):
            # A retry after a merge that failed half way: finish it.
            freed = self.store.resume_merge(
                instance_uuid, index, self._commit_stored
            )
        elif child is not None:
            # Its clusters are still part of what the child reads.
            freed = self.store.merge_into_child(
                instance_uuid, index, child, self._commit_stored
            )
        else:
            self._drop_tracking_of(instance_uuid, index)
            freed = self.store.remove(instance_uuid, index)
        LOG.info(
            "Deleted snapshot %s of %s: %d bytes freed",
            index,
            instance_uuid,
            freed,
        )
        return freed

    @staticmethod
    def _commit_stored(path):
        nova_files.data_call(
            f"merge {os.path.basename(path)}",
            qemu_img.commit,
            path,
            "qcow2",
        )

    def _drop_tracking_of(self, instance_uuid, index):
        """Remove the bitmap of the newest snapshot, which goes now.

        Nothing would ever use it again (the next snapshot's parent is
        an older one, whose bitmap is gone: a full copy), yet Nova's
        disk would carry it.
        """
        latest = self.store.latest(instance_uuid)
        if latest is None or latest[0] != index:
            return
        checkpoint = latest[1].get("checkpoint")
        if not checkpoint:
            return
        try:
            dom = self._lookup(instance_uuid)
            if dom is not None:
                self._drop_bitmaps(dom, [checkpoint])
        except Exception:
            LOG.exception("Cannot remove checkpoint %s", checkpoint)

    def _drop_bitmaps(self, dom, names, in_use_only=False):
        """Remove our bitmaps ``names`` (None: all of ours) from a domain."""
        instance = nova_files.describe(dom)
        disks = [disk for disk in instance.disks if disk.format == "qcow2"]
        if nova_files.call("domain state", dom.isActive):
            xml = nova_files.call("domain XML", dom.XMLDesc, 0)
            targets = [disk.target for disk in overlay.domain_disks(xml)]
            for checkpoint in names or ():
                checkpoints.remove(
                    dom,
                    checkpoint,
                    [disk.target for disk in disks],
                    targets,
                    CONF.compute.call_timeout,
                )
            return
        for disk in disks:
            info = nova_files.call(
                f"image info {disk.name}", fs.image_info, disk.path, "qcow2"
            )
            found = checkpoints.our_bitmaps(info, in_use_only)
            doomed = [n for n in found if names is None or n in names]
            if doomed:
                nova_files.call(
                    f"remove bitmaps of {disk.name}",
                    fs.remove_bitmaps,
                    disk.path,
                    "qcow2",
                    doomed,
                )
                LOG.info("Removed %s from %s", ", ".join(doomed), disk.path)

    def list_indexes(self, instance_uuid):
        return self.store.list_indexes(instance_uuid)

    def describe(self, instance_uuid, index):
        """The SnapshotResult of a stored snapshot, from its manifest.

        For a ``completed`` recovery action: the snapshot finished before
        the agent stopped, and this is what its report would have said
        (the pause is unknown, 0.0).
        """
        manifest = self.store.read_manifest(instance_uuid, index)
        return base.SnapshotResult(
            disks=manifest["disks"],
            size_bytes=manifest["size_bytes"],
            quiesced=manifest["quiesced"],
            pause_seconds=0.0,
        )

    # -- Recovery -------------------------------------------------------

    def recover(self, instances):
        actions = []
        for instance in instances:
            try:
                dom = self._lookup(instance.uuid)
                if dom is not None:
                    actions.extend(self._recover_domain(instance.uuid, dom))
                actions.extend(self._remove_strays(instance.uuid, dom))
            except (exception.SnapmanagerException, OSError) as exc:
                # Keep going with the other instances; the next snapshot
                # or restore of this one tries again first.
                LOG.error("Recovery of %s failed: %s", instance.uuid, exc)
        actions.extend(self._recover_store())
        for action in actions:
            LOG.warning(
                "Recovery: snapshot %s of %s %s (%s)",
                action.snapshot_index,
                action.instance_uuid,
                action.action,
                action.detail,
            )
        return actions

    def after_qemu_died(self, instance, dom):
        # Still shut off: nobody started it again meanwhile, so nothing
        # holds the file, and only bitmaps left in use are removed.
        if not nova_files.call("domain state", dom.isActive):
            self._drop_bitmaps(dom, None, in_use_only=True)

    def _recover_domain(self, instance_uuid, dom):
        """Merge back every overlay of ours the domain still uses."""
        if nova_files.call("domain state", dom.isActive):
            # A backup job of a killed agent still writes into the store.
            backup.abort_if_writing_under(
                dom, self.store.root, CONF.compute.call_timeout
            )
        # Records of checkpoints an agent killed mid-snapshot left: Nova
        # could not undefine the domain with them. Bitmaps of a partial
        # snapshot go with the partial copy (_discard_partial).
        found = checkpoints.forget_all_ours(dom, CONF.compute.call_timeout)
        if found:
            LOG.warning(
                "Removed checkpoint records %s from %s",
                sorted(found.values()),
                instance_uuid,
            )
        if not nova_files.call("domain state", dom.isActive):
            # A QEMU killed with our bitmaps open left them inconsistent
            # in Nova's file, where they would fail Nova's resize.
            self._drop_bitmaps(dom, None, in_use_only=True)
        indexes = merge.merge_domain(instance_uuid, dom)
        return self._committed(instance_uuid, indexes)

    def _committed(self, instance_uuid, indexes):
        actions = []
        complete = set(self.store.list_indexes(instance_uuid))
        for index in sorted(indexes):
            if index in complete:
                actions.append(
                    base.RecoveryAction(
                        instance_uuid,
                        index,
                        "completed",
                        "the copy into the store had finished",
                    )
                )
            actions.append(
                base.RecoveryAction(
                    instance_uuid,
                    index,
                    "committed",
                    "the overlay was merged back into Nova's disk",
                )
            )
        return actions

    def _remove_strays(self, instance_uuid, dom):
        """Delete our files the domain does not use (any more).

        An overlay no XML names is one libvirt left when a snapshot
        failed, or one whose pivot and definition update happened but
        whose deletion did not: the guest does not write to it.
        """
        directory = nova_files.instance_dir(instance_uuid)
        names = nova_files.call("list own files", fs.list_own_files, directory)
        if not names:
            return []
        used = nova_files.used_files(dom)
        actions = []
        for name in names:
            path = os.path.join(directory, name)
            if path in used:
                LOG.error("%s is still in use by its domain; kept", path)
                continue
            nova_files.call("remove leftover", fs.remove, path)
            own = overlay.parse_overlay_name(name)
            if own:
                actions.append(
                    base.RecoveryAction(
                        instance_uuid,
                        own[1],
                        "discarded",
                        f"removed the unused overlay {name}",
                    )
                )
            else:
                LOG.info("Removed the unfinished restore file %s", path)
        return actions

    def _recover_store(self):
        actions = []
        for instance_uuid, index in self.store.finish_merges(
            self._commit_stored
        ):
            actions.append(
                base.RecoveryAction(
                    instance_uuid,
                    index,
                    "discarded",
                    "finished merging it into its child",
                )
            )
        for instance_uuid, index, path in self.store.partials():
            try:
                freed = self._discard_partial(instance_uuid, index, path)
            except (exception.SnapmanagerException, OSError) as exc:
                LOG.error("Cannot remove the partial copy %s: %s", path, exc)
                continue
            actions.append(
                base.RecoveryAction(
                    instance_uuid,
                    index,
                    "discarded",
                    f"removed an unfinished copy ({freed} bytes)",
                )
            )
        for name in self.store.remove_partial_bases():
            LOG.info("Removed the unfinished base copy %s", name)
        base_dir = nova_files.base_dir()
        for name in nova_files.call(
            "list own files", fs.list_own_files, base_dir
        ):
            nova_files.call(
                "remove leftover", fs.remove, os.path.join(base_dir, name)
            )
        self.store.collect_bases()
        return actions

    def _discard_partial(self, instance_uuid, index, path):
        mode = self.store.read_partial_manifest(path).get("mode")
        dom = self._lookup(instance_uuid)
        if dom is not None and nova_files.call("domain state", dom.isActive):
            # A backup job outlives the agent: stop it writing first.
            backup.abort_if_writing_under(dom, path, CONF.compute.call_timeout)
            if mode in (MODE_BACKUP, MODE_INCREMENTAL):
                self._thaw(dom)
            if mode == MODE_INCREMENTAL:
                # Its checkpoint's bitmap, if the job had begun.
                self._drop_bitmaps(dom, [checkpoints.name(index)])
        return self.store.discard(path)

    def _thaw(self, dom):
        # A backup snapshot freezes and thaws the guest itself; an agent
        # killed in between left it frozen. Thawing a thawed guest is a
        # no-op, and a guest without an agent was never frozen.
        try:
            nova_files.call("fsThaw", dom.fsThaw)
        except exception.BackendError as exc:
            if not guest.cannot_freeze(exc):
                raise

    # -- Helpers --------------------------------------------------------

    def _lookup(self, instance_uuid):
        conn = self._libvirt.get()
        try:
            return nova_files.call(
                "domain lookup", conn.lookupByUUIDString, instance_uuid
            )
        except exception.BackendError as exc:
            if exc.kwargs.get("origin_code") == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def _check_no_block_job(self, instance, dom, layers):
        for layer in layers:
            job = overlay.job_info(
                dom, layer.disk.target, CONF.compute.call_timeout
            )
            if job:
                raise exception.BlockJobActive(
                    instance_uuid=instance.uuid,
                    target=layer.disk.target,
                    job_type=job.get("type"),
                )

    def _remove_unused(self, instance_uuid, dom, paths):
        """Delete overlays a failed snapshot may have left unused."""
        try:
            used = nova_files.used_files(dom)
            for path in paths:
                if path not in used:
                    nova_files.call("remove overlay", fs.remove, path)
        except Exception:
            LOG.exception("Cannot clean up the overlays of %s", instance_uuid)
