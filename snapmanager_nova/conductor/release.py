"""Servers Nova deleted: never scheduled again, their storage released
for sure.

When the conductor learns that Nova deleted a server (``instance.delete.
end``, the inventory sync, or a scheduled try that finds it gone), it
records that first, in one transaction
(:func:`snapmanager_nova.db.api.instance_begin_release`): the row gets
``deleted_at``, which takes the server out of every schedule's targets
and every tenant's list of policies, its own schedules are switched off,
and the release of its storage is owed (``release_state`` ``pending``).
Only then is the agent asked for anything, so an agent that cannot act
(its host down or decommissioned, a backend not enabled there) delays
the release, never the stop.

The release
    :meth:`DeletedServerRelease.attempt` asks an agent to take images
    Nova left behind out of its way (``release_instance`` with keep) and,
    unless the server keeps its snapshots after delete, to delete every
    snapshot still stored. It is done once nothing of ours is left to
    delete (or, kept, once the images are out of Nova's way); until then
    it stays pending, and :meth:`DeletedServerRelease.retry_due` tries it
    again with the backoff of :func:`.retries.backoff_delay`, each failed
    try recording why in ``release_error``. An operator sees pending
    releases (``snapmanager-manage release list``, the freshness check),
    can ask for the next try at once or give one up.

Which agent
    A file-backed snapshot lives in its holder's store (the host that
    took it, recorded on the snapshot: doc/source/multihost.rst), so only
    that host's agent can touch it, wherever the server was last; one
    whose holder is out of service for good is kept and the release
    stays pending, saying so. An RBD snapshot lives in the cluster: any agent
    that serves the ``rbd`` backend can list, release and delete it, so
    when the instance's host does not serve it (or is down) another agent
    does (:class:`AgentRouter`). An agent that answers "backend not
    enabled" is remembered as such for a while instead of being asked
    again every pass.
"""

import datetime
import random
import time

import oslo_messaging as messaging
from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as sdk_exc
from oslo_log import log as logging

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova.conductor import inventory
from snapmanager_nova.conductor import retention
from snapmanager_nova.conductor import retries
from snapmanager_nova.conductor import snapshot_operations
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from snapmanager_nova.notifications import notifier

CONF = sm_conf.CONF
LOG = logging.getLogger(__name__)

# How long a conductor may work on one claimed release before another
# one takes it (a conductor that died mid-way): above the agent's RPC
# deadlines of one try.
LEASE = datetime.timedelta(minutes=10)
# Backends whose storage any agent serving them can reach (RBD is the
# cluster's); a file-backed snapshot is its host's alone.
SHARED_BACKENDS = frozenset({"rbd"})
# The backends an agent may serve (volumes are Cinder's).
KNOWN_BACKENDS = ("file", "rbd")
# Snapshot statuses whose storage a release still has to delete.
_TO_DELETE = (models.SNAPSHOT_AVAILABLE, models.SNAPSHOT_ERROR)


def answered(exc, exception_class):
    """Whether an agent's RPC answer ``exc`` is ``exception_class``.

    The conductor does not rebuild the agents' exceptions (no
    ``allowed_remote_exmods``): they arrive as RemoteError naming their
    class.
    """
    if isinstance(exc, exception_class):
        return True
    return isinstance(exc, messaging.RemoteError) and (
        exc.exc_type == exception_class.__name__
    )


class AgentsUnavailable(Exception):
    """No agent can do this part of the work now; the message says why."""


