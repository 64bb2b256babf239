"""The conductor's inventory of Nova's servers, and what follows a delete.

Which servers
    Only servers Snapmanager already knows are recorded: those with a
    row in ``instances``, made when a policy is set, a snapshot taken or
    a restore asked for through the API. A project's default policy
    covers the project's servers that have a policy switched on but no
    schedule of their own, so it also acts only on known rows; the sync
    never creates rows for the thousands of servers nobody asked
    Snapmanager to look after.

The sync
    Every ``[conductor] inventory_sync_interval`` seconds the conductor
    lists, as admin and over all projects, the servers Nova changed since
    the last sync (``changes-since``, which also lists servers deleted
    since then, with status ``DELETED``) and updates the known ones. The
    first sync, or one whose marker is missing, lists every server
    instead; a known server missing from that full listing is looked up
    once, and deleted if Nova no longer has it. The marker (table
    ``sync_markers``) is the time the listing started, less
    :data:`MARKER_OVERLAP`, so a change committed in Nova while we were
    listing, or stamped by a clock a little behind ours, is seen again
    next time: recording a server twice is harmless. A sync in which
    anything failed keeps the old marker, so the next one tries again.

After a delete
    See :class:`InstanceCleanup` and doc/source/conductor.rst.

Pure parts (mapping Nova's server to the row's fields) are functions of
their arguments; the sync and the cleanup take Nova and the agents'
RPC API as collaborators.
"""

import dataclasses
import datetime
import itertools

from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as sdk_exc
from oslo_log import log as logging

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova.conductor import snapshot_operations
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from snapmanager_nova.notifications import notifier

CONF = sm_conf.CONF
LOG = logging.getLogger(__name__)

MARKER_NAME = "nova-servers"
# How far back each incremental sync reaches before the previous one's
# start: covers Nova's timestamps (whole seconds: a change in the second
# the previous listing started would otherwise be missed), transactions
# still open while we listed, and clock skew between the conductor and
# Nova's database.
MARKER_OVERLAP = datetime.timedelta(seconds=60)
# Servers per database round trip while syncing.
BATCH = 200

DELETED = "DELETED"


@dataclasses.dataclass(frozen=True)
class ServerState:
    """What the inventory records of one server, whatever told us."""

    uuid: str
    project_id: str | None
    host: str | None
    name: str | None
    nova_status: str | None
    task_state: str | None
    locked: bool
    locked_reason: str | None
    boot_from_volume: bool

    @property
    def deleted(self):
        return self.nova_status == DELETED

    def values(self):
        """The ``instances`` columns to write.

        The host is never cleared: a shelved-offloaded or deleted server
        has none in Nova, and the work on its snapshots still needs a
        host (file-backed ones recorded before holders were: the host
        it left; any other: a host to route the cluster's work from).
        """
        values = {
            "project_id": self.project_id,
            "host": self.host,
            "name": self.name,
            "nova_status": self.nova_status,
            "task_state": self.task_state,
            "locked": self.locked,
            "locked_reason": self.locked_reason,
            "boot_from_volume": self.boot_from_volume,
        }
        for key in ("project_id", "host"):
            if not values[key]:
                del values[key]
        return values


def from_sdk_server(server):
    """A :class:`ServerState` from openstacksdk's Server (details, admin).

    Boot from volume: Nova gives such a server no image (an empty
    ``image``) and a volume as its root, which the server's attached
    volumes show.
    """
    # An Image resource with an id, or an empty value without one.
    image_id = getattr(server.image, "id", None)
    return ServerState(
        uuid=server.id,
        project_id=server.project_id,
        host=server.compute_host,
        name=server.name,
        nova_status=server.status,
        task_state=server.task_state,
        locked=bool(server.is_locked),
        locked_reason=server.locked_reason,
        boot_from_volume=not image_id and bool(server.attached_volumes),
    )


def backend_of_disks(disks):
    """The storage backend a snapshot's recorded disks belong to.

    The agent records an RBD disk by pool and image, a file-backed one
    by path (see :mod:`snapmanager_nova.compute.backends`).
    """
    for disk in disks or ():
        if disk.get("pool"):
            return "rbd"
        if disk.get("path"):
            return "file"
    return None


def snapshot_backend(snapshot):
    return snapshot.backend or backend_of_disks(snapshot.disks)


def snapshot_holder(snapshot, instance):
    """The host whose agent works on ``snapshot``'s storage.

    A file-backed snapshot stays in the store of the host that took it
    (``snapshots.host``) when its server moves, so its holder is that
    host; rows from before holders were recorded were taken where the
    instance was last recorded. Any other snapshot is the cluster's: the
    instance's host (or, when that one cannot, another agent serving
    the backend; see :class:`.release.AgentRouter`).
    """
    # Only file-backed snapshots record a holder (db/models.py).
    return snapshot.host or instance.host


