"""Hypothesis strategies for schedule specs, with reference matchers.

Every spec strategy draws the schedule's parameters first, writes them as
spec text (with random case and whitespace), and returns a :class:`Case`
whose ``matches(wall)`` says from those parameters alone whether a naive
local wall time is one of the spec's wall times. The property tests
judge the engine against these matchers, never against its own parser.
"""

import calendar
import dataclasses
import datetime
import zoneinfo

from hypothesis import strategies as st

from snapmanager_nova import schedule

UTC = datetime.UTC

TIMEZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # 30-minute DST
    "Asia/Kolkata",  # +05:30, no DST
    "Pacific/Chatham",  # +12:45/+13:45, jumps at 02:45
    "Europe/Dublin",  # "negative" DST in the tz database
    "America/St_Johns",  # -03:30/-02:30
)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MONTHS = tuple("jan feb mar apr may jun jul aug sep oct nov dec".split())
EVERY_HOURS = (1, 2, 3, 4, 6, 8, 12, 24)

# Instants are drawn from these years, in which every zone above keeps
# its current rules.
FIRST = datetime.datetime(2025, 1, 1, tzinfo=UTC)
LAST = datetime.datetime(2027, 12, 31, tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class Case:
    text: str
    matches: object
    family: str

    def __repr__(self):
        return f"Case({self.text!r})"


def transitions(name, first=FIRST, last=LAST):
    """Return the UTC instants at which zone ``name`` changes offset."""
    tz = zoneinfo.ZoneInfo(name)
    found = []
    day = first
    while day < last:
        following = day + datetime.timedelta(days=1)
        if day.astimezone(tz).utcoffset() != (
            following.astimezone(tz).utcoffset()
        ):
            low, high = day, following
            while high - low > datetime.timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(tz).utcoffset() == (
                    low.astimezone(tz).utcoffset()
                ):
                    low = middle
                else:
                    high = middle
            found.append(high.replace(microsecond=0))
        day = following
    return found


TRANSITIONS = {name: transitions(name) for name in TIMEZONES}


def instants(timezone):
    """Aware instants, half of them within two days of a DST change."""
    anywhere = st.datetimes(
        min_value=FIRST.replace(tzinfo=None),
        max_value=LAST.replace(tzinfo=None),
    ).map(lambda naive: naive.replace(tzinfo=UTC))
    changes = TRANSITIONS[timezone]
    if not changes:
        return anywhere
    near = st.builds(
        lambda change, minutes, seconds: (
            change + datetime.timedelta(minutes=minutes, seconds=seconds)
        ),
        st.sampled_from(changes),
        st.integers(-2 * 1440, 2 * 1440),
        st.sampled_from([0, 0, 0, 1, 30, 59.999999]),
    )
    return st.one_of(anywhere, near)


# Text variation: the grammar ignores case and whitespace around tokens.


@st.composite
def _spell(draw, word):
    if draw(st.booleans()):
        return word
    return "".join(
        char.upper() if draw(st.booleans()) else char for char in word
    )


@st.composite
def _join(draw, separator, parts):
    text = ""
    for index, part in enumerate(parts):
        if index:
            text += draw(st.sampled_from(["", " "])) + separator
            text += draw(st.sampled_from(["", " "]))
        text += part
    return text


@st.composite
def _time(draw):
    hour = draw(st.integers(0, 23))
    minute = draw(st.integers(0, 59))
    # The hour may be written with one digit.
    width = draw(st.sampled_from([1, 2]))
    text = f"{hour:0{width}d}:{minute:02d}"
    return hour, minute, text


@st.composite
def daily(draw):
    hour, minute, time = draw(_time())
    text = draw(_join("@", [draw(_spell("daily")), time]))
    return Case(
        text,
        lambda wall: (wall.hour, wall.minute) == (hour, minute),
        "daily",
    )


@st.composite
def weekly(draw):
    weekday = draw(st.integers(0, 6))
    hour, minute, time = draw(_time())
    parts = [draw(_spell("weekly")), draw(_spell(WEEKDAYS[weekday])), time]
    return Case(
        draw(_join("@", parts)),
        lambda wall: (
            wall.weekday() == weekday
            and (wall.hour, wall.minute) == (hour, minute)
        ),
        "weekly",
    )


@st.composite
def monthly(draw):
    day = draw(st.sampled_from([1, 2, 15, 28, 29, 30, 31]))
    hour, minute, time = draw(_time())

    def matches(wall):
        last = calendar.monthrange(wall.year, wall.month)[1]
        return wall.day == min(day, last) and (wall.hour, wall.minute) == (
            hour,
            minute,
        )

    parts = [draw(_spell("monthly")), str(day), time]
    return Case(draw(_join("@", parts)), matches, "monthly")


@st.composite
def every(draw):
    hours = draw(st.sampled_from(EVERY_HOURS))
    parts = [draw(_spell("every")), f"{hours}h"]
    hour = minute = 0
    if draw(st.booleans()):
        hour, minute, time = draw(_time())
        parts.append(time)
    return Case(
        draw(_join("@", parts)),
        lambda wall: (
            wall.minute == minute and wall.hour % hours == hour % hours
        ),
        "every",
    )


@st.composite
def netapp(draw):
    count = draw(st.integers(1, 60))
    parts = [str(count)]
    weekdays = set(range(7))
    if draw(st.booleans()):
        weekdays = set()
        items = []
        for _ in range(draw(st.integers(1, 3))):
            start = draw(st.integers(0, 6))
            if draw(st.booleans()):
                end = draw(st.integers(0, 6))
                items.append(
                    draw(_spell(f"{WEEKDAYS[start]}-{WEEKDAYS[end]}"))
                )
                length = (end - start) % 7 + 1
                weekdays.update((start + n) % 7 for n in range(length))
            else:
                items.append(draw(_spell(WEEKDAYS[start])))
                weekdays.add(start)
        parts.append(draw(_join(",", items)))
    hours = {0}
    # Without days, hours may still be given: a lone digits field.
    if draw(st.booleans()):
        hours = draw(st.sets(st.integers(0, 23), min_size=1, max_size=6))
        parts.append(draw(_join(",", [str(hour) for hour in hours])))
    return Case(
        draw(_join("@", parts)),
        lambda wall: (
            wall.weekday() in weekdays
            and wall.hour in hours
            and wall.minute == 0
        ),
        "netapp",
    )


@st.composite
def _cron_field(draw, low, high, star_high, names=None, offset=0):
    """Draw one cron field: its text, its values, and whether it is '*'."""
    items = []
    values = set()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["star", "value", "range", "step"]))
        if kind == "star":
            step = draw(st.sampled_from([None, 1, 2, 3, 5, 7, 15]))
            items.append("*" if step is None else f"*/{step}")
            values.update(range(low, star_high + 1, step or 1))
            continue
        first = draw(st.integers(low, high))
        if kind == "value":
            items.append(_cron_value(draw, first, names, offset))
            values.add(first)
            continue
        last = draw(st.integers(first, high))
        step = draw(st.integers(1, 5)) if kind == "step" else 1
        last_text = _cron_value(draw, last, names, offset)
        if names and names is CRON_DAYS and last == 7 and first > 0:
            # "sun" ending a range that starts later in the week is 7.
            last_text = draw(st.sampled_from(["7", "sun"]))
        text = f"{_cron_value(draw, first, names, offset)}-{last_text}"
        items.append(text if kind == "range" else f"{text}/{step}")
        values.update(range(first, last + 1, step))
    return ",".join(items), values, items[0].startswith("*")


