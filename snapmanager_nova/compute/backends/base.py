"""The contract between the compute manager and a storage backend.

The manager owns everything around an operation: the per-instance lock,
the worker pool, looking the domain up, refusing a restore of a running
domain, and reporting results to the conductor. A backend only does the
storage work for one instance at a time and returns plain data, so the
manager's code is the same for qcow2 files and RBD images.

Snapshots are identified by the instance's ``snapshot_index`` (allocated
by the conductor, monotonic, never reused): a backend names whatever it
creates after it so that recovery and reconciliation can find it again
without the database.
"""

import abc
import dataclasses


@dataclasses.dataclass(frozen=True)
class SnapshotResult:
    """What a backend made; stored by the conductor in the snapshot row."""

    # One dict per disk, JSON-serialisable; given back to restore/delete.
    disks: list
    size_bytes: int
    quiesced: bool
    # Guest-visible disruption in seconds: from overlay creation (or
    # freeze) to pivot back (or thaw). Reported, and benchmarked.
    pause_seconds: float


@dataclasses.dataclass(frozen=True)
class RecoveryAction:
    """One half-done operation found and finished or undone at start."""

    instance_uuid: str
    snapshot_index: int
    # "committed" (overlay merged back), "discarded" (partial copy or
    # snapshot removed), "completed" (a finished copy kept: the backend
    # then answers describe(instance_uuid, index) with its result),
    # "thawed" (a guest left frozen was thawed).
    action: str
    detail: str = ""


class Backend(abc.ABC):
    """Storage operations on one instance's disks."""

    name = None
    # Whether a snapshot only waits on storage (metadata operations on a
    # cluster, no data copied on this host): such snapshots run on the
    # agent's snapshot threads (``[compute] snapshot_workers``), beside
    # the workers that copy and restore.
    waits_on_storage = False

    @abc.abstractmethod
    def snapshot(self, instance, dom, index, quiesce):
        """Snapshot all of ``instance``'s disks at once.

        ``dom`` is the live libvirt domain (running or shut off); the
        result must be consistent across disks. Returns SnapshotResult.
        """

    @abc.abstractmethod
    def restore(self, instance, dom, index, disks):
        """Replace the instance's disks with snapshot ``index``.

        The manager has checked that the domain is shut off. Afterwards
        Nova's next start of the instance boots the restored data from the
        paths/images Nova knows.
        """

    @abc.abstractmethod
    def delete(self, instance_uuid, index, disks):
        """Remove snapshot ``index`` and free its space; return bytes freed.

        The instance may no longer exist (snapshots kept after delete), so
        only the UUID and the stored ``disks`` are given. Deleting what is
        already gone is not an error.
        """

    @abc.abstractmethod
    def list_indexes(self, instance_uuid):
        """The snapshot indexes that exist in storage for an instance."""

    def release(self, instance_uuid, keep):
        """Let Nova remove the instance's disks as if we were not there.

        Called when Nova starts deleting, rebuilding or shelve-offloading
        the instance. ``keep`` is the instance's ``keep_after_delete``.
        Returns the snapshot indexes removed (or kept). Storage that Nova
        removes whatever we hold (the file backend's store lives apart from
        Nova's files) has nothing to do.
        """
        return []

    def after_qemu_died(self, instance, dom):
        """Undo what a QEMU that died (killed, crashed) left in Nova's
        disks of the shut-off ``dom``, at once rather than at the next
        start of the agent (compute/events.py). Nothing by default."""
        return None

    @abc.abstractmethod
    def recover(self, instances):
        """Finish or undo half-done work after a crash of the agent.

        ``instances`` are this host's instances of this backend. Returns a
        list of RecoveryAction; afterwards no overlay is active, no partial
        copy or snapshot is left counted, and no guest write is lost.
        """