def cast_snapshot_delete(compute_api, context, instance, snapshot, host=None):
    """Ask the snapshot's holder to delete ``snapshot``, already
    ``deleting``.

    A file-backed snapshot's delete always goes to its holder
    (:func:`snapshot_holder`). ``host``: another agent that serves the
    snapshot's backend, when the instance's own cannot (RBD snapshots
    are the cluster's). A snapshot
    that never completed on a known backend has nothing
    stored: it is marked ``deleted`` here and False returned. Raises
    oslo.messaging's errors when the agent cannot be asked; the caller
    decides what that means for the row.
    """
    backend = snapshot_backend(snapshot) or instance.backend
    if backend is None:
        deleted = db_api.snapshot_update_status(
            context, snapshot.id, models.SNAPSHOT_DELETED
        )
        snapshot_operations.finish(context, deleted, models.SNAPSHOT_DELETING)
        return False
    if backend == "file" or host is None:
        host = snapshot_holder(snapshot, instance)
    compute_api.delete_snapshot(
        context,
        host,
        snapshot.id,
        instance.uuid,
        backend,
        snapshot.snapshot_index,
        snapshot.disks,
    )
    return True


def instance_backend(context, instance):
    """The instance's backend: recorded, or that of its snapshots.

    None when neither says (no snapshot was ever completed): then there
    is nothing of ours on the instance's disks to get out of Nova's way.
    """
    if instance.backend:
        return instance.backend
    for snapshot in db_api.snapshot_list(context, instance_uuid=instance.uuid):
        backend = snapshot_backend(snapshot)
        if backend is not None:
            return backend
    return None


class InstanceCleanup:
    """Get Snapmanager's snapshots out of Nova's way, and tidy up after.

    :meth:`release` runs when Nova *starts* deleting, rebuilding or
    shelve-offloading a server (from the notification): an agent
    removes our RBD snapshots, or keeps them in images Nova does not see
    (``keep_after_delete``; on rebuild and shelve-offload ``[conductor]
    keep_on_rebuild``, by default), before Nova's driver removes
    ``<uuid>_disk``, so Nova's removal succeeds on its first try.

    :meth:`deleted` runs once Nova has *finished* deleting it
    (``instance.delete.end``, the sync finding it ``DELETED`` or gone, or
    a scheduled try that finds it gone). It first records the delete and
    stops the server's schedules for good, whatever the agents can do,
    then tries the release it now owes
    (:class:`.release.DeletedServerRelease`), which stays pending and is
    tried again with backoff until an agent has done it.
    """

    def __init__(self, compute_api, releaser=None, now=models.utcnow):
        # Imported here: release.py builds on this module's helpers.
        from snapmanager_nova.conductor import release

        self.compute_api = compute_api
        self.releaser = releaser or release.DeletedServerRelease(
            compute_api, now=now
        )
        self.now = now

    def release(self, context, instance, why):
        # A rebuilt or shelve-offloaded server lives on, and its tenant
        # may want yesterday's disk back: its snapshots are kept out of
        # Nova's way unless the operator chose otherwise.
        keep = instance.keep_after_delete or (
            why != "delete" and CONF.conductor.keep_on_rebuild
        )
        indexes = self.releaser.release_now(context, instance, keep)
        LOG.info(
            "Released %s for Nova's %s: snapshots %s %s",
            instance.uuid,
            why,
            indexes,
            "kept" if keep else "removed",
        )
        if keep:
            self._mark_kept(context, instance, indexes)
        else:
            self._forget(context, instance, indexes)
        return indexes

    def deleted(self, context, instance, deleted_at):
        began = db_api.instance_begin_release(
            context, instance.uuid, deleted_at, self.now()
        )
        if not began:
            return False
        instance = db_api.instance_get(context, instance.uuid)
        LOG.info(
            "Instance %s deleted in Nova: its schedules are stopped and its "
            "snapshots are to be %s",
            instance.uuid,
            "kept" if instance.keep_after_delete else "deleted",
        )
        self.releaser.attempt(context, instance)
        return True

    def _mark_kept(self, context, instance, indexes):
        """Mark the snapshots the agent moved onto kept images: a record
        of where their data is. They stay listed, deletable and
        restorable (the agent copies them into Nova's new disks)."""
        for snapshot in self._stored(context, instance, indexes):
            disks = [dict(disk, kept=True) for disk in snapshot.disks or ()]
            db_api.snapshot_update(context, snapshot.id, {"disks": disks})

    @staticmethod
    def _stored(context, instance, indexes):
        """The instance's stored snapshot rows among ``indexes``."""
        if not indexes:
            return []
        return [
            snapshot
            for snapshot in db_api.snapshot_list(
                context,
                instance_uuid=instance.uuid,
                status=[models.SNAPSHOT_AVAILABLE, models.SNAPSHOT_ERROR],
            )
            if snapshot.snapshot_index in indexes
        ]

    def _forget(self, context, instance, indexes):
        """Mark the snapshots the agent removed as deleted."""
        for snapshot in self._stored(context, instance, indexes):
            try:
                deleting = db_api.snapshot_update_status(
                    context, snapshot.id, models.SNAPSHOT_DELETING
                )
                notifier.snapshot_changed(context, deleting, snapshot.status)
                deleted = db_api.snapshot_update_status(
                    context, snapshot.id, models.SNAPSHOT_DELETED
                )
            except exception.InvalidStatusTransition as exc:
                LOG.debug(
                    "Snapshot %s moved on meanwhile: %s", snapshot.id, exc
                )
                continue
            snapshot_operations.finish(
                context, deleted, models.SNAPSHOT_DELETING
            )


