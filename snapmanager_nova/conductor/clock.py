"""The schedule clock: turns due schedules into snapshot work.

One tick:

1. In one transaction, claim the due schedules (``FOR UPDATE SKIP
   LOCKED``, so conductors running side by side split them), and for each
   one record a ``creating`` snapshot per target instance for the window
   ``now`` falls in, then advance ``next_run_at`` past ``now``. The
   snapshot row's unique (schedule, instance, window) key makes a retried
   or duplicated claim harmless: the second insert is refused and
   skipped. A snapshot over the project's quota
   (:class:`snapmanager_nova.quota.ProjectBudget`, which counts as the
   API's :func:`~snapmanager_nova.quota.check_snapshot` does) is not
   taken: its row is recorded as ``error`` saying why.
2. After the commit, announce each recorded snapshot
   (``snapmanager.snapshot.create.start``) and cast it to the agent on the
   instance's host -- unless Nova is busy with the server
   (:func:`snapmanager_nova.nova_state.busy_reason`) or that agent is
   down: such a snapshot waits for a retry (:mod:`.retries`). A server
   a restore holds is left out of the tick altogether.

A pass repeats 1 and 2, batch after batch (``[conductor]
claim_batch_size`` schedules each), while a batch comes back full and
``[conductor] claim_time_slice`` is not used up: a window that thousands
of servers share is started within the minute, not one batch per
``tick_interval``. With ``[conductor] batch_casts`` the snapshots of a
batch go to each host in messages of up to ``cast_batch_size``
(``create_snapshots``, compute RPC 1.1).

A conductor killed between 1 and 2 leaves ``creating`` rows nobody works
on; after ``[conductor] operation_timeout`` reconciliation finds that the
agent has none of them and puts them back for a retry (:mod:`.reconcile`).
The functional tests kill a real conductor there (:func:`_test_crash_point`).
A conductor that was down for many windows takes only the latest one
when it comes back (``previous_run(now)``), never one per missed window.

``now`` is injected, so tests drive the clock through days in
milliseconds.
"""

import collections
import dataclasses
import functools
import time
import types

import oslo_messaging as messaging
from oslo_log import log as logging

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova import nova_state
from snapmanager_nova import quota
from snapmanager_nova import schedule as schedule_engine
from snapmanager_nova.conductor import retention
from snapmanager_nova.conductor import retries
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from snapmanager_nova.notifications import notifier

CONF = sm_conf.CONF
LOG = logging.getLogger(__name__)


def _test_crash_point(stage):
    """Where crash-safety tests kill the conductor; does nothing otherwise.

    Stage: ``casting`` (before each cast of a tick, the claim committed).
    """


@dataclasses.dataclass(frozen=True)
class Dispatch:
    """A snapshot recorded by a tick, to be cast to its agent."""

    snapshot_id: str
    instance_uuid: str
    host: str | None
    index: int
    # Why Nova's server cannot be snapshotted now, if it cannot.
    busy: str | None = None
    # The row as recorded, for its notification.
    snapshot: object = dataclasses.field(
        default=None, compare=False, repr=False
    )


