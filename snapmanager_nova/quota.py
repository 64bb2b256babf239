"""Quotas and limits: the one place that says whether a snapshot may be
made.

The API (a snapshot taken now) and the conductor (a scheduled one) ask
:func:`check_snapshot` before they record a snapshot, so both refuse by
the same rules: the project's limits (the ``[quota]`` defaults, or an
administrator's override per project) against what the project holds.
:func:`check_on_demand_rate` is the rate limit on snapshots taken on
request. doc/source/quotas.rst explains the choices, among them why
this is not oslo.limit.

A check and the insert it allows run in the caller's transaction; two
requests racing for a project's last snapshot may both pass, so a
project can go past its limit by the number of such races, never more.
"""

import datetime
import math

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova.db import api as db_api

CONF = sm_conf.CONF

SNAPSHOTS = "snapshots"
SNAPSHOT_GIGABYTES = "snapshot_gigabytes"
# Every per-project resource, each with its default in [quota].
RESOURCES = (SNAPSHOTS, SNAPSHOT_GIGABYTES)
UNLIMITED = -1

_GIB = 1024**3


def defaults():
    return {resource: getattr(CONF.quota, resource) for resource in RESOURCES}


def limits(context, project_id):
    """The project's limits: its overrides over the defaults."""
    overrides = db_api.project_quota_get_all(context, project_id)
    return dict(defaults(), **overrides)


def usage(context, project_id):
    """What the project holds, per resource (GiB rounded up)."""
    count, size = db_api.snapshot_usage(context, project_id)
    return {SNAPSHOTS: count, SNAPSHOT_GIGABYTES: math.ceil(size / _GIB)}


def check_snapshot(context, project_id, releasing=None):
    """Raise QuotaExceeded unless the project may have one more snapshot.

    :param releasing: a callable giving how many of the project's
        snapshots the new one replaces: those its schedule's retention
        deletes once it succeeds, so that a rotating schedule at its
        limit goes on rotating. Called only when the limit is in reach.
    :raises QuotaExceeded: naming the limit.
    """
    limit = limits(context, project_id)
    count, size = db_api.snapshot_usage(context, project_id)
    _check(limit, count, size, releasing)


class ProjectBudget:
    """:func:`check_snapshot` for many snapshots of one project recorded
    in one transaction (the clock's batch): the limits and the usage are
    read once, and each snapshot taken counts against the next."""

    def __init__(self, limit, count, size):
        self.limit = limit
        self.count = count
        self.size = size

    @classmethod
    def of_projects(cls, context, project_ids):
        """``{project_id: ProjectBudget}``, read in two queries."""
        overrides = db_api.project_quota_get_many(context, project_ids)
        usage = db_api.snapshot_usage_many(context, project_ids)
        return {
            project_id: cls(
                dict(defaults(), **overrides.get(project_id, {})),
                *usage[project_id],
            )
            for project_id in project_ids
        }

    def take(self, releasing=None):
        """Raise QuotaExceeded as check_snapshot would, or count one
        more snapshot."""
        _check(self.limit, self.count, self.size, releasing)
        self.count += 1


def _check(limit, count, size, releasing):
    if limit[SNAPSHOTS] != UNLIMITED and (
        count + 1 > limit[SNAPSHOTS]
        and count + 1 - (releasing() if releasing else 0) > limit[SNAPSHOTS]
    ):
        raise exception.QuotaExceeded(
            resource=SNAPSHOTS, limit=limit[SNAPSHOTS], in_use=count
        )
    # A snapshot's size is known only once it is taken: refuse when the
    # project already holds its limit.
    gigabytes = limit[SNAPSHOT_GIGABYTES]
    if gigabytes != UNLIMITED and size >= gigabytes * _GIB:
        raise exception.QuotaExceeded(
            resource=SNAPSHOT_GIGABYTES,
            limit=gigabytes,
            in_use=math.ceil(size / _GIB),
        )


def check_on_demand_rate(context, instance_uuid, now):
    """Raise RateLimited if the server had its ``[quota]
    on_demand_snapshots`` within the last ``on_demand_period``."""
    allowed = CONF.quota.on_demand_snapshots
    period = datetime.timedelta(seconds=CONF.quota.on_demand_period)
    count, oldest = db_api.snapshot_on_demand_since(
        context, instance_uuid, now - period
    )
    if count < allowed:
        return
    # The oldest counted one leaves the period first.
    retry_after = (oldest + period - now).total_seconds() if oldest else 1
    raise exception.RateLimited(
        what=f"Too many snapshots taken on request of server {instance_uuid}",
        limit=allowed,
        period=CONF.quota.on_demand_period,
        retry_after=math.ceil(retry_after),
    )
