"""The compute agent's RPC endpoint: snapshot, restore and delete work.

The agent serves the conductor's casts on its host. It owns what is common
to every storage backend:

* operations on one instance run one at a time, in arrival order, without
  holding a worker while they wait (a queue per instance, :mod:`.queues`);
* at most ``[compute] workers`` operations run on the host at once;
  releases for Nova's delete, rebuild and shelve-offload never wait for
  one of them (threads of their own), nor do the snapshots of backends
  whose snapshot only waits on storage (RBD: ``[compute]
  snapshot_workers``), once a worker has found the instance's disks;
* the instance is found from its libvirt domain, never from a database;
* a restore is refused unless the domain is shut off;
* every outcome is reported to the conductor, which records it.

The storage work itself is a backend's (:mod:`.backends`).
"""

import collections
import dataclasses
import threading

import futurist
import libvirt
import oslo_messaging as messaging
from oslo_log import log as logging

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova.compute import calls
from snapmanager_nova.compute import connection
from snapmanager_nova.compute import domain as domain_mod
from snapmanager_nova.compute import events
from snapmanager_nova.compute import queues as queues_mod
from snapmanager_nova.compute import rpcapi
from snapmanager_nova.compute import transfer

CONF = sm_conf.CONF
LOG = logging.getLogger(__name__)

_STATE_NAMES = {
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down",
    libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
}


def _result_report(result, backend_name):
    """A backend's SnapshotResult as sent to the conductor.

    The backend's name goes with it: the conductor records it on the
    snapshot, and restore and delete are routed to that backend.
    """
    return dict(dataclasses.asdict(result), backend=backend_name)


# Outcomes of batched snapshots sent to the conductor in one cast: at
# most this many, and none held longer than REPORT_DELAY seconds.
REPORT_BATCH = 50
REPORT_DELAY = 0.2
# Sizes of snapshots are measured once the agent has had no other work
# for SIZE_QUIET seconds, or after SIZE_DELAY seconds of waiting for
# that: a fan-out of snapshots, which comes in several messages with
# short gaps between them, is not slowed by walks over images that
# nothing waits for.
SIZE_DELAY = 60
SIZE_QUIET = 2
# The queues' lane for the snapshots of backends whose snapshot only
# waits on storage (``Backend.waits_on_storage``).
SNAPSHOT_LANE = "snapshots"


@dataclasses.dataclass(frozen=True)
class _SnapshotRequest:
    """A ``create_snapshot`` as the agent was asked for it."""

    context: object
    snapshot_id: str
    instance_uuid: str
    index: int
    quiesce: str
    batched: bool


class BatchedReports:
    """Snapshot outcomes on their way to the conductor, a batch per cast.

    Work that came in a batch (``create_snapshots``) reports back in
    batches (``snapshots_reported``): one message and one handler run in
    the conductor for up to :data:`REPORT_BATCH` outcomes instead of one
    each. An outcome waits at most :data:`REPORT_DELAY` seconds for
    others, and none once every batched snapshot the agent was given
    has its outcome; one lost with the agent in that time is the same
    as a cast lost with it: the storage holds the snapshot (or not), and
    reconciliation finds the row that never heard of it.
    """

    def __init__(self, send, batch=REPORT_BATCH, delay=REPORT_DELAY):
        self._send = send
        self._batch = batch
        self._delay = delay
        self._pending = []
        self._guard = threading.Lock()
        self._sending = threading.Lock()
        self._timer = None
        # Batched snapshots given to the agent without an outcome yet.
        self._outstanding = 0

    def expect(self, count):
        """``count`` more batched snapshots will report an outcome."""
        with self._guard:
            self._outstanding += count

    def add(self, context, report, outcome=False):
        """Queue ``report``; ``outcome``: it ends an expected snapshot."""
        with self._guard:
            self._pending.append((context, report))
            if outcome:
                self._outstanding = max(0, self._outstanding - 1)
            # The last outcome expected goes at once; sizes, which
            # nothing waits for, wait for company.
            full = len(self._pending) >= self._batch or (
                outcome and not self._outstanding
            )
            if not full and self._timer is None:
                self._timer = threading.Timer(self._delay, self.flush)
                self._timer.daemon = True
                self._timer.start()
        if full:
            self.flush()

    def flush(self):
        # One batch at a time, in the order they filled: a snapshot's
        # size follows its result.
        with self._sending:
            with self._guard:
                pending, self._pending = self._pending, []
                timer, self._timer = self._timer, None
            if timer is not None:
                timer.cancel()
            if pending:
                # The first context speaks for the batch: each is the
                # context of a conductor's cast, all the conductor's.
                self._send(pending[0][0], [report for _ctx, report in pending])