class ScheduleClock:
    def __init__(self, compute_api, now=models.utcnow, dispatcher=None):
        self.compute_api = compute_api
        self.now = now
        self.dispatcher = dispatcher or retries.SnapshotDispatcher(
            compute_api, now=now
        )

    def tick(self, context):
        """Claim what is due now and dispatch it, batch after batch while
        more is due and the time slice lasts; return the Dispatches."""
        started = time.monotonic()
        dispatches = []
        while True:
            claimed, full = self._claim(context, self.now())
            if claimed:
                LOG.info(
                    "Claimed %d snapshot(s) of due windows; casting them",
                    len(claimed),
                )
            self._dispatch_batch(context, claimed)
            dispatches.extend(claimed)
            elapsed = time.monotonic() - started
            if not full or elapsed >= CONF.conductor.claim_time_slice:
                return dispatches

    def _claim(self, context, now):
        """(the Dispatches of one batch, whether the batch was full).

        A fixed number of statements for the whole batch rather than a
        dozen per schedule: the windows of each distinct spec computed
        once, the schedules advanced, and the holds, taken windows,
        quota usage and indexes read or written together, the snapshot
        rows inserted in one flush. Only a project or operator default
        reads its targets on its own (its precedence rules are a query
        per schedule).
        """
        with db_api.context_manager.writer.using(context):
            due = db_api.schedule_claim_due(
                context, now, CONF.conductor.claim_batch_size
            )
            windows = self._advance(context, due, now)
            targets = self._targets(context, due, windows)
            chosen = self._choose(context, targets)
            dispatches = self._record_all(context, chosen)
        return dispatches, len(due) >= CONF.conductor.claim_batch_size

    def _advance(self, context, due, now):
        """Move the due schedules on; {schedule id: the window to take}
        for those whose window is a run (not the first claim of a new
        schedule)."""
        times = {}
        advances = []
        windows = {}
        for row in due:
            key = (row.spec, row.timezone)
            if key not in times:
                try:
                    spec = schedule_engine.parse_spec(*key)
                except schedule_engine.SpecError as exc:
                    times[key] = exc
                else:
                    times[key] = (spec.previous_run(now), spec.next_run(now))
            if isinstance(times[key], schedule_engine.SpecError):
                # Specs are validated on the way in; one that no longer
                # parses (a timezone removed from tzdata) is switched
                # off, loudly, rather than retried every tick.
                LOG.error("Schedule %s disabled: %s", row.id, times[key])
                db_api.schedule_update(context, row.id, {"enabled": False})
                continue
            window, next_run = times[key]
            advances.append((row.id, next_run, window))
            if window is not None:
                windows[row.id] = window
        db_api.schedules_advance(context, advances)
        return windows

    @staticmethod
    def _targets(context, due, windows):
        """(schedule, instance, window) for each instance a due schedule
        snapshots now; tenants' schedules of their own servers read
        together."""
        due = [row for row in due if row.id in windows]
        own, others = _split_own(due)
        instances = {
            instance.uuid: instance
            for instance in db_api.instances_to_snapshot(
                context, [row.instance_uuid for row in own]
            )
        }
        targets = [
            (row, instances[row.instance_uuid], windows[row.id])
            for row in own
            if row.instance_uuid in instances
        ]
        for row in others:
            targets.extend(
                (row, instance, windows[row.id])
                for instance in db_api.schedule_targets_by_precedence(
                    context, row
                )
            )
        return targets

    def _choose(self, context, targets):
        """Those of ``targets`` to record: not held by a restore, their
        window not taken yet, and within the project's quota (a refusal
        is recorded)."""
        held = db_api.instance_uuids_held(
            context, list({instance.uuid for _r, instance, _w in targets})
        )
        taken = db_api.snapshot_windows_taken(
            context,
            list({row.id for row, _i, _w in targets}),
            {window for _r, _i, window in targets},
        )
        budgets = quota.ProjectBudget.of_projects(
            context, {instance.project_id for _r, instance, _w in targets}
        )
        chosen = []
        for row, instance, window in targets:
            if instance.uuid in held:
                # A restore holds it: the server is ours, stopped and
                # locked, and a snapshot's success would run retention
                # over the one being restored. Skipped, not deferred.
                LOG.info(
                    "Schedule %s: %s skipped, a restore holds it",
                    row.id,
                    instance.uuid,
                )
                continue
            if (row.id, instance.uuid, window) in taken:
                LOG.debug(
                    "Window %s of schedule %s for %s already taken",
                    window,
                    row.id,
                    instance.uuid,
                )
                continue
            try:
                budgets[instance.project_id].take(
                    releasing=functools.partial(
                        _released_by_retention, context, row, instance, window
                    )
                )
            except exception.QuotaExceeded as exc:
                self._refuse(context, row, instance, window, exc)
                continue
            chosen.append((row, instance, window))
        return chosen

    def _record_all(self, context, chosen):
        """Record the snapshots of ``chosen`` (schedule, instance,
        window) triples; their Dispatches."""
        if not chosen:
            return []
        # Two schedules of one server due together: the second and later
        # are recorded on their own, after the batch.
        seen = set()
        later = []
        batch = []
        for triple in chosen:
            uuid = triple[1].uuid
            (later if uuid in seen else batch).append(triple)
            seen.add(uuid)
        return self._record_batch(context, batch) + [
            dispatch
            for row, instance, window in later
            if (dispatch := self._record(context, row, instance, window))
        ]

    def _record_batch(self, context, chosen):
        """:meth:`_record_all` for distinct instances."""
        indexes = db_api.instance_allocate_snapshot_indexes(
            context, [instance.uuid for _row, instance, _window in chosen]
        )
        values = [
            {
                "instance_uuid": instance.uuid,
                "project_id": instance.project_id,
                "schedule_id": row.id,
                "window_start": window,
                "snapshot_index": indexes[instance.uuid],
                "backend": instance.backend,
            }
            for row, instance, window in chosen
        ]
        try:
            # A savepoint: a window taken meanwhile undoes only this.
            with db_api.context_manager.writer.savepoint.using(context):
                snapshots = db_api.snapshots_create_scheduled(context, values)
        except exception.DuplicateWindow:
            # Each on its own then, the taken ones refused (the indexes
            # just allocated stay unused: they are never reused anyway).
            return [
                dispatch
                for row, instance, window in chosen
                if (dispatch := self._record(context, row, instance, window))
            ]
        return [
            Dispatch(
                snapshot.id,
                instance.uuid,
                instance.host,
                snapshot.snapshot_index,
                nova_state.busy_reason(instance),
                snapshot,
            )
            for snapshot, (_row, instance, _window) in zip(
                snapshots, chosen, strict=True
            )
        ]

    def _dispatch_batch(self, context, dispatches):
        casts = None
        compute_api = getattr(self.dispatcher, "compute_api", None)
        if CONF.conductor.batch_casts and hasattr(
            compute_api, "create_snapshots"
        ):
            # The dispatcher's checks (host known, agent up, Nova not
            # busy) stay as they are; only its casts are gathered.
            casts = HostCasts(compute_api, CONF.conductor.cast_batch_size)
        try:
            for dispatch in dispatches:
                _test_crash_point("casting")
                if dispatch.snapshot is not None:
                    notifier.snapshot_changed(context, dispatch.snapshot, None)
                self._dispatch(context, dispatch, casts)
        finally:
            if casts is not None:
                for snapshot_id, reason in casts.flush(context):
                    # As the dispatcher does with a single cast refused.
                    self.dispatcher.defer(context, snapshot_id, 0, reason)

    def _record(self, context, row, instance, window):
        """Record one snapshot :meth:`_choose` chose (its quota taken
        there); its Dispatch, or None if the window was taken meanwhile."""
        try:
            # A savepoint: a refused duplicate must not undo the rest of
            # the tick's transaction.
            with db_api.context_manager.writer.savepoint.using(context):
                index = db_api.instance_allocate_snapshot_index(
                    context, instance.uuid
                )
                snapshot = db_api.snapshot_create(
                    context,
                    {
                        "instance_uuid": instance.uuid,
                        "schedule_id": row.id,
                        "window_start": window,
                        "snapshot_index": index,
                        "backend": instance.backend,
                    },
                )
        except exception.DuplicateWindow:
            LOG.debug(
                "Window %s of schedule %s for %s already taken",
                window,
                row.id,
                instance.uuid,
            )
            return None
        return Dispatch(
            snapshot.id,
            instance.uuid,
            instance.host,
            index,
            nova_state.busy_reason(instance),
            snapshot,
        )

    def _refuse(self, context, row, instance, window, exc):
        """Record the window's snapshot as failed, saying why, instead of
        taking it. The row takes the window, so the refusal is recorded
        once however many conductors claim it, and the tenant sees it
        among the server's snapshots."""
        LOG.warning(
            "Schedule %s: no snapshot of %s for %s: %s",
            row.id,
            instance.uuid,
            window,
            exc.message,
        )
        try:
            with db_api.context_manager.writer.savepoint.using(context):
                db_api.snapshot_create(
                    context,
                    {
                        "instance_uuid": instance.uuid,
                        "schedule_id": row.id,
                        "window_start": window,
                        "backend": instance.backend,
                        "status": models.SNAPSHOT_ERROR,
                        "error": exc.message,
                        # Written for tenants (it names only the limit).
                        "error_summary": exc.message,
                        "completed_at": self.now(),
                    },
                )
        except exception.DuplicateWindow:
            pass

    def _dispatch(self, context, dispatch, sender=None):
        self.dispatcher.dispatch(
            context,
            dispatch.snapshot_id,
            dispatch.instance_uuid,
            dispatch.host,
            dispatch.index,
            busy=dispatch.busy,
            sender=sender,
        )


