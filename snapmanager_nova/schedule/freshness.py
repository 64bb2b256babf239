"""Freshness: which window a schedule's snapshots must cover by a time.

The rule the freshness check (``GET /v1/stale-servers``, ``openstack
server snapshot freshness list``, ``snapmanager-manage freshness check``)
applies to each schedule and server; doc/source/freshness.rst states it
for operators. Pure and clock-free like the rest of the engine: the
callers pass the time, the grace and what the database says.
"""

import dataclasses
import datetime

from snapmanager_nova.schedule import zones


@dataclasses.dataclass(frozen=True)
class Lateness:
    """A schedule's snapshot that is overdue.

    :ivar window: the start of the latest window that should have a
        snapshot by now (a run of the spec, in UTC).
    :ivar expected_by: ``window + grace``: when its snapshot was due.
    :ivar late_by: how long after ``expected_by`` it still is not there.
    """

    window: datetime.datetime
    expected_by: datetime.datetime
    late_by: datetime.timedelta


def _check_grace(grace):
    if not isinstance(grace, datetime.timedelta):
        raise TypeError(
            f"grace must be a datetime.timedelta, not {type(grace).__name__}"
        )
    if grace < datetime.timedelta(0):
        raise ValueError(f"grace must not be negative, got {grace}")


def expected_window(spec, at, grace):
    """The latest run ``r`` of ``spec`` with ``r + grace <= at``, or None.

    That is the last window that should have produced a snapshot by
    ``at``: a run is given ``grace`` (elapsed time, so the same across a
    DST change) to be claimed, taken and reported ``available``. None
    when the spec never runs.
    """
    zones.require_aware(at, "at")
    _check_grace(grace)
    return spec.previous_run(at - grace)


def lateness(
    spec, at, grace, newest, since=None, last_run=None, next_run=None
):
    """How late a schedule's snapshot of one server is at ``at``; None
    when it is not late.

    :param spec: the schedule's :class:`~.spec.Spec`.
    :param at: the time of the check (aware).
    :param grace: a :class:`datetime.timedelta`, see
        :func:`expected_window`.
    :param newest: the window start of the newest ``available`` snapshot
        this schedule took of the server, or None. A snapshot covers its
        window and every earlier one: a conductor that catches up after
        downtime takes only the latest missed window.
    :param since: when the schedule started to apply to the server (the
        later of the schedule's and the server's record); a window before
        it was never this schedule's to take.
    :param last_run: the schedule's ``last_run_at``, the latest window
        the clock claimed for it.
    :param next_run: the schedule's ``next_run_at``. A schedule whose
        next run is after the window although the clock never claimed
        the window was (re-)enabled after it, which computes the next run
        from that moment: the window was skipped by design, not missed.
    """
    window = expected_window(spec, at, grace)
    if window is None or (newest is not None and newest >= window):
        return None
    if since is not None and window < since:
        return None
    if (
        next_run is not None
        and next_run > window
        and (last_run is None or last_run < window)
    ):
        return None
    expected_by = window + grace
    return Lateness(window, expected_by, at - expected_by)
