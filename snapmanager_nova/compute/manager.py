"""The compute agent's RPC endpoint: snapshot, restore and delete work.

The agent serves the conductor's casts on its host. It owns what is common
to every storage backend:

* operations on one instance run one at a time, in arrival order, without
  holding a worker while they wait (a queue per instance);
* at most ``[compute] workers`` operations run on the host at once;
  releases for Nova's delete, rebuild and shelve-offload never wait for
  one of them (threads of their own);
* the instance is found from its libvirt domain, never from a database;
* a restore is refused unless the domain is shut off;
* every outcome is reported to the conductor, which records it.

The storage work itself is a backend's (:mod:`.backends`).
"""

import collections
import concurrent.futures
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


# Threads serving urgent work (releases) beside the shared workers: a
# release is a few Ceph calls, and several deletes may come at once.
URGENT_WORKERS = 4


class InstanceQueues:
    """Run callables on a thread pool, one at a time per instance.

    Each instance has a FIFO of pending work; only the head of an
    instance's queue is ever running, so two operations on one instance
    never overlap and a backlog on one instance does not tie up the
    workers other instances need.

    ``urgent`` work (a release for Nova, whose removal retries run out
    after about a minute) goes ahead of everything still waiting on the
    instance and never waits for a worker of the shared pool: unless the
    instance's queue is already running (then it is next, right after
    the operation in progress, on the same thread), a thread of its own
    pool starts it at once, whatever the shared pool is busy with. That
    thread runs only the urgent work and hands the rest of the queue
    back to the shared pool.
    """

    def __init__(self, workers, urgent_workers=URGENT_WORKERS):
        self._pool = futurist.ThreadPoolExecutor(max_workers=workers)
        self._urgent_pool = futurist.ThreadPoolExecutor(
            max_workers=urgent_workers
        )
        self._queues = {}
        # Instances whose queue a thread is running now, and those with
        # a run waiting for (or on) a worker of the shared pool.
        self._running = set()
        self._pooled = set()
        self._guard = threading.Lock()

    def submit(self, instance_uuid, func, *args, urgent=False):
        """Queue ``func(*args)`` for the instance; return its Future."""
        future = concurrent.futures.Future()
        item = (future, func, args, urgent)
        with self._guard:
            queue = self._queues.setdefault(instance_uuid, collections.deque())
            if not urgent:
                queue.append(item)
                if instance_uuid in self._pooled or (
                    instance_uuid in self._running
                ):
                    return future
                self._pooled.add(instance_uuid)
                start = self._pool
            else:
                # Behind the running head and earlier urgent work.
                position = 1 if instance_uuid in self._running else 0
                while position < len(queue) and queue[position][3]:
                    position += 1
                queue.insert(position, item)
                if instance_uuid in self._running:
                    return future
                start = self._urgent_pool
        start.submit(self._drain, instance_uuid, start is self._urgent_pool)
        return future

    def _drain(self, instance_uuid, urgent_only=False):
        with self._guard:
            if not urgent_only:
                self._pooled.discard(instance_uuid)
            if (
                instance_uuid in self._running
                or instance_uuid not in self._queues
            ):
                return  # another thread runs it, or it ran already
            self._running.add(instance_uuid)
        while True:
            with self._guard:
                queue = self._queues[instance_uuid]
                if not queue or (urgent_only and not queue[0][3]):
                    self._running.discard(instance_uuid)
                    if not queue:
                        del self._queues[instance_uuid]
                    elif instance_uuid not in self._pooled:
                        # The rest waits for a worker, as it would have.
                        self._pooled.add(instance_uuid)
                        self._pool.submit(self._drain, instance_uuid)
                    return
                future, func, args, _urgent = queue[0]
            try:
                future.set_result(func(*args))
            except Exception as exc:
                # Work functions report their own failures; this only keeps
                # a bug in one from stalling the instance's queue.
                LOG.exception("Unexpected error in work on %s", instance_uuid)
                future.set_exception(exc)
            finally:
                with self._guard:
                    queue.popleft()

    def shutdown(self, wait=True):
        self._urgent_pool.shutdown(wait=wait)
        self._pool.shutdown(wait=wait)


class ComputeManager:
    target = messaging.Target(version="1.0")

    def __init__(self, host, backends, conductor_api, connect=None):
        """``backends`` maps a backend name ("file", "rbd") to a Backend;
        ``connect`` returns a libvirt connection (default: open
        ``[compute] libvirt_uri``)."""
        self.host = host
        self.backends = backends
        self.conductor = conductor_api
        self.libvirt = connection.LibvirtConnection(connect)
        self.queues = InstanceQueues(CONF.compute.workers)

    # Start-up

    def init_host(self, context):
        """Finish or undo whatever a previous run left half done.

        Runs before the RPC server starts, so no new work can race it.
        """
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
                    report["result"] = _result_report(
                        backend.describe(
                            action.instance_uuid, action.snapshot_index
                        ),
                        name,
                    )
                actions.append(action)
                reports.append(report)
        if reports:
            self.conductor.recovery_report(context, self.host, reports)
        return actions

    def cleanup_host(self):
        self.queues.shutdown()

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
        (:class:`InstanceQueues`), so a burst of other instances' work
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

    # The work

    def _create_snapshot(
        self, context, instance_uuid, snapshot_id, index, quiesce
    ):
        try:
            dom = self._lookup(instance_uuid)
            instance = self._describe(dom)
            backend = self._backend_for(instance)
            self.conductor.instance_progress(
                context, instance_uuid, False, index
            )
            result = backend.snapshot(instance, dom, index, quiesce)
        except Exception as exc:
            self._log_failure("Snapshot", instance_uuid, exc)
            self.conductor.snapshot_failed(context, snapshot_id, str(exc))
            return
        self.conductor.instance_progress(context, instance_uuid, True, index)
        self.conductor.snapshot_created(
            context, snapshot_id, _result_report(result, instance.backend)
        )
        LOG.info(
            "Snapshot %s (index %d) of %s taken: %d bytes, quiesced=%s, "
            "guest paused %.3f s",
            snapshot_id,
            index,
            instance_uuid,
            result.size_bytes,
            result.quiesced,
            result.pause_seconds,
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

    def _call(self, operation, func, *args):
        return calls.bounded(operation, CONF.compute.call_timeout, func, *args)

    def _lookup(self, instance_uuid):
        conn = self.libvirt.get()
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
            instance = self._describe(dom)
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
