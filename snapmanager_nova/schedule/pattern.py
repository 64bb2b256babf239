"""Wall-clock patterns: which local dates and times of day a schedule fires.

Every spec family compiles to one :class:`WallPattern`: a set of months, a
rule that picks days, and the times of day that fire on a picked day (the
same on every picked day, for all families). The pattern knows nothing of
timezones or instants; :mod:`.zones` turns its wall times into instants.
"""

import bisect
import calendar
import dataclasses
import datetime

ALL_MONTHS = frozenset(range(1, 13))

# The sparsest valid pattern is a cron on 29 February that must also fall
# on one weekday, which happens only every 28 years (40 around 2100).
# Scanning four centuries covers the Gregorian cycle, after which dates
# and weekdays repeat: a pattern that has not fired by then never will.
_HORIZON = datetime.timedelta(days=146097)

_ONE_DAY = datetime.timedelta(days=1)


def last_day_of_month(year, month):
    return calendar.monthrange(year, month)[1]


@dataclasses.dataclass(frozen=True)
class EveryDay:
    """Fires on every day."""

    def matches(self, day):
        return True


@dataclasses.dataclass(frozen=True)
class Weekdays:
    """Fires on some days of the week (Python's numbering: Monday is 0)."""

    weekdays: frozenset

    def matches(self, day):
        return day.weekday() in self.weekdays


@dataclasses.dataclass(frozen=True)
class DayOfMonth:
    """Fires on one day of each month, or on its last day if it is shorter.

    ``DayOfMonth(31)`` fires on 28/29 February and 30 April: a tenant who
    asks for "the end of the month" wants a snapshot every month, not
    seven a year.
    """

    day: int

    def matches(self, day):
        last = last_day_of_month(day.year, day.month)
        return day.day == min(self.day, last)


@dataclasses.dataclass(frozen=True)
class CronDays:
    """Cron's day-of-month and day-of-week fields, with Vixie cron's rule.

    When both fields are restricted (neither starts with ``*``) a day
    matches if EITHER does, otherwise if both do. ``weekdays`` uses
    Python's numbering (Monday is 0).
    """

    days_of_month: frozenset
    weekdays: frozenset
    either: bool

    def matches(self, day):
        in_month = day.day in self.days_of_month
        in_week = day.weekday() in self.weekdays
        if self.either:
            return in_month or in_week
        return in_month and in_week


@dataclasses.dataclass(frozen=True)
class WallPattern:
    """Local wall-clock times on which a schedule fires.

    :param times: the times of day, sorted, whole minutes.
    :param days: a day rule (``matches(date) -> bool``).
    :param months: the months (1-12) in which days may match.
    """

    times: tuple
    days: object = EveryDay()
    months: frozenset = ALL_MONTHS

    def walls_from(self, start):
        """Yield the wall times at or after naive ``start``, ascending."""
        for day in self._days_from(start.date()):
            times = self.times
            if day == start.date():
                times = times[bisect.bisect_left(times, start.time()) :]
            for time in times:
                yield datetime.datetime.combine(day, time)

    def walls_until(self, end):
        """Yield the wall times at or before naive ``end``, descending."""
        for day in self._days_until(end.date()):
            times = self.times
            if day == end.date():
                times = times[: bisect.bisect_right(times, end.time())]
            for time in reversed(times):
                yield datetime.datetime.combine(day, time)

    def _days_from(self, day):
        limit = _shift(day, _HORIZON, datetime.date.max)
        while day <= limit:
            if day.month not in self.months:
                # Skip the whole month, so sparse cron months cost
                # twelve steps a year, not 365.
                if day.month == 12:
                    if day.year == datetime.MAXYEAR:
                        return
                    day = datetime.date(day.year + 1, 1, 1)
                else:
                    day = datetime.date(day.year, day.month + 1, 1)
                continue
            if self.days.matches(day):
                yield day
            if day == datetime.date.max:
                return
            day += _ONE_DAY

    def _days_until(self, day):
        limit = _shift(day, -_HORIZON, datetime.date.min)
        while day >= limit:
            if day.month not in self.months:
                first = day.replace(day=1)
                if first == datetime.date.min:
                    return
                day = first - _ONE_DAY
                continue
            if self.days.matches(day):
                yield day
            if day == datetime.date.min:
                return
            day -= _ONE_DAY


def _shift(day, delta, bound):
    try:
        return day + delta
    except OverflowError:
        return bound
