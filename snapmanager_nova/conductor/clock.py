"""The schedule clock: turns due schedules into snapshot work.

One tick:

1. In one transaction, claim the due schedules (``FOR UPDATE SKIP
   LOCKED``, so conductors running side by side split them), and for each
   one record a ``creating`` snapshot per target instance for the window
   ``now`` falls in, then advance ``next_run_at`` past ``now``. The
   snapshot row's unique (schedule, instance, window) key makes a retried
   or duplicated claim harmless: the second insert is refused and
   skipped. A snapshot over the project's quota
   (:func:`snapmanager_nova.quota.check_snapshot`, the API's check too)
   is not taken: its row is recorded as ``error`` saying why.
2. After the commit, announce each recorded snapshot
   (``snapmanager.snapshot.create.start``) and cast it to the agent on the
   instance's host -- unless Nova is busy with the server
   (:func:`snapmanager_nova.nova_state.busy_reason`) or that agent is
   down: such a snapshot waits for a retry (:mod:`.retries`). A server
   a restore holds is left out of the tick altogether.

A conductor killed between 1 and 2 leaves ``creating`` rows nobody works
on; after ``[conductor] operation_timeout`` reconciliation finds that the
agent has none of them and puts them back for a retry (:mod:`.reconcile`).
The functional tests kill a real conductor there (:func:`_test_crash_point`).
A conductor that was down for many windows takes only the latest one
when it comes back (``previous_run(now)``), never one per missed window.

``now`` is injected, so tests drive the clock through days in
milliseconds.
"""

import dataclasses
import datetime
import types

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


def utcnow():
    return datetime.datetime.now(datetime.UTC)


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
    def __init__(self, compute_api, now=utcnow, dispatcher=None):
        self.compute_api = compute_api
        self.now = now
        self.dispatcher = dispatcher or retries.SnapshotDispatcher(
            compute_api, now=now
        )

    def tick(self, context):
        """Claim what is due now and dispatch it; return the Dispatches."""
        now = self.now()
        dispatches = self._claim(context, now)
        if dispatches:
            LOG.info(
                "Claimed %d snapshot(s) of due windows; casting them",
                len(dispatches),
            )
        for dispatch in dispatches:
            _test_crash_point("casting")
            if dispatch.snapshot is not None:
                notifier.snapshot_changed(context, dispatch.snapshot, None)
            self._dispatch(context, dispatch)
        return dispatches

    def _claim(self, context, now):
        dispatches = []
        with db_api.context_manager.writer.using(context):
            due = db_api.schedule_claim_due(
                context, now, CONF.conductor.claim_batch_size
            )
            for row in due:
                dispatches.extend(self._claim_one(context, row, now))
        return dispatches

    def _claim_one(self, context, row, now):
        try:
            spec = schedule_engine.parse_spec(row.spec, row.timezone)
        except schedule_engine.SpecError as exc:
            # Specs are validated on the way in; one that no longer parses
            # (a timezone removed from tzdata) is switched off, loudly,
            # rather than retried every tick.
            LOG.error("Schedule %s disabled: %s", row.id, exc)
            db_api.schedule_update(context, row.id, {"enabled": False})
            return []
        window = spec.previous_run(now)
        db_api.schedule_update(
            context,
            row.id,
            {"next_run_at": spec.next_run(now), "last_run_at": window},
        )
        if window is None:
            return []
        dispatches = []
        targets = db_api.schedule_targets_by_precedence(context, row)
        # A restore holds these: the server is ours, stopped and locked,
        # and a snapshot's success would run retention over the one
        # being restored. The window is skipped, not deferred.
        held = db_api.instance_uuids_held(
            context, [instance.uuid for instance in targets]
        )
        for instance in targets:
            if instance.uuid in held:
                LOG.info(
                    "Schedule %s: %s skipped, a restore holds it",
                    row.id,
                    instance.uuid,
                )
                continue
            dispatch = self._record(context, row, instance, window)
            if dispatch is not None:
                dispatches.append(dispatch)
        return dispatches

    def _record(self, context, row, instance, window):
        try:
            quota.check_snapshot(
                context,
                instance.project_id,
                releasing=lambda: _released_by_retention(
                    context, row, instance, window
                ),
            )
        except exception.QuotaExceeded as exc:
            self._refuse(context, row, instance, window, exc)
            return None
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

    def _dispatch(self, context, dispatch):
        self.dispatcher.dispatch(
            context,
            dispatch.snapshot_id,
            dispatch.instance_uuid,
            dispatch.host,
            dispatch.index,
            busy=dispatch.busy,
        )


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
