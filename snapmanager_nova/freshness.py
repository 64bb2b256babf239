"""The freshness check: which servers' scheduled snapshots are late.

Shared by ``GET /v1/stale-servers`` and ``snapmanager-manage freshness
check``: the database query is :func:`db.api.schedule_freshness_list`,
the rule :func:`schedule.lateness`; this module only walks the one with
the other. doc/source/freshness.rst explains the result to operators.
"""

import dataclasses
import datetime
import itertools

from oslo_log import log as logging

from snapmanager_nova import schedule as schedule_engine
from snapmanager_nova.db import api as db_api

LOG = logging.getLogger(__name__)

# Servers read per query: the rule runs in Python (DST, every family),
# so the database cannot filter the stale ones; reading in batches keeps
# a check over many servers to bounded memory and short queries.
BATCH_SIZE = 500


@dataclasses.dataclass(frozen=True)
class LateSchedule:
    """One schedule of a stale server, and how late its snapshot is."""

    schedule: object  # a models.Schedule row
    newest: datetime.datetime | None
    lateness: schedule_engine.Lateness


@dataclasses.dataclass(frozen=True)
class StaleServer:
    server_id: str
    project_id: str
    schedules: tuple  # of LateSchedule, oldest schedule first


def _late(instance, row, newest, now, grace):
    try:
        spec = schedule_engine.parse_spec(row.spec, row.timezone)
    except schedule_engine.SpecError as exc:
        # The clock switches such a schedule off at its next run; until
        # then it cannot be judged, and it is not this check's to fail.
        LOG.warning("Schedule %s not checked: %s", row.id, exc)
        return None
    since = max(row.created_at, instance.created_at)
    late = schedule_engine.lateness(
        spec,
        now,
        grace,
        newest,
        since=since,
        last_run=row.last_run_at,
        next_run=row.next_run_at,
    )
    return None if late is None else LateSchedule(row, newest, late)


def find_stale(context, now, grace, project_id=None, marker=None, limit=None):
    """The stale servers, by server id, after ``marker`` (a server id).

    :param now: the time of the check (aware).
    :param grace: a :class:`datetime.timedelta`.
    :param limit: stop after this many stale servers (None: all).
    :returns: a list of :class:`StaleServer`.
    """
    stale = []
    after = marker
    while limit is None or len(stale) < limit:
        rows = db_api.schedule_freshness_list(
            context, project_id=project_id, after=after, limit=BATCH_SIZE
        )
        for server_id, group in itertools.groupby(
            rows, key=lambda row: row[0].uuid
        ):
            group = list(group)
            late = [_late(*row, now, grace) for row in group]
            late = tuple(item for item in late if item is not None)
            if late:
                stale.append(
                    StaleServer(server_id, group[0][0].project_id, late)
                )
                if limit is not None and len(stale) == limit:
                    break
        if not rows or len({row[0].uuid for row in rows}) < BATCH_SIZE:
            break
        after = rows[-1][0].uuid
    return stale
