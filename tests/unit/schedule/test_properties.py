"""Property tests: random specs, timezones and instants around DST changes.

The engine is judged against a brute-force reference built from the
strategies' own matchers: an instant is a run if its local wall time
matches the spec at its first occurrence, or if it ends a DST gap that
swallowed a matching wall time.
"""

import datetime

import pytest
from hypothesis import assume
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from snapmanager_nova import schedule
from tests.unit.schedule import strategies

UTC = datetime.UTC
MINUTE = datetime.timedelta(minutes=1)
SECOND = datetime.timedelta(seconds=1)
TICK = datetime.timedelta(microseconds=1)

# Brute force walks minute by minute; beyond this span it would be slow,
# and the previous_run/next_run cross-checks cover the rest.
BRUTE_FORCE_SPAN = datetime.timedelta(hours=30)

CASES = settings(max_examples=250, deadline=None)


def wall(instant, tz):
    return instant.astimezone(tz).replace(tzinfo=None)


def is_run(instant, tz, matches):
    """Reference: whether whole-minute ``instant`` is a run."""
    local = instant.astimezone(tz)
    if local.fold == 0 and matches(local.replace(tzinfo=None, fold=0)):
        return True
    before = wall(instant - SECOND, tz)
    now = wall(instant, tz)
    if now - before <= SECOND:
        return False
    # The clock jumped forward at this instant: it is the run of every
    # wall time the gap swallowed.
    skipped = before.replace(second=0) + MINUTE
    while skipped < now:
        if matches(skipped):
            return True
        skipped += MINUTE
    return False


def whole_minutes(start, end):
    """Whole-minute instants in the open interval (start, end)."""
    minute = start.replace(second=0, microsecond=0) + MINUTE
    while minute < end:
        yield minute
        minute += MINUTE


@st.composite
def spec_and_instant(draw):
    case = draw(strategies.specs())
    timezone = draw(st.sampled_from(strategies.TIMEZONES))
    instant = draw(strategies.instants(timezone))
    return case, timezone, instant


@CASES
@given(spec_and_instant())
def test_next_and_previous_run(data):
    case, timezone, t = data
    if case.family == "never":
        with pytest.raises(schedule.SpecError) as caught:
            schedule.parse_spec(case.text, timezone)
        assert "never fires" in caught.value.message
        return
    spec = schedule.parse_spec(case.text, timezone)
    assert spec.family == case.family
    assert schedule.parse_spec(spec.text, timezone) == spec

    following = spec.next_run(t)
    assert following > t
    assert following.tzinfo is UTC
    assert is_run(following, spec.tz, case.matches)
    assert spec.previous_run(following) == following

    latest = spec.previous_run(t)
    assert latest <= t
    assert latest.tzinfo is UTC
    assert is_run(latest, spec.tz, case.matches)
    # Nothing runs between the two, by the engine's own account...
    assert spec.next_run(latest) == following
    assert spec.window_of(t) == (latest, following)
    # ... and by the reference's, where brute force is affordable.
    if following - t <= BRUTE_FORCE_SPAN:
        for minute in whole_minutes(t, following):
            assert not is_run(minute, spec.tz, case.matches), minute
    if t - latest <= BRUTE_FORCE_SPAN:
        # (latest, t]: t itself may be a whole minute.
        for minute in whole_minutes(latest, t + TICK):
            assert not is_run(minute, spec.tz, case.matches), minute


@CASES
@given(spec_and_instant(), st.integers(1, 6))
def test_runs_are_successive_next_runs(data, count):
    case, timezone, t = data
    assume(case.family != "never")
    spec = schedule.parse_spec(case.text, timezone)
    runs = list(spec.runs(t, count))
    assert len(runs) == count
    expected = []
    previous = t
    for _ in range(count):
        previous = spec.next_run(previous)
        expected.append(previous)
    assert runs == expected
    assert runs == sorted(set(runs))


@CASES
@given(
    spec_and_instant(),
    st.timedeltas(
        min_value=datetime.timedelta(0), max_value=datetime.timedelta(days=40)
    ),
)
def test_missed_is_the_latest_run_only(data, downtime):
    case, timezone, since = data
    assume(case.family != "never")
    spec = schedule.parse_spec(case.text, timezone)
    now = since + downtime
    caught_up = spec.missed(since, now)
    first_missed = spec.next_run(since)
    if caught_up is None:
        assert first_missed > now
    else:
        assert since < caught_up <= now
        assert spec.next_run(caught_up) > now
        assert caught_up == spec.previous_run(now)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(strategies.TIMEZONES).flatmap(
        lambda zone: st.tuples(st.just(zone), strategies.instants(zone))
    ),
    st.integers(0, 60),
)
def test_never_running_spec(data, count):
    timezone, t = data
    spec = schedule.parse_spec(f"0@mon@{count % 24}", timezone)
    assert spec.keep == 0
    assert spec.next_run(t) is None
    assert spec.previous_run(t) is None
    assert spec.missed(t - datetime.timedelta(days=count), t) is None


@pytest.mark.parametrize("timezone", strategies.TIMEZONES)
def test_every_hour_through_a_year(timezone):
    """Per local day: one run per distinct wall hour, none doubled."""
    spec = schedule.parse_spec("every@1h", timezone)
    start = datetime.datetime(2026, 1, 1, tzinfo=spec.tz) - SECOND
    runs = list(spec.runs(start, 366 * 24))
    assert len(set(runs)) == len(runs)
    per_day = {}
    for run in runs:
        day = run.astimezone(spec.tz).date()
        per_day[day] = per_day.get(day, 0) + 1
    for day, count in list(per_day.items())[:-1]:
        # Aware datetimes sharing a tzinfo subtract as wall times:
        # convert to UTC for the real length of the day.
        midnight, next_midnight = (
            datetime.datetime.combine(
                each, datetime.time(), spec.tz
            ).astimezone(UTC)
            for each in (day, day + datetime.timedelta(days=1))
        )
        hours = (next_midnight - midnight) / datetime.timedelta(hours=1)
        # A 23-hour day has 23 runs where the gap is a whole wall hour
        # (02:00 lands on 03:00, which runs anyway); Chatham's gap,
        # 02:45-03:45, swallows 03:00 and runs it at 03:45, so 24. A 24-,
        # 24.5- or 25-hour day has 24: repeated wall times run once, and
        # Lord Howe's 23.5-hour day loses no whole hour.
        whole_hour_gap = timezone != "Pacific/Chatham"
        expected = 23 if hours == 23 and whole_hour_gap else 24
        assert count == expected, (day, hours, count)
