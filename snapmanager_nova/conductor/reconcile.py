"""Reconciliation: the database and the agents' storage brought to agree.

Work can be lost between the conductor and an agent: a conductor killed
between recording a snapshot and casting it, an agent killed while it
worked, a result that never arrived. Every ``[conductor]
reconcile_interval`` seconds this pass asks the agents what they have
(the compute RPC call ``list_snapshots``: the snapshot indexes complete
in storage for one instance) and settles both sides:

Rows stuck in ``creating`` or ``deleting`` longer than ``[conductor]
operation_timeout`` (since the row last changed):

============  ======================  ====================================
status        index in storage        outcome
============  ======================  ====================================
deleting      yes                     asked to delete again
deleting      no                      ``deleted``
creating      no                      the work was lost: tried again
                                      (scheduled snapshots, within
                                      ``max_retries``) or ``error``
creating      yes                     the agent made it but its result was
                                      lost; the agent cannot describe it
                                      (``list_snapshots`` gives only
                                      indexes), so it cannot be restored:
                                      ``error``, and deleted from storage
============  ======================  ====================================

Snapshots in storage that no row knows (no row with that index, other
than ``deleted`` ones) are looked for on ``[conductor]
reconcile_batch_size`` instances per pass, the next pass going on after
the last one looked at (and starting over at the end): the cost of a
pass is bounded whatever the number of instances with snapshots. They
are deleted once they have been seen unknown for
``operation_timeout``: a row is always written before its agent is asked
to work, and the agent is listed before the rows are read, so an index
that stays unknown that long is nobody's. Each one gets a row of its own
(``deleting``, then ``deleted``, with why in ``error``) so that its
removal is on record and follows the usual path.

An agent that is down or does not answer is left alone, with a log
line, and asked again next pass. Several conductors may reconcile at
once: every status change is conditional and every agent operation
idempotent.
"""

import collections
import dataclasses
import datetime

import oslo_messaging as messaging
from oslo_log import log as logging

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova.conductor import inventory
from snapmanager_nova.conductor import release
from snapmanager_nova.conductor import snapshot_operations
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from snapmanager_nova.notifications import notifier

CONF = sm_conf.CONF
LOG = logging.getLogger(__name__)

MARK_DELETED = "mark-deleted"
DELETE_AGAIN = "delete-again"
RETRY = "retry"
DISCARD = "discard"

# The backends an agent may hold a snapshot in, when the database does
# not say which (volumes are Cinder's, not the agent's).
AGENT_BACKENDS = ("file", "rbd")
# How long reconciliation waits for an agent's answer.
LIST_TIMEOUT = 60


@dataclasses.dataclass(frozen=True)
class Action:
    kind: str
    snapshot_id: str


def plan_stuck(snapshots, present, listed_on=None):
    """What to do with stuck snapshots, given the indexes in storage.

    :param snapshots: rows with ``id``, ``status`` and ``snapshot_index``.
    :param present: the indexes the agent has for their instance.
    :param listed_on: the host whose agent listed ``present``. A
        snapshot held by another host (its server moved since,
        doc/source/multihost.rst) is not in that list whether or not its
        holder still has it: its deletion is asked of the holder again,
        never marked done on the word of a host that never held it.
    """
    actions = []
    for row in snapshots:
        stored = row.snapshot_index in present
        if row.status == models.SNAPSHOT_DELETING:
            holder = getattr(row, "host", None)
            elsewhere = holder is not None and holder != listed_on
            kind = DELETE_AGAIN if stored or elsewhere else MARK_DELETED
        elif row.status == models.SNAPSHOT_CREATING:
            kind = DISCARD if stored else RETRY
        else:
            continue  # moved on meanwhile
        actions.append(Action(kind, row.id))
    return actions


class OrphanWatch:
    """Since when each index in storage has been unknown to the database.

    In memory: a conductor that restarts starts counting again, which
    only delays a deletion.
    """

    def __init__(self):
        self._since = {}

    def observe(self, instance_uuid, unknown, now, timeout):
        """Record this pass's unknown indexes of an instance; return the
        ones unknown for at least ``timeout``, in order."""
        unknown = set(unknown)
        for key in list(self._since):
            if key[0] == instance_uuid and key[1] not in unknown:
                del self._since[key]
        due = []
        for index in sorted(unknown):
            since = self._since.setdefault((instance_uuid, index), now)
            if now - since >= timeout:
                due.append(index)
        return due

    def forget(self, instance_uuid, index):
        self._since.pop((instance_uuid, index), None)