class ComputeManager:
    target = messaging.Target(version=rpcapi.ComputeAPI.RPC_API_VERSION)

    def __init__(self, host, backends, conductor_api, connect=None):
        """``backends`` maps a backend name ("file", "rbd") to a Backend;
        ``connect`` returns a libvirt connection (default: open
        ``[compute] libvirt_uri``)."""
        self.host = host
        self.backends = backends
        self.conductor = conductor_api
        self.libvirt = connection.LibvirtConnection(connect)
        self.queues = queues_mod.InstanceQueues(
            CONF.compute.workers,
            lanes={SNAPSHOT_LANE: CONF.compute.snapshot_workers},
        )
        self.reports = BatchedReports(self.conductor.snapshots_reported)
        # Sizes are measured after the snapshot is reported, one at a
        # time, so that walking images never takes a snapshot's worker.
        self._sizing = futurist.ThreadPoolExecutor(max_workers=1)
        # Set when the agent stops: sizes not measured yet are left
        # unknown rather than holding up the agent's exit.
        self._stopping = threading.Event()
        # Cleans up after a QEMU that died, as soon as libvirt says so.
        self.crash_watch = events.CrashWatch(self._qemu_died)

    # Start-up

    def init_host(self, context):
        """Finish or undo whatever a previous run left half done.

        Runs before the RPC server starts, so no new work can race it.
        """
        if "file" in self.backends:
            # A fetch from another host's store that a crash cut short
            # is started over when the conductor asks again.
            transfer.clean_incoming(self._file_store())
        by_backend = collections.defaultdict(list)
        for instance, _dom in self._instances():
            if instance.backend in self.backends:
                by_backend[instance.backend].append(instance)
            elif instance.backend is not None and instance.disks:
                # Nothing of it can be done here, not even releasing it
                # for Nova's delete; the conductor routes RBD work to an
                # agent that has the backend, but the operator should
                # know this host is configured short of its instances.
                LOG.error(
                    "Instance %s on this host has %s disks but [compute] "
                    "backends does not enable %s: its snapshots cannot be "
                    "taken, restored, listed or released by this agent",
                    instance.uuid,
                    instance.backend,
                    instance.backend,
                )
        actions, reports = [], []
        for name, backend in self.backends.items():
            if name not in by_backend:
                continue  # e.g. no need to reach Ceph on a file-only host
            for action in backend.recover(by_backend[name]):
                report = dataclasses.asdict(action)
                if action.action == "completed":
                    # The copy finished before the crash: report what the
                    # lost result would have said, so it counts.
                    report["result"] = dict(
                        _result_report(
                            backend.describe(
                                action.instance_uuid, action.snapshot_index
                            ),
                            name,
                        ),
                        host=self.host,
                    )
                actions.append(action)
                reports.append(report)
        if reports:
            self.conductor.recovery_report(context, self.host, reports)
        self.crash_watch.ensure(self.libvirt.get())
        return actions

    def cleanup_host(self):
        self._stopping.set()
        self.queues.shutdown()
        self.reports.flush()
        self._sizing.shutdown(wait=False)

    # RPC endpoints (casts return at once; the work is queued)

    def create_snapshot(
        self, context, instance_uuid, snapshot_id, index, quiesce
    ):
        self.queues.submit(
            instance_uuid,
            self._create_snapshot,
            context,
            instance_uuid,
            snapshot_id,
            index,
            quiesce,
        )

    def create_snapshots(self, context, snapshots):
        """Several ``create_snapshot`` casts in one (RPC 1.1): dicts of
        its arguments. Each is queued on its instance as if it came
        alone; their outcomes go back in batches
        (``snapshots_reported``, which only a conductor that sends this
        cast understands)."""
        self.reports.expect(len(snapshots))
        for item in snapshots:
            self.queues.submit(
                item["instance_uuid"],
                self._create_snapshot,
                context,
                item["instance_uuid"],
                item["snapshot_id"],
                item["index"],
                item["quiesce"],
                True,
            )

    def restore_snapshot(
        self, context, operation_id, instance_uuid, backend, index, disks
    ):
        self.queues.submit(
            instance_uuid,
            self._restore_snapshot,
            context,
            operation_id,
            instance_uuid,
            backend,
            index,
            disks,
        )

    def delete_snapshot(
        self, context, snapshot_id, instance_uuid, backend, index, disks
    ):
        self.queues.submit(
            instance_uuid,
            self._delete_snapshot,
            context,
            snapshot_id,
            instance_uuid,
            backend,
            index,
            disks,
        )

    # The conductor asks hosts that may lack a backend (an instance whose
    # backend is unknown, RBD work routed to another host): those answers
    # are expected, and must not log an agent traceback.
    @messaging.expected_exceptions(exception.Invalid, exception.BackendError)
    def list_snapshots(self, context, instance_uuid, backend):
        return sorted(self._backend(backend).list_indexes(instance_uuid))

    @messaging.expected_exceptions(exception.Invalid, exception.BackendError)
    def release_instance(self, context, instance_uuid, backend, keep):
        """Nova is deleting, rebuilding or shelve-offloading the instance.

        Answered only once done (a call, not a cast): Nova's driver must
        not list the instance's images before this has finished. It runs
        ahead of any queued work on the instance, on a thread of its own
        (:class:`.queues.InstanceQueues`), so a burst of other instances' work
        never delays it.
        """
        future = self.queues.submit(
            instance_uuid,
            self._backend(backend).release,
            instance_uuid,
            keep,
            urgent=True,
        )
        return future.result(timeout=CONF.compute.call_timeout)

    # Snapshots whose server moved (RPC 1.2; compute/transfer.py)

    @messaging.expected_exceptions(exception.Invalid, exception.NotFound)
    def describe_snapshot_files(self, context, instance_uuid, index):
        """How another host fetches file-backed snapshot ``index`` of the
        instance from this host's store (a call; reads only)."""
        return transfer.describe(
            self._file_store(),
            instance_uuid,
            index,
            CONF.compute.snapshot_transfer_address or self.host,
        )

    @messaging.expected_exceptions(
        exception.Invalid, exception.NotFound, exception.BackendError
    )
    def fetch_snapshot(self, context, instance_uuid, index, source):
        """Copy a snapshot into this host's store from ``source`` (what
        :meth:`describe_snapshot_files` answered on its holder). A call,
        answered once the snapshot is complete here, bounded by
        ``[compute] snapshot_transfer_timeout``; asked again, it starts
        over, and it does nothing if the snapshot is here already. In
        the instance's queue: a conductor that took the restore over from
        a dead one, asking again, waits for the first fetch to end rather
        than race it in the same staging directory."""
        timeout = CONF.compute.snapshot_transfer_timeout
        future = self.queues.submit(
            instance_uuid,
            transfer.fetch,
            self._file_store(),
            instance_uuid,
            index,
            source,
            CONF.compute.snapshot_transfer_transport,
            timeout,
            CONF.compute.snapshot_transfer_ssh_config,
        )
        # The copy's own deadline, and the kill after it.
        return future.result(timeout=timeout + 2 * transfer.KILL_AFTER)

    @messaging.expected_exceptions(exception.Invalid, exception.BackendError)
    def drop_snapshot_copy(self, context, instance_uuid, index, disks):
        """Delete this host's copy of a snapshot another host now holds
        (a call: no snapshot row changes, so nothing is reported)."""
        future = self.queues.submit(
            instance_uuid,
            self._backend("file").delete,
            instance_uuid,
            index,
            disks,
        )
        return future.result(timeout=CONF.compute.call_timeout)

    # The work

    def _create_snapshot(
        self,
        context,
        instance_uuid,
        snapshot_id,
        index,
        quiesce,
        batched=False,
    ):
        """Find the instance's disks, then take the snapshot: here, or,
        for a backend whose snapshot only waits on storage, on the
        snapshot lane's threads while this worker moves on."""
        # No progress casts around the work: nothing reads the
        # instance's ``committed``/``root_index`` they recorded.
        request = _SnapshotRequest(
            context, snapshot_id, instance_uuid, index, quiesce, batched
        )
        try:
            dom = self._lookup(instance_uuid)
            instance = self._describe(dom)
            backend = self._backend_for(instance)
        except Exception as exc:
            self._snapshot_failed(request, exc)
            return None
        if backend.waits_on_storage:
            return queues_mod.Continue(
                SNAPSHOT_LANE,
                self._take_snapshot,
                request,
                backend,
                instance,
                dom,
            )
        return self._take_snapshot(request, backend, instance, dom)

    def _take_snapshot(self, request, backend, instance, dom):
        try:
            result = backend.snapshot(
                instance, dom, request.index, request.quiesce
            )
        except Exception as exc:
            self._snapshot_failed(request, exc)
            return
        uuid, index = request.instance_uuid, request.index
        if result.size_bytes is None and not request.batched:
            # A single cast's report carries the size, as it always did
            # (a conductor before RPC 1.2 takes no size later).
            measured = self._measured(backend, uuid, index, result)
            if measured is not None:
                disks, size = measured
                result = dataclasses.replace(
                    result, disks=disks, size_bytes=size
                )
        # The host goes with it: a file-backed snapshot stays in this
        # host's store when the server moves, and work on it comes here.
        report = dict(_result_report(result, instance.backend), host=self.host)
        if request.batched:
            self.reports.add(
                request.context,
                {"snapshot_id": request.snapshot_id, "result": report},
                outcome=True,
            )
        else:
            self.conductor.snapshot_created(
                request.context, request.snapshot_id, report
            )
        if result.size_bytes is None and request.batched:
            # Measured after the report, off the snapshot's path.
            self._sizing.submit(
                self._measure,
                request.context,
                backend,
                uuid,
                request.snapshot_id,
                index,
                result,
            )
        LOG.info(
            "Snapshot %s (index %d) of %s taken: %s bytes, quiesced=%s, "
            "guest paused %.3f s",
            request.snapshot_id,
            index,
            uuid,
            result.size_bytes,
            result.quiesced,
            result.pause_seconds,
        )

    def _snapshot_failed(self, request, exc):
        self._log_failure("Snapshot", request.instance_uuid, exc)
        if request.batched:
            self.reports.add(
                request.context,
                {"snapshot_id": request.snapshot_id, "error": str(exc)},
                outcome=True,
            )
        else:
            self.conductor.snapshot_failed(
                request.context, request.snapshot_id, str(exc)
            )

    @staticmethod
    def _measured(backend, instance_uuid, index, result):
        """(disks with their sizes, total) of a snapshot taken without
        them, or None if it cannot be measured: its size then stays
        unknown (a quota counts it 0); the snapshot itself is fine."""
        try:
            return backend.measure(instance_uuid, index, result.disks)
        except Exception as exc:
            LOG.warning(
                "Cannot measure snapshot %d of %s: %s",
                index,
                instance_uuid,
                exc,
            )
            return None

    def _measure(
        self, context, backend, instance_uuid, snapshot_id, index, result
    ):
        """Tell the conductor, with the batched reports, the size of a
        snapshot reported without one (an RBD snapshot: a walk over the
        image's objects)."""
        self.queues.wait_idle(
            SIZE_DELAY, stop=self._stopping, quiet=SIZE_QUIET
        )
        if self._stopping.is_set():
            return
        measured = self._measured(backend, instance_uuid, index, result)
        if measured is None:
            return
        _disks, size = measured
        self.reports.add(
            context, {"snapshot_id": snapshot_id, "size_bytes": size}
        )

    def _restore_snapshot(
        self, context, operation_id, instance_uuid, backend, index, disks
    ):
        try:
            dom = self._lookup(instance_uuid)
            state = self._call("domain state", dom.state)[0]
            if state != libvirt.VIR_DOMAIN_SHUTOFF:
                raise exception.InstanceNotShutOff(
                    instance_uuid=instance_uuid,
                    state=_STATE_NAMES.get(state, state),
                )
            instance = self._describe(dom)
            self.conductor.operation_progress(
                context, operation_id, 10, "restoring disks"
            )
            self._backend(backend).restore(instance, dom, index, disks)
        except Exception as exc:
            self._log_failure("Restore", instance_uuid, exc)
            self.conductor.operation_finished(context, operation_id, str(exc))
            return
        self.conductor.operation_finished(context, operation_id)

    def _delete_snapshot(
        self, context, snapshot_id, instance_uuid, backend, index, disks
    ):
        try:
            freed = self._backend(backend).delete(instance_uuid, index, disks)
        except Exception as exc:
            self._log_failure("Delete", instance_uuid, exc)
            self.conductor.snapshot_failed(context, snapshot_id, str(exc))
            return
        self.conductor.snapshot_deleted(context, snapshot_id, freed)

    # Helpers

    def _file_store(self):
        """The file backend's snapshot store; BackendNotEnabled without
        that backend."""
        return self._backend("file").store

    def _call(self, operation, func, *args):
        return calls.bounded(operation, CONF.compute.call_timeout, func, *args)

    def _qemu_died(self, instance_uuid):
        self.queues.submit(instance_uuid, self._after_qemu_died, instance_uuid)

    def _after_qemu_died(self, instance_uuid):
        try:
            dom = self._lookup(instance_uuid)
            instance = self._describe(dom)
            if instance.backend in self.backends:
                self.backends[instance.backend].after_qemu_died(instance, dom)
        except Exception as exc:
            # The agent's next start, or the instance's next snapshot,
            # cleans up all the same.
            self._log_failure("Clean-up after QEMU died", instance_uuid, exc)

    def _lookup(self, instance_uuid):
        conn = self.libvirt.get()
        # A reconnection gives a new connection, to watch again.
        self.crash_watch.ensure(conn)
        try:
            return self._call(
                "domain lookup", conn.lookupByUUIDString, instance_uuid
            )
        except exception.BackendError as exc:
            if exc.kwargs.get("origin_code") == libvirt.VIR_ERR_NO_DOMAIN:
                raise exception.InstanceNotRunningHere(
                    instance_uuid=instance_uuid, host=self.host
                ) from exc
            raise

    def _describe(self, dom):
        xml = self._call("domain XML", dom.XMLDesc, 0)
        return domain_mod.parse_domain_xml(
            xml, skip_disks=tuple(CONF.compute.skip_disks)
        )

    def _instances(self):
        conn = self.libvirt.get()
        for dom in self._call("list domains", conn.listAllDomains, 0):
            try:
                instance = self._describe(dom)
            except exception.BackendError as exc:
                # Undefined between the listing and the read (Nova
                # deleting or migrating it away): not on this host any
                # more, so nothing of it is ours to recover here.
                if exc.kwargs.get("origin_code") != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
                continue
            yield instance, dom

    def _backend(self, name):
        try:
            return self.backends[name]
        except KeyError:
            raise exception.BackendNotEnabled(
                backend=name, host=self.host
            ) from None

    def _backend_for(self, instance):
        if not instance.disks:
            raise exception.UnsupportedDisks(
                instance_uuid=instance.uuid,
                reason="it has no Nova-managed disk (only volumes or "
                "skipped disks)",
            )
        if instance.backend is None:
            raise exception.UnsupportedDisks(
                instance_uuid=instance.uuid,
                reason="its disks mix file-backed and RBD storage",
            )
        return self._backend(instance.backend)

    @staticmethod
    def _log_failure(what, instance_uuid, exc):
        if isinstance(exc, exception.SnapmanagerException):
            LOG.error("%s of %s failed: %s", what, instance_uuid, exc)
        else:
            LOG.exception("%s of %s failed", what, instance_uuid)