def _cron_value(draw, value, names, offset):
    if names and value - offset < len(names) and draw(st.booleans()):
        return names[value - offset]
    return str(value)


@st.composite
def cron(draw):
    # Dense minutes and hours, so that brute-force checks stay cheap.
    minute_text, minutes, _ = draw(_cron_field(0, 59, 59))
    hour_text, hours, _ = draw(_cron_field(0, 23, 23))
    day_text, days, days_star = draw(_cron_field(1, 31, 31))
    month_text, months, _ = draw(_cron_field(1, 12, 12, MONTHS, offset=1))
    week_text, cron_weekdays, weekdays_star = draw(
        _cron_field(0, 7, 6, CRON_DAYS)
    )
    # Python's Monday is 0; cron's Sunday is 0 and 7.
    weekdays = {(day + 6) % 7 for day in cron_weekdays}
    either = not (days_star or weekdays_star)

    def matches(wall):
        in_month = wall.day in days
        in_week = wall.weekday() in weekdays
        day_ok = (in_month or in_week) if either else (in_month and in_week)
        return (
            wall.minute in minutes
            and wall.hour in hours
            and wall.month in months
            and day_ok
        )

    fields = [minute_text, hour_text, day_text, month_text, week_text]
    separator = draw(st.sampled_from([" ", "  ", "\t"]))
    text = draw(_spell("cron")) + ":" + separator.join(fields)
    fires = either or any(
        day <= calendar.monthrange(2028, month)[1]
        for month in months
        for day in days
    )
    return Case(text, matches, "cron" if fires else "never")


def specs():
    return st.one_of(daily(), weekly(), monthly(), every(), netapp(), cron())


# Retention.


STATUSES = ("available",) * 6 + ("error", "creating", "deleting", "deleted")


@st.composite
def snapshot_lists(draw):
    base = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    count = draw(st.integers(0, 40))
    offsets = draw(
        st.lists(st.integers(0, 400 * 24 * 60), min_size=count, max_size=count)
    )
    # A few equal creation times, to exercise the tie-break.
    if offsets and draw(st.booleans()):
        offsets[-1] = offsets[0]
    return [
        schedule.SnapshotInfo(
            f"snap-{index:02d}",
            base + datetime.timedelta(minutes=offset),
            draw(st.sampled_from(STATUSES)),
        )
        for index, offset in enumerate(offsets)
    ]


@st.composite
def policies(draw):
    small = st.one_of(st.none(), st.integers(0, 8))
    return schedule.RetentionPolicy(
        keep_count=draw(st.one_of(st.none(), st.integers(1, 8))),
        max_age=draw(
            st.one_of(
                st.none(),
                st.integers(1, 200 * 24).map(
                    lambda hours: datetime.timedelta(hours=hours)
                ),
            )
        ),
        keep_last=draw(small),
        hourly=draw(small),
        daily=draw(small),
        weekly=draw(small),
        monthly=draw(small),
        yearly=draw(small),
    )
