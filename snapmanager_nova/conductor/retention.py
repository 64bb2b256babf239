"""Retention: which snapshots go, and sending them to be deleted.

After each success
    When an agent reports a scheduled snapshot ``available``,
    :meth:`Retention.after_success` asks the pure planner
    (:func:`snapmanager_nova.schedule.plan_deletions`) which of that
    schedule's snapshots of that instance to delete, under the schedule's
    policy and in its timezone. The planner never picks the newest
    available snapshot and picks nothing while the newest finished one
    failed. A snapshot's time is its ``window_start``: the point in time
    it stands for (the request time of an on-demand one).

Roll-off
    Snapshots no live schedule governs are never reached that way, so
    :meth:`Retention.roll_off` runs as a periodic task (see
    doc/source/retention.rst for the rules and why):

    * of a server Nova deleted: at once without ``keep_after_delete``
      (normally the inventory's cleanup did that already), else once
      older than ``[conductor] unscheduled_max_age`` days;
    * of a live server, taken on demand or left by a deleted schedule:
      once older than that, except the newest available one.

Deleting
    Each doomed snapshot moves to ``deleting`` (a conditional update: of
    two conductors planning at once, one wins each snapshot) and is cast
    to the agent on the instance's host, which reports ``deleted``. Only
    while that agent is up: otherwise the snapshots stay as they are and
    the next pass plans again.
"""

import collections
import datetime

import oslo_messaging as messaging
from oslo_log import log as logging

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova import schedule as schedule_engine
from snapmanager_nova.conductor import inventory
from snapmanager_nova.conductor import retries
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from snapmanager_nova.notifications import notifier

CONF = sm_conf.CONF
LOG = logging.getLogger(__name__)

# Every status a snapshot row has before it is gone; the planner needs
# the unfinished ones too (it ignores them, but they are the schedule's).
NOT_DELETED = [
    status
    for status in models.SNAPSHOT_STATUSES
    if status != models.SNAPSHOT_DELETED
]


def plan(snapshots, policy, now, timezone="UTC"):
    """The rows among ``snapshots`` the planner deletes, oldest first."""
    by_id = {row.id: row for row in snapshots}
    doomed = schedule_engine.plan_deletions(
        [
            schedule_engine.SnapshotInfo(
                id=row.id, created_at=row.window_start, status=row.status
            )
            for row in snapshots
        ],
        policy,
        now,
        timezone,
    )
    return [by_id[snapshot_id] for snapshot_id in doomed]