class AgentRouter:
    """Which live agents may do a backend's work on an instance.

    The instance's own host first, then, for a backend whose storage is
    shared (:data:`SHARED_BACKENDS`), every other live agent. A host
    that answered "backend not enabled" is passed over for
    ``forget_after`` seconds: its configuration rarely changes, and
    asking it again every pass would only repeat the answer.
    """

    def __init__(self, agents=None, forget_after=600.0, clock=time.monotonic):
        self.agents = agents or retries.AgentLiveness()
        self.forget_after = forget_after
        self.clock = clock
        self._lacking = {}

    def lacks(self, host, backend):
        since = self._lacking.get((host, backend))
        if since is None:
            return False
        if self.clock() - since > self.forget_after:
            del self._lacking[(host, backend)]
            return False
        return True

    def learn_serving(self, host, served, backends=KNOWN_BACKENDS):
        """What an agent said of itself when it started: ``served``, and
        none other of ``backends``."""
        for backend in backends:
            if backend in served:
                self._lacking.pop((host, backend), None)
            else:
                self._lacking[(host, backend)] = self.clock()

    def learn_lacking(self, host, backend):
        LOG.warning(
            "The agent on %s does not serve the %s backend; its %s work "
            "goes to other agents",
            host,
            backend,
            backend,
        )
        self._lacking[(host, backend)] = self.clock()

    def candidates(self, context, instance, backend):
        """Live hosts whose agent may do the work, best first."""
        hosts = []
        own = instance.host
        if own and self.agents.is_up(context, own):
            hosts.append(own)
        if backend in SHARED_BACKENDS:
            hosts.extend(
                sorted(self.agents.alive_hosts(context) - {own, None})
            )
        return [host for host in hosts if not self.lacks(host, backend)]

    def why_none(self, context, instance, backend):
        """Why :meth:`candidates` is empty, for the operator."""
        own = instance.host
        if own and self.lacks(own, backend):
            reason = f"the agent on {own} does not serve the {backend} backend"
        elif own:
            reason = (
                f"the agent on {own} is down (no heartbeat within "
                f"{CONF.conductor.service_down_time} s)"
            )
        else:
            reason = "the instance has no compute host"
        if backend in SHARED_BACKENDS:
            reason += f", and no other live agent serves {backend}"
        return reason

    def call(self, context, instance, backend, func):
        """``func(host)`` on the first candidate that can do it; returns
        ``(host, result)``. Raises AgentsUnavailable when none can."""
        problems = []
        for host in self.candidates(context, instance, backend):
            try:
                return host, func(host)
            except messaging.RemoteError as exc:
                if answered(exc, exception.BackendNotEnabled):
                    self.learn_lacking(host, backend)
                    continue
                problems.append(f"the agent on {host} failed: {exc.value}")
            except messaging.MessagingException as exc:
                problems.append(f"the agent on {host} did not answer: {exc}")
        raise AgentsUnavailable(
            "; ".join(problems) or self.why_none(context, instance, backend)
        )


def _stored_backends(context, instance):
    """The backends holding snapshots of the instance not deleted yet,
    and the instance's own."""
    backends = {instance.backend}
    for snapshot in db_api.snapshot_list(
        context, instance_uuid=instance.uuid, status=retention.NOT_DELETED
    ):
        backends.add(inventory.snapshot_backend(snapshot))
    return sorted(backends - {None})


