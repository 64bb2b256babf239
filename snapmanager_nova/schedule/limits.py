"""How often a spec runs: the shortest time between two of its runs.

Pure, like the rest of the engine: the API asks it to refuse a spec that
runs more often than ``[quota] min_schedule_interval`` allows.

Measured on the spec's wall-clock times in its timezone, not on the
instants they become: "daily at 02:30" runs 23.5 hours after the
previous day's run on a spring-forward night (02:30 does not exist and
it runs at 03:00), yet it never runs more often than daily.
"""

import datetime

from snapmanager_nova.schedule import zones

# A year and a day: every spec family repeats within a year (a cron
# spec on 29 February aside, which runs too rarely to matter here).
_HORIZON = datetime.timedelta(days=366)

# Enough runs to look at: a spec that runs this often within the horizon
# has two runs closer than the floor anyway (pigeonhole), so looking
# further would find nothing new.
_MAX_RUNS = 20000


def shorter_gap(spec, floor, start):
    """Two consecutive runs of ``spec`` less than ``floor`` apart, or None.

    :param spec: a :class:`Spec`.
    :param floor: a :class:`datetime.timedelta`.
    :param start: aware; the runs looked at are those in the year after.
    :returns: ``(run, next run)`` in UTC, the first such pair found.
    """
    if spec.pattern is None:
        return None
    horizon = min(_HORIZON, floor * (_MAX_RUNS - 2))
    first = start.astimezone(spec.tz).replace(tzinfo=None)
    end = first + horizon
    previous = None
    for count, wall in enumerate(spec.pattern.walls_from(first)):
        if wall > end or count > _MAX_RUNS:
            break
        if previous is not None and wall - previous < floor:
            return (
                zones.wall_to_utc(previous, spec.tz),
                zones.wall_to_utc(wall, spec.tz),
            )
        previous = wall
    return None
