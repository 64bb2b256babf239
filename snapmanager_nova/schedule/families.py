"""Parsers of the ``@``-separated spec families.

Each parser takes the spec's fields (lower-case, stripped, the family's
own name removed) and returns ``(canonical text, pattern, keep)``;
:func:`.spec.parse_spec` dispatches to them. The grammar is documented in
``doc/source/schedules.rst``, which the tests read.
"""

import datetime
import re

from snapmanager_nova.schedule import errors
from snapmanager_nova.schedule import pattern
from snapmanager_nova.schedule import tokens

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# every@Nh: N must divide the day, or the runs would drift against the
# wall clock from one day to the next.
EVERY_HOURS = (1, 2, 3, 4, 6, 8, 12, 24)

_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_HOURS = re.compile(r"([0-9]{1,9})h")


def parse_daily(fields):
    (time_text,) = fields
    time = parse_time(time_text)
    return (
        f"daily@{_format_time(time)}",
        pattern.WallPattern(times=(time,)),
        None,
    )


def parse_weekly(fields):
    day_text, time_text = fields
    weekday = _weekday(day_text, "day")
    time = parse_time(time_text)
    return (
        f"weekly@{WEEKDAYS[weekday]}@{_format_time(time)}",
        pattern.WallPattern(
            times=(time,), days=pattern.Weekdays(frozenset({weekday}))
        ),
        None,
    )


def parse_monthly(fields):
    day_text, time_text = fields
    day = tokens.whole_number(day_text)
    if day is None or not 1 <= day <= 31:
        raise errors.SpecError(
            "day_of_month", f"{day_text!r} is not a day of the month (1-31)"
        )
    time = parse_time(time_text)
    return (
        f"monthly@{day}@{_format_time(time)}",
        pattern.WallPattern(times=(time,), days=pattern.DayOfMonth(day)),
        None,
    )


def parse_every(fields):
    hours_text, *rest = fields
    match = _HOURS.fullmatch(hours_text)
    if match is None:
        raise errors.SpecError(
            "hours",
            f"{hours_text!r} is not Nh (N one of "
            f"{', '.join(map(str, EVERY_HOURS))})",
        )
    hours = int(match.group(1))
    if hours not in EVERY_HOURS:
        raise errors.SpecError("hours", f"{hours} does not divide 24")
    anchor = parse_time(rest[0]) if rest else datetime.time(0, 0)
    # The anchor is a phase within the day: 14:15 every 6 hours is the
    # same schedule as 02:15 every 6 hours, and the canonical text says
    # the earliest.
    first_hour = anchor.hour % hours
    times = tuple(
        datetime.time(hour, anchor.minute)
        for hour in range(first_hour, 24, hours)
    )
    text = f"every@{hours}h"
    if times[0] != datetime.time(0, 0):
        text += f"@{_format_time(times[0])}"
    return text, pattern.WallPattern(times=times), None


def parse_netapp(fields):
    """Parse NetApp style ``count[@day_list][@hour_list]``.

    A lone second field is an hour list if it starts with a digit and a
    day list otherwise: ``2@sun`` and ``24@0,6,12,18`` both read as meant.
    """
    count_text, *rest = fields
    # A leading "+" is harmless; "-1" is refused here, with the field
    # named, rather than as an unknown schedule.
    count = tokens.whole_number(count_text.removeprefix("+"))
    if count is None:
        raise errors.SpecError(
            "count", f"{count_text!r} is not a whole number >= 0"
        )
    day_text = hour_text = None
    if len(rest) == 2:
        day_text, hour_text = rest
    elif rest and tokens.whole_number(rest[0][:1]) is not None:
        (hour_text,) = rest
    elif rest:
        (day_text,) = rest
    weekdays = _day_list(day_text) if day_text is not None else None
    hours = _hour_list(hour_text) if hour_text is not None else {0}

    text = str(count)
    if weekdays is not None and len(weekdays) < len(WEEKDAYS):
        text += f"@{_format_day_list(weekdays)}"
    if hours != {0}:
        text += "@" + ",".join(str(hour) for hour in sorted(hours))
    if count == 0:
        # Keep none, so take none: the spec never fires.
        return text, None, count
    return (
        text,
        pattern.WallPattern(
            times=tuple(datetime.time(hour) for hour in sorted(hours)),
            days=(
                pattern.Weekdays(frozenset(weekdays))
                if weekdays is not None
                else pattern.EveryDay()
            ),
        ),
        count,
    )


def parse_time(text):
    """Parse ``HH:MM`` (or ``H:MM``) into a :class:`datetime.time`."""
    match = _TIME.fullmatch(text)
    if match is not None:
        hour, minute = int(match.group(1)), int(match.group(2))
        if hour < 24 and minute < 60:
            return datetime.time(hour, minute)
    raise errors.SpecError("time", f"{text!r} is not HH:MM (00:00-23:59)")


def _format_time(time):
    return f"{time.hour:02d}:{time.minute:02d}"


def _weekday(text, field):
    if text not in WEEKDAYS:
        raise errors.SpecError(field, f"{text!r} is not a weekday (mon..sun)")
    return WEEKDAYS.index(text)


def _day_list(text):
    """Parse ``mon,wed-fri,sat-mon`` into Python weekday numbers.

    A range that runs past Sunday wraps around to Monday (``fri-mon`` is
    Friday to Monday), as an operator reading it aloud would expect.
    """
    weekdays = set()
    for item in _items(text):
        first, dash, last = item.partition("-")
        start = _weekday(first.strip(), "day_list")
        end = _weekday(last.strip(), "day_list") if dash else start
        length = (end - start) % len(WEEKDAYS) + 1
        weekdays.update(
            (start + offset) % len(WEEKDAYS) for offset in range(length)
        )
    return weekdays


def _hour_list(text):
    hours = set()
    for item in _items(text):
        hour = tokens.whole_number(item)
        if hour is None or hour > 23:
            raise errors.SpecError(
                "hour_list", f"{item!r} is not an hour (0-23)"
            )
        hours.add(hour)
    return hours


def _items(text):
    return [item.strip() for item in text.split(",")]


def _format_day_list(weekdays):
    """Write a day list (not all seven days) in one canonical way.

    Runs of consecutive days are found around the week, so that
    ``fri-mon`` stays one run; runs of three or more days become ranges,
    and runs are written in the order of their first day, Monday first.
    """
    week = len(WEEKDAYS)
    starts = [day for day in weekdays if (day - 1) % week not in weekdays]
    items = []
    for start in sorted(starts):
        run = [start]
        while (run[-1] + 1) % week in weekdays:
            run.append((run[-1] + 1) % week)
        if len(run) >= 3:
            items.append(f"{WEEKDAYS[run[0]]}-{WEEKDAYS[run[-1]]}")
        else:
            items.extend(WEEKDAYS[day] for day in run)
    return ",".join(items)