class DeletedServerRelease:
    """The release owed to servers Nova deleted (see the module)."""

    def __init__(
        self, compute_api, router=None, now=models.utcnow, jitter=None
    ):
        self.compute_api = compute_api
        self.router = router or AgentRouter()
        self.now = now
        self.jitter = jitter or random.random

    # Before Nova removes the disks (instance.delete.start and friends)

    def release_now(self, context, instance, keep):
        """Get our snapshots off the instance's images before Nova's
        driver removes them; returns the indexes removed or kept.

        Best effort: an agent that cannot do it now is logged, and the
        release after the delete (or the sync) catches up.
        """
        indexes = []
        for backend in _stored_backends(context, instance):
            try:
                _host, done = self._release_on_agent(
                    context, instance, backend, keep
                )
            except AgentsUnavailable as exc:
                LOG.warning(
                    "Cannot release %s before Nova removes its disks (%s); "
                    "the release after the delete catches up",
                    instance.uuid,
                    exc,
                )
                continue
            indexes.extend(done)
        return sorted(indexes)

    # After Nova deleted the server

    def attempt(self, context, instance):
        """One try of a pending release. True once it is done."""
        try:
            waiting = self._try(context, instance)
        except AgentsUnavailable as exc:
            reason = str(exc)
        except Exception as exc:
            LOG.exception("Release of deleted instance %s", instance.uuid)
            reason = f"unexpected error: {exc}"
        else:
            if not waiting:
                if db_api.instance_release_finish(
                    context, instance.uuid, models.RELEASE_DONE
                ):
                    LOG.info(
                        "Deleted instance %s released: its snapshots are %s",
                        instance.uuid,
                        "kept" if instance.keep_after_delete else "deleted",
                    )
                return True
            reason = (
                f"waiting for {waiting} snapshot deletion(s) to be "
                "confirmed by the agent"
            )
        self._defer(context, instance, reason)
        return False

    def agent_started(self, context, host, backends):
        """An agent started serving ``backends`` on ``host``: route work
        to it by that, and have every pending release tried at the next
        pass rather than after its backoff (the agent may be what it
        waited for: a host back, a backend enabled)."""
        self.router.learn_serving(host, set(backends))
        count = db_api.instance_release_retry_all(context, self.now())
        LOG.info(
            "The agent on %s started with backends %s; %d pending "
            "release(s) tried again",
            host,
            ", ".join(sorted(backends)) or "none",
            count,
        )

    def deletion_confirmed(self, context, snapshot):
        """An agent reported ``snapshot`` deleted. When it was the last
        deletion a pending release waited for, the release is tried at
        the next pass (and found done) rather than after its backoff."""
        instance_uuid = snapshot.instance_uuid
        try:
            instance = db_api.instance_get(context, instance_uuid)
        except exception.InstanceNotFound:
            return False
        if instance.release_state != models.RELEASE_PENDING:
            return False
        if db_api.snapshot_list(
            context,
            instance_uuid=instance_uuid,
            status=models.SNAPSHOT_DELETING,
        ):
            return False
        return db_api.instance_release_retry_now(
            context, instance_uuid, self.now()
        )

    def retry_due(self, context):
        """Periodic task: try the pending releases that are due.

        Returns the uuids of the instances tried.
        """
        now = self.now()
        with db_api.context_manager.writer.using(context):
            due = db_api.instance_claim_releases(
                context, now, now + LEASE, CONF.conductor.claim_batch_size
            )
        for instance in due:
            self.attempt(context, instance)
        return [instance.uuid for instance in due]

    def _try(self, context, instance):
        """Ask the agents; returns how many deletions are still to be
        confirmed. Raises AgentsUnavailable when an agent cannot be had."""
        hosts = {}
        for backend in _stored_backends(context, instance):
            # keep=True: Nova is done with the disks, so renaming is safe,
            # and it turns an image Nova gave up on (still carrying our
            # snapshots) into a kept image, which the agent removes with
            # its last snapshot.
            hosts[backend], _kept = self._release_on_agent(
                context, instance, backend, True
            )
        if instance.keep_after_delete:
            return 0
        waiting = 0
        stored = db_api.snapshot_list(
            context,
            instance_uuid=instance.uuid,
            status=[*_TO_DELETE, models.SNAPSHOT_DELETING],
        )
        # A file-backed snapshot is deleted by its holder (the host that
        # took it, wherever the server went since); one whose holder is
        # out of service for good is kept, never marked deleted with its
        # files still there, and holds the release open saying why.
        gone = db_api.snapshot_holders_gone(
            context, {snapshot.host for snapshot in stored}
        )
        unreachable = [s.id for s in stored if s.host in gone]
        for snapshot in stored:
            if snapshot.host in gone:
                continue
            backend = inventory.snapshot_backend(snapshot) or instance.backend
            if snapshot.status == models.SNAPSHOT_DELETING:
                waiting += 1
                if self._lost(snapshot):
                    # The agent deletes idempotently: ask again rather
                    # than wait on a request or report that got lost.
                    db_api.snapshot_touch(context, snapshot.id)
                    self._cast(context, instance, snapshot, hosts.get(backend))
                continue
            if self._send_delete(
                context, instance, snapshot, hosts.get(backend)
            ):
                waiting += 1
        if unreachable and not waiting:
            raise AgentsUnavailable(
                f"snapshots {', '.join(sorted(unreachable))} are stored on "
                f"{', '.join(sorted(gone))}, out of service: they are kept "
                "until an agent reports in there again, or the release is "
                "given up"
            )
        return waiting

    def _release_on_agent(self, context, instance, backend, keep):
        """``release_instance`` on an agent that can do it: (host,
        indexes). Raises AgentsUnavailable when none can."""
        return self.router.call(
            context,
            instance,
            backend,
            lambda host: self.compute_api.release_instance(
                context, host, instance.uuid, backend, keep
            ),
        )

    def _lost(self, snapshot):
        changed = snapshot.updated_at or snapshot.created_at
        timeout = datetime.timedelta(seconds=CONF.conductor.operation_timeout)
        return changed < self.now() - timeout

    def _send_delete(self, context, instance, snapshot, host):
        """Move a stored snapshot to ``deleting`` and cast its deletion
        to ``host``; False if there was nothing to send."""
        try:
            deleting = db_api.snapshot_update_status(
                context, snapshot.id, models.SNAPSHOT_DELETING
            )
        except (exception.InvalidStatusTransition, exception.NotFound):
            return False
        notifier.snapshot_changed(context, deleting, snapshot.status)
        return self._cast(context, instance, deleting, host)

    def _cast(self, context, instance, snapshot, host):
        try:
            return inventory.cast_snapshot_delete(
                self.compute_api, context, instance, snapshot, host=host
            )
        except messaging.MessagingException as exc:
            error = f"could not ask the agent on {host} to delete it: {exc}"
            failed = db_api.snapshot_update_status(
                context,
                snapshot.id,
                models.SNAPSHOT_ERROR,
                error=error[: snapshot_operations.MAX_ERROR],
            )
            snapshot_operations.finish(
                context, failed, models.SNAPSHOT_DELETING, error
            )
            raise AgentsUnavailable(error) from exc

    def _defer(self, context, instance, reason):
        attempts = instance.release_attempts
        delay = retries.backoff_delay(
            attempts + 1,
            CONF.conductor.retry_base_delay,
            CONF.conductor.retry_max_delay,
            self.jitter(),
        )
        when = self.now() + datetime.timedelta(seconds=delay)
        error = reason[: snapshot_operations.MAX_ERROR]
        if db_api.instance_release_defer(
            context, instance.uuid, attempts, when, error
        ):
            LOG.warning(
                "Release of deleted instance %s pending (try %d): %s; next "
                "try at %s",
                instance.uuid,
                attempts + 1,
                reason,
                when.isoformat(timespec="seconds"),
            )


class NovaGoneCheck:
    """Whether Nova still has a server, asked when a scheduled try
    suggests it is gone; a gone one goes through the deleted-server path
    at once (:meth:`.inventory.InstanceCleanup.deleted`)."""

    def __init__(self, compute, cleanup, now=models.utcnow):
        """``compute``: :class:`snapmanager_nova.nova.LazyCompute`."""
        self.compute = compute
        self.cleanup = cleanup
        self.now = now

    def __call__(self, context, instance_uuid):
        if not self.compute.configured:
            return False
        try:
            server = self.compute.get().get_server(instance_uuid)
        except sdk_exc.NotFoundException:
            server = None
        except (sdk_exc.SDKException, ks_exc.ClientException) as exc:
            LOG.warning("Cannot look up %s in Nova: %s", instance_uuid, exc)
            return False
        if server is not None and server.status != inventory.DELETED:
            return False
        try:
            instance = db_api.instance_get(context, instance_uuid)
        except exception.InstanceNotFound:
            return True
        self.cleanup.deleted(context, instance, self.now())
        return True