class HostCasts:
    """``create_snapshot`` casts gathered per host and sent as
    ``create_snapshots`` messages of up to ``size`` snapshots: one
    message per host and batch instead of one per snapshot."""

    def __init__(self, compute_api, size):
        self.compute_api = compute_api
        self.size = size
        self.pending = collections.defaultdict(list)
        self.refused = []

    def create_snapshot(
        self, context, host, instance_uuid, snapshot_id, index, quiesce
    ):
        self.pending[host].append(
            {
                "instance_uuid": instance_uuid,
                "snapshot_id": snapshot_id,
                "index": index,
                "quiesce": quiesce,
            }
        )
        if len(self.pending[host]) >= self.size:
            self._send(context, host)

    def flush(self, context):
        """Send what is left; (snapshot id, reason) of every snapshot
        whose message the bus refused."""
        for host in list(self.pending):
            self._send(context, host)
        refused, self.refused = self.refused, []
        return refused

    def _send(self, context, host):
        snapshots = self.pending.pop(host, [])
        if not snapshots:
            return
        try:
            self.compute_api.create_snapshots(context, host, snapshots)
        except messaging.MessagingException as exc:
            reason = (
                f"the request could not be sent to the agent on {host}: {exc}"
            )
            self.refused.extend(
                (item["snapshot_id"], reason) for item in snapshots
            )


def _split_own(due):
    """(tenants' schedules of their own servers, each server's first;
    the rest): the first have their targets read together."""
    own, others, seen = [], [], set()
    for row in due:
        if (
            row.source == models.SCHEDULE_SOURCE_API
            and row.instance_uuid is not None
            and row.instance_uuid not in seen
        ):
            seen.add(row.instance_uuid)
            own.append(row)
        else:
            others.append(row)
    return own, others


def _released_by_retention(context, row, instance, window):
    """How many of the quota's snapshots the schedule's retention deletes
    once the window's snapshot succeeds (conductor/retention.py runs the
    same planner then)."""
    try:
        policy = schedule_engine.RetentionPolicy.from_dict(row.retention or {})
    except schedule_engine.RetentionError:
        return 0
    existing = db_api.snapshot_list(
        context,
        schedule_id=row.id,
        instance_uuid=instance.uuid,
        status=retention.NOT_DELETED,
    )
    new = types.SimpleNamespace(
        id=None, window_start=window, status=models.SNAPSHOT_AVAILABLE
    )
    doomed = retention.plan([*existing, new], policy, window, row.timezone)
    return sum(
        1
        for doomed_row in doomed
        if doomed_row.status in db_api.QUOTA_COUNTED_STATUSES
    )