class InventorySync:
    """Nova's servers into ``instances``, incrementally."""

    def __init__(
        self, compute, cleanup, now=models.utcnow, overlap=MARKER_OVERLAP
    ):
        """``compute``: :class:`snapmanager_nova.nova.LazyCompute`;
        ``cleanup``: :class:`InstanceCleanup`."""
        self.compute = compute
        self.cleanup = cleanup
        self.now = now
        self.overlap = overlap
        self._warned = False

    def sync(self, context):
        """One pass; returns the number of known servers updated."""
        if not self.compute.configured:
            if not self._warned:
                LOG.warning(
                    "No Nova credentials in [nova]: the inventory is not "
                    "synced, and restores cannot run"
                )
                self._warned = True
            return 0
        started = self.now()
        marker = db_api.sync_marker_get(context, MARKER_NAME)
        query = {"details": True, "all_projects": True}
        if marker is not None:
            query["changes_since"] = marker.isoformat()
        compute = self.compute.get()
        failed = False
        updated = 0
        listed = set()
        servers = iter(compute.servers(**query))
        while batch := list(itertools.islice(servers, BATCH)):
            states = [from_sdk_server(server) for server in batch]
            listed.update(state.uuid for state in states)
            known = {
                row.uuid: row
                for row in db_api.instance_list_by_uuids(
                    context, [state.uuid for state in states]
                )
            }
            for state in states:
                row = known.get(state.uuid)
                if row is None:
                    continue
                try:
                    updated += self.record(context, row, state, started)
                except Exception:
                    failed = True
                    LOG.exception("Syncing instance %s failed", state.uuid)
        if marker is None:
            failed |= self._find_vanished(context, compute, listed, started)
        if failed:
            LOG.warning("Inventory sync incomplete; the next one retries")
        else:
            db_api.sync_marker_set(
                context, MARKER_NAME, started - self.overlap
            )
        LOG.debug(
            "Inventory sync (%s): %d known servers updated",
            "incremental" if marker else "full",
            updated,
        )
        return updated

    def record(self, context, instance, state, observed_at):
        """Record one server's state; clean up if Nova deleted it."""
        changed = db_api.instance_update_inventory(
            context, instance.uuid, state.values(), observed_at
        )
        if state.deleted:
            self.cleanup.deleted(context, instance, observed_at)
        return int(changed)

    def _find_vanished(self, context, compute, listed, started):
        """Known servers a full listing did not show: deleted, or not?

        A full listing shows no deleted server, so a known one missing
        from it was deleted before our first sync (or while the marker
        was lost). Nova is asked about each before we believe it.
        """
        failed = False
        for instance in db_api.instance_list(context):
            if instance.uuid in listed:
                continue
            try:
                server = compute.get_server(instance.uuid)
            except sdk_exc.NotFoundException:
                server = None
            except (sdk_exc.SDKException, ks_exc.ClientException) as exc:
                LOG.warning("Cannot look up %s: %s", instance.uuid, exc)
                failed = True
                continue
            try:
                if server is None:
                    self.cleanup.deleted(context, instance, started)
                else:
                    self.record(
                        context, instance, from_sdk_server(server), started
                    )
            except Exception:
                failed = True
                LOG.exception("Syncing instance %s failed", instance.uuid)
        return failed