class Reconciler:
    def __init__(
        self, compute_api, dispatcher, now=models.utcnow, router=None
    ):
        """``dispatcher``: the :class:`.retries.SnapshotDispatcher` that
        takes lost snapshots back for a retry; ``router``: the
        conductor's :class:`.release.AgentRouter` (a new one if None)."""
        self.compute_api = compute_api
        self.dispatcher = dispatcher
        self.agents = dispatcher.agents
        # Work on RBD snapshots whose instance's host does not serve rbd
        # goes to another agent that does (see .release).
        self.router = router or release.AgentRouter(self.agents)
        self._routed = {}
        self.now = now
        self.orphans = OrphanWatch()
        # The last instance the previous pass looked for orphans on.
        self._orphan_cursor = None

    def run(self, context):
        """Periodic task: one pass. Returns the actions taken, as
        ``(kind, snapshot_id)`` pairs, orphans as ``("orphan", id)``."""
        now = self.now()
        timeout = datetime.timedelta(seconds=CONF.conductor.operation_timeout)
        # Routes hold for one pass: the agents that answered this time.
        self._routed = {}
        done = self._stuck(context, now, timeout)
        done.extend(self._orphans(context, now, timeout))
        return done

    # Rows stuck in creating or deleting

    def _stuck(self, context, now, timeout):
        cutoff = now - timeout
        stuck = collections.defaultdict(list)
        for row in db_api.snapshot_list_stuck(
            context, cutoff, CONF.conductor.claim_batch_size
        ):
            stuck[row.instance_uuid].append(row)
        done = []
        for instance in db_api.instance_list_by_uuids(context, set(stuck)):
            if _released_elsewhere(instance):
                continue
            rows = stuck[instance.uuid]
            backends = {inventory.snapshot_backend(row) for row in rows}
            backends.add(instance.backend)
            stored = self._list(context, instance, backends - {None})
            if stored is None:
                continue
            present = set().union(*stored.values())
            # Read again after listing: a snapshot that moved on while the
            # agent answered is not stuck any more.
            stale_ids = {row.id for row in rows}
            fresh = {
                row.id: row
                for row in db_api.snapshot_list(
                    context,
                    instance_uuid=instance.uuid,
                    status=[
                        models.SNAPSHOT_CREATING,
                        models.SNAPSHOT_DELETING,
                    ],
                )
                if row.id in stale_ids and _still_stuck(row, cutoff)
            }
            for action in plan_stuck(fresh.values(), present, instance.host):
                row = fresh[action.snapshot_id]
                self._settle(context, instance, row, action.kind)
                done.append((action.kind, row.id))
        return done

    def _settle(self, context, instance, row, kind):
        waited = CONF.conductor.operation_timeout
        LOG.warning(
            "Reconciliation: snapshot %s (index %s) of %s, %s for over %s "
            "s: %s",
            row.id,
            row.snapshot_index,
            instance.uuid,
            row.status,
            waited,
            kind,
        )
        try:
            if kind == MARK_DELETED:
                deleted = db_api.snapshot_update_status(
                    context, row.id, models.SNAPSHOT_DELETED
                )
                snapshot_operations.finish(
                    context, deleted, models.SNAPSHOT_DELETING
                )
            elif kind == DELETE_AGAIN:
                db_api.snapshot_touch(context, row.id)
                self._cast_delete(context, instance, row)
            elif kind == RETRY:
                self.dispatcher.defer(
                    context,
                    row.id,
                    row.attempts,
                    f"the agent on {instance.host} has no such snapshot "
                    f"after {waited} s: the request or its work was lost",
                    retry=row.schedule_id is not None,
                )
            elif kind == DISCARD:
                reason = (
                    f"the agent on {instance.host} made it but its result "
                    "was lost, and it cannot be described again to be "
                    "restored; deleted"
                )
                failed = db_api.snapshot_update_status(
                    context, row.id, models.SNAPSHOT_ERROR, error=reason
                )
                snapshot_operations.finish(
                    context, failed, models.SNAPSHOT_CREATING, reason
                )
                row = db_api.snapshot_update_status(
                    context, row.id, models.SNAPSHOT_DELETING
                )
                notifier.snapshot_changed(context, row, models.SNAPSHOT_ERROR)
                self._cast_delete(context, instance, row)
        except (exception.InvalidStatusTransition, exception.NotFound) as exc:
            LOG.info("Snapshot %s moved on meanwhile: %s", row.id, exc)

    # Snapshots in storage that no row knows

    def _orphan_slice(self, context):
        """This pass's instances to look for orphans on, after the
        previous pass's, starting over once all were seen."""
        size = CONF.conductor.reconcile_batch_size
        instances = db_api.instance_list_with_snapshot_indexes(
            context, after=self._orphan_cursor, limit=size
        )
        if len(instances) < size:
            self._orphan_cursor = None  # the end: start over next pass
        else:
            self._orphan_cursor = instances[-1].uuid
        return instances

    def _orphans(self, context, now, timeout):
        done = []
        for instance in self._orphan_slice(context):
            if _released_elsewhere(instance):
                continue
            backend = inventory.instance_backend(context, instance)
            stored = self._list(
                context,
                instance,
                {backend} if backend else set(AGENT_BACKENDS),
                quiet=True,
            )
            if stored is None:
                continue
            # Rows read after listing (see the module's docstring).
            known = {
                row.snapshot_index
                for row in db_api.snapshot_list(
                    context,
                    instance_uuid=instance.uuid,
                    status=[
                        status
                        for status in models.SNAPSHOT_STATUSES
                        if status != models.SNAPSHOT_DELETED
                    ],
                )
            }
            where = {
                index: name
                for name, indexes in sorted(stored.items())
                for index in indexes
            }
            due = self.orphans.observe(
                instance.uuid, set(where) - known, now, timeout
            )
            for index in due:
                snapshot_id = self._delete_orphan(
                    context, instance, where[index], index
                )
                if snapshot_id is not None:
                    self.orphans.forget(instance.uuid, index)
                    done.append(("orphan", snapshot_id))
        return done

    def _delete_orphan(self, context, instance, backend, index):
        LOG.warning(
            "Reconciliation: snapshot index %s of %s is in %s storage on %s "
            "but no row knows it; deleting it",
            index,
            instance.uuid,
            backend,
            instance.host,
        )
        row = db_api.snapshot_create(
            context,
            {
                "instance_uuid": instance.uuid,
                "snapshot_index": index,
                "backend": backend,
                "status": models.SNAPSHOT_DELETING,
                "error": "found in storage with no record of it; deleted "
                "by reconciliation",
            },
        )
        notifier.snapshot_changed(context, row, None)
        self._cast_delete(context, instance, row)
        return row.id

    # The agent

    def _list(self, context, instance, backends, quiet=False):
        """{backend: indexes} the agent has for the instance, or None if
        it cannot be asked now."""
        if not instance.host or not self.agents.is_up(context, instance.host):
            log = LOG.debug if quiet else LOG.warning
            log(
                "Reconciliation: the agent on %s is down; %s is looked at "
                "again next pass",
                instance.host,
                instance.uuid,
            )
            return None
        stored = {}
        for backend in sorted(backends or AGENT_BACKENDS):
            if len(backends) == 1 and self.router.lacks(
                instance.host, backend
            ):
                # Known not to serve it: another agent, or nobody.
                indexes = self._list_elsewhere(context, instance, backend)
                if indexes is None:
                    return None
                stored[backend] = indexes
                continue
            try:
                indexes = self.compute_api.list_snapshots(
                    context,
                    instance.host,
                    instance.uuid,
                    backend,
                    timeout=LIST_TIMEOUT,
                )
            except messaging.RemoteError as exc:
                if len(backends) == 1 and release.answered(
                    exc, exception.BackendNotEnabled
                ):
                    self.router.learn_lacking(instance.host, backend)
                    indexes = self._list_elsewhere(context, instance, backend)
                    if indexes is None:
                        return None
                    stored[backend] = indexes
                    continue
                if len(backends) == 1:
                    LOG.error(
                        "Reconciliation: the agent on %s cannot list %s "
                        "snapshots of %s: %s",
                        instance.host,
                        backend,
                        instance.uuid,
                        exc.value,
                    )
                    return None
                continue  # a backend not enabled on that host
            except messaging.MessagingException as exc:
                LOG.warning(
                    "Reconciliation: the agent on %s does not answer (%s); "
                    "%s is looked at again next pass",
                    instance.host,
                    exc,
                    instance.uuid,
                )
                return None
            stored[backend] = set(indexes)
        return stored

    def _list_elsewhere(self, context, instance, backend):
        """The indexes another agent lists for a backend the instance's
        host does not serve (RBD is the cluster's), or None."""
        try:
            host, indexes = self.router.call(
                context,
                instance,
                backend,
                lambda host: self.compute_api.list_snapshots(
                    context, host, instance.uuid, backend, timeout=LIST_TIMEOUT
                ),
            )
        except release.AgentsUnavailable as exc:
            LOG.debug(
                "Reconciliation: %s snapshots of %s cannot be listed: %s",
                backend,
                instance.uuid,
                exc,
            )
            return None
        self._routed[(instance.uuid, backend)] = host
        return set(indexes)

    def _cast_delete(self, context, instance, row):
        backend = inventory.snapshot_backend(row) or instance.backend
        try:
            inventory.cast_snapshot_delete(
                self.compute_api,
                context,
                instance,
                row,
                host=self._routed.get((instance.uuid, backend)),
            )
        except messaging.MessagingException as exc:
            LOG.error(
                "Reconciliation: cannot ask the agent on %s to delete "
                "snapshot %s: %s",
                instance.host,
                row.id,
                exc,
            )


def _released_elsewhere(instance):
    """Whether the instance's snapshots are the deleted-server release's
    (:mod:`.release`), which routes them to an agent that can act and
    retries with backoff, or were given up by an operator: asking its
    host here again every pass would only repeat what the release
    reports."""
    return instance.release_state in (
        models.RELEASE_PENDING,
        models.RELEASE_ABANDONED,
    )


def _still_stuck(row, cutoff):
    changed = row.updated_at or row.created_at
    if row.status == models.SNAPSHOT_CREATING and row.next_attempt_at:
        return False
    return changed < cutoff
