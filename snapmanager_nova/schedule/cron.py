"""Standard five-field cron expressions, compiled to a wall-clock pattern.

Written here rather than taken from croniter: croniter is archived and
unmaintained, and its handling of daylight saving time, the one part a
snapshot schedule cannot get wrong, is its known weak point. Cron fields
only say which wall times match; when those wall times fall into a DST
gap or overlap is decided by :mod:`.zones`, the same as for every other
family.

Grammar (Vixie cron): ``minute hour day-of-month month day-of-week``, each
a comma-separated list of ``*``, ``N``, ``N-M``, ``*/S`` or ``N-M/S``;
month names ``jan``..``dec``; day names ``sun``..``sat``. Both 0 and 7 are
Sunday, and ``sun`` ending a range that starts on another day is 7, so
``mon-sun`` is the whole week. When both day fields are restricted, a day
matches if either matches; a field counts as unrestricted when it starts
with ``*`` (Vixie cron's own test, so ``*/2`` counts as unrestricted too).
"""

import dataclasses
import datetime
import re

from snapmanager_nova.schedule import errors
from snapmanager_nova.schedule import pattern
from snapmanager_nova.schedule import tokens

MONTH_NAMES = tuple("jan feb mar apr may jun jul aug sep oct nov dec".split())
DAY_NAMES = tuple("sun mon tue wed thu fri sat".split())


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    # The range ``*`` stands for; day-of-week accepts 7 but ``*`` means
    # 0-6, so ``*/2`` does not add a second Sunday.
    star_high: int
    names: tuple = ()


_FIELDS = (
    _Field("minute", 0, 59, 59),
    _Field("hour", 0, 23, 23),
    _Field("day-of-month", 1, 31, 31),
    _Field("month", 1, 12, 12, MONTH_NAMES),
    _Field("day-of-week", 0, 7, 6, DAY_NAMES),
)

# One list item: "*", "N" or "N-M" (numbers or names), then "/S" maybe.
_ITEM = re.compile(r"(?P<range>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>.*))?")

# The longest a month of each number can be; February counts its leap
# day, which some year always has.
_LONGEST_MONTH = {
    month: pattern.last_day_of_month(2000, month) for month in range(1, 13)
}


def parse(text):
    """Compile the cron fields ``text`` (lower-case) to a WallPattern.

    :raises SpecError: on field ``cron``, naming the cron field and value.
    """
    fields = text.split()
    if len(fields) != len(_FIELDS):
        raise errors.SpecError(
            "cron",
            f"{text!r} has {len(fields)} fields; expected 5 (minute hour "
            "day-of-month month day-of-week)",
        )
    minutes, hours, days, months, weekdays = (
        _parse_field(field, value)
        for field, value in zip(_FIELDS, fields, strict=True)
    )
    days_star = fields[2].startswith("*")
    weekdays_star = fields[4].startswith("*")
    # Sunday is both 0 and 7; Python counts Monday as 0.
    python_weekdays = frozenset((day + 6) % 7 for day in weekdays)
    if (days_star or weekdays_star) and not any(
        day <= _LONGEST_MONTH[month] for month in months for day in days
    ):
        # With "either" semantics a weekday always rescues the day; with
        # "both", some allowed month must have one of the allowed days.
        # Every valid date falls on every weekday in some year, so that
        # is the only way a cron can never fire.
        raise errors.SpecError(
            "cron",
            f"{text!r} never fires: no month in the month field has one "
            "of its days of the month",
        )
    return pattern.WallPattern(
        times=tuple(
            datetime.time(hour, minute)
            for hour in sorted(hours)
            for minute in sorted(minutes)
        ),
        days=pattern.CronDays(
            days_of_month=frozenset(days),
            weekdays=python_weekdays,
            either=not (days_star or weekdays_star),
        ),
        months=frozenset(months),
    )


def _parse_field(field, text):
    values = set()
    for item in text.split(","):
        values.update(_parse_item(field, item))
    return values


def _parse_item(field, item):
    match = _ITEM.fullmatch(item)
    if match is None:
        raise _bad_value(field, item)
    span, step = match.group("range"), match.group("step")
    if span == "*":
        low, high = field.low, field.star_high
    elif "-" in span:
        first, last = span.split("-")
        low, high = _value(field, first), _value(field, last)
        if field.name == "day-of-week" and last == "sun" and low > 0:
            # Sunday is 0 by name, but "mon-sun" means Monday to Sunday.
            high = 7
        if low > high:
            raise errors.SpecError(
                "cron",
                f"field {field.name!r} range {span!r} is reversed "
                "(write it as a list)",
            )
    else:
        low = high = _value(field, span)
        if step is not None:
            # "5/10" means "5-max/10" to some crons and is an error to
            # others; refuse rather than guess.
            raise _bad_value(field, item)
    if step is None:
        return range(low, high + 1)
    size = tokens.whole_number(step)
    if size is None or size < 1:
        raise errors.SpecError(
            "cron",
            f"field {field.name!r} step {step!r} is not a whole number >= 1",
        )
    return range(low, high + 1, size)


def _value(field, token):
    if token in field.names:
        return field.names.index(token) + (1 if field.name == "month" else 0)
    value = tokens.whole_number(token)
    if value is None:
        raise _bad_value(field, token)
    if not field.low <= value <= field.high:
        raise errors.SpecError(
            "cron",
            f"field {field.name!r} value {token!r} out of range "
            f"{field.low}-{field.high}",
        )
    return value


def _bad_value(field, token):
    forms = "a number"
    if field.names:
        forms += f", a name ({field.names[0]}..{field.names[-1]})"
    return errors.SpecError(
        "cron",
        f"field {field.name!r} value {token!r} is not {forms}, N-M, */S "
        "or N-M/S",
    )