class Retention:
    def __init__(self, compute_api, now=models.utcnow, router=None):
        """``router``: the conductor's :class:`.release.AgentRouter`, so
        that snapshots whose instance's host is down or does not serve
        their backend (RBD: the cluster's) go to an agent that does;
        None: only the instance's own agent is asked."""
        self.compute_api = compute_api
        self.now = now
        self.agents = retries.AgentLiveness()
        self.router = router

    def after_success(self, context, snapshot):
        """Apply the snapshot's schedule's retention; return the ids of
        the snapshots sent to be deleted."""
        return self.after_successes(context, [snapshot])

    def after_successes(self, context, snapshots):
        """:meth:`after_success` for several snapshots, each the newest
        reported of its instance and schedule: everything the planner
        needs is read in one transaction of a few queries, whatever
        their number."""
        scheduled = [row for row in snapshots if row.schedule_id is not None]
        if not scheduled:
            return []
        with db_api.context_manager.reader.using(context):
            found = self._schedules_and_snapshots(context, scheduled)
        now = self.now()
        sent = []
        for schedule, instance, policy, rows in found:
            doomed = plan(rows, policy, now, schedule.timezone)
            sent.extend(
                self.delete(
                    context,
                    instance,
                    doomed,
                    f"retention of schedule {schedule.id}",
                )
            )
        return sent

    @staticmethod
    def _schedules_and_snapshots(context, snapshots):
        """(schedule, instance, retention policy, the schedule's
        snapshots of the instance) for each (instance, schedule) of
        ``snapshots`` that has something to apply."""
        pairs = {(row.instance_uuid, row.schedule_id) for row in snapshots}
        schedule_ids = sorted({schedule_id for _uuid, schedule_id in pairs})
        uuids = sorted({uuid for uuid, _schedule_id in pairs})
        schedules = {
            schedule.id: schedule
            for schedule in db_api.schedule_list(
                context, schedule_id=schedule_ids
            )
        }
        instances = {
            instance.uuid: instance
            for instance in db_api.instance_list_by_uuids(context, uuids)
        }
        kept = collections.defaultdict(list)
        for row in db_api.snapshot_list(
            context,
            schedule_id=schedule_ids,
            instance_uuid=uuids,
            status=NOT_DELETED,
        ):
            kept[(row.instance_uuid, row.schedule_id)].append(row)
        found = []
        for uuid, schedule_id in sorted(pairs):
            schedule = schedules.get(schedule_id)
            instance = instances.get(uuid)
            if schedule is None:
                continue  # deleted meanwhile: they roll off by age
            if instance is None or instance.deleted_at is not None:
                continue
            try:
                policy = schedule_engine.RetentionPolicy.from_dict(
                    schedule.retention or {}
                )
            except schedule_engine.RetentionError as exc:
                # Validated on the way in; keeping everything is the safe
                # answer to a policy that no longer reads.
                LOG.error(
                    "Schedule %s: retention %r is unusable (%s); nothing "
                    "deleted",
                    schedule.id,
                    schedule.retention,
                    exc,
                )
                continue
            rows = kept[(uuid, schedule_id)]
            found.append((schedule, instance, policy, rows))
        return found

    def roll_off(self, context):
        """Periodic task: delete the snapshots no live schedule keeps.

        Returns the ids of the snapshots sent to be deleted.
        """
        now = self.now()
        limit = CONF.conductor.claim_batch_size
        days = CONF.conductor.unscheduled_max_age
        cutoff = now - datetime.timedelta(days=days) if days else None
        doomed = collections.defaultdict(list)
        for row in db_api.snapshot_list_of_deleted_instances(
            context, cutoff, limit
        ):
            doomed[row.instance_uuid].append(row)
        if cutoff is not None:
            policy = schedule_engine.RetentionPolicy(
                max_age=datetime.timedelta(days=days)
            )
            instance_uuids = db_api.instance_uuids_with_unscheduled_snapshots(
                context, cutoff, limit
            )
            for instance_uuid in instance_uuids:
                unscheduled = [
                    row
                    for row in db_api.snapshot_list(
                        context,
                        instance_uuid=instance_uuid,
                        status=NOT_DELETED,
                    )
                    if row.schedule_id is None
                ]
                # The planner keeps the newest available one; failed ones
                # are left out of it, as no schedule will ever succeed
                # over them, and go by age alone.
                doomed[instance_uuid].extend(
                    plan(
                        [
                            row
                            for row in unscheduled
                            if row.status == models.SNAPSHOT_AVAILABLE
                        ],
                        policy,
                        now,
                    )
                )
                doomed[instance_uuid].extend(
                    row
                    for row in unscheduled
                    if row.status == models.SNAPSHOT_ERROR
                    and row.window_start < cutoff
                )
        sent = []
        for instance in db_api.instance_list_by_uuids(context, set(doomed)):
            sent.extend(
                self.delete(
                    context, instance, doomed[instance.uuid], "roll-off"
                )
            )
        return sent

    def delete(self, context, instance, snapshots, why):
        """Send ``snapshots`` of ``instance`` to its agent to be deleted.

        Returns the ids sent (or found to have nothing stored).
        """
        if not snapshots:
            return []
        host = self._host_for(context, instance, snapshots)
        if host is None:
            LOG.warning(
                "%s: the agent on %s is down or does not serve their "
                "backend, and no other can delete them; snapshots %s of %s "
                "stay until a later pass",
                why,
                instance.host,
                [row.id for row in snapshots],
                instance.uuid,
            )
            return []
        sent = []
        for row in snapshots:
            previous = row.status
            try:
                row = db_api.snapshot_update_status(
                    context, row.id, models.SNAPSHOT_DELETING
                )
            except (
                exception.InvalidStatusTransition,
                exception.NotFound,
            ) as exc:
                LOG.debug("Snapshot %s not deleted: %s", row.id, exc)
                continue
            notifier.snapshot_changed(context, row, previous)
            sent.append(row.id)
            try:
                inventory.cast_snapshot_delete(
                    self.compute_api, context, instance, row, host=host
                )
            except messaging.MessagingException as exc:
                # Left ``deleting``: reconciliation asks again once
                # [conductor] operation_timeout has passed.
                LOG.error(
                    "%s: cannot ask the agent on %s to delete snapshot %s: %s",
                    why,
                    host,
                    row.id,
                    exc,
                )
        if sent:
            LOG.info(
                "%s: deleting snapshots %s of %s", why, sent, instance.uuid
            )
        return sent

    def _host_for(self, context, instance, snapshots):
        """The live agent to send the deletions to, or None."""
        own = instance.host
        backends = {
            inventory.snapshot_backend(row) or instance.backend
            for row in snapshots
        } - {None}
        if self.router is None or len(backends) != 1:
            up = own and self.agents.is_up(context, own)
            return own if up else None
        (backend,) = backends
        candidates = self.router.candidates(context, instance, backend)
        return candidates[0] if candidates else None
