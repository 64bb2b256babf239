"""The freshness rule: the window a schedule's snapshot must cover by a
time, and when a server's snapshot of it is late."""

import datetime

import pytest

from snapmanager_nova import schedule

UTC = datetime.UTC
HOUR = datetime.timedelta(hours=1)


def utc(*args):
    return datetime.datetime(*args, tzinfo=UTC)


def iso(text):
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "at", "grace_minutes", "window"),
    [
        # daily: at 03:29 the 02:30 run is not due yet with an hour's
        # grace, at 03:30 it is; without grace at 02:30 itself.
        ("daily@02:30", "2026-01-02 03:29", 60, "2026-01-01 02:30"),
        ("daily@02:30", "2026-01-02 03:30", 60, "2026-01-02 02:30"),
        ("daily@02:30", "2026-01-02 02:30", 0, "2026-01-02 02:30"),
        # weekly on Monday, checked the Sunday after.
        ("weekly@mon@09:00", "2026-01-11 12:00", 60, "2026-01-05 09:00"),
        # monthly@31 runs on the last day of a shorter month.
        ("monthly@31@03:00", "2026-03-15 00:00", 60, "2026-02-28 03:00"),
        # every 6 hours with a phase.
        ("every@6h@02:15", "2026-01-01 15:15", 60, "2026-01-01 14:15"),
        ("every@6h@02:15", "2026-01-01 15:14", 60, "2026-01-01 08:15"),
        # NetApp style, weekdays at 7 and 19: on Monday at 07:30 the
        # last run due is Friday's 19:00.
        ("6@mon-fri@7,19", "2026-01-05 07:30", 60, "2026-01-02 19:00"),
        # cron, quarter-hourly in office hours.
        ("cron:*/15 9-17 * * 1-5", "2026-01-05 10:40", 20, "2026-01-05 10:15"),
        ("cron:*/15 9-17 * * 1-5", "2026-01-05 09:10", 20, "2026-01-02 17:45"),
        # A schedule that never runs has no window.
        ("0@mon", "2026-01-05 00:00", 60, None),
    ],
)  # fmt: skip
def test_expected_window(spec, at, grace_minutes, window):
    parsed = schedule.parse_spec(spec)
    grace = datetime.timedelta(minutes=grace_minutes)
    expected = None if window is None else iso(window)
    assert schedule.expected_window(parsed, iso(at), grace) == expected


def test_spring_forward_the_gap_run_is_due_a_grace_after_it():
    # Berlin jumps 02:00 -> 03:00 on 29 March 2026: daily@02:30 runs at
    # 03:00 CEST, 01:00 UTC, and is due at 02:00 UTC with an hour's
    # grace; a minute before, the day before's run is the one expected.
    spec = schedule.parse_spec("daily@02:30", "Europe/Berlin")
    gap_run = utc(2026, 3, 29, 1, 0)
    before = schedule.expected_window(spec, utc(2026, 3, 29, 1, 59), HOUR)
    assert before == utc(2026, 3, 28, 1, 30)
    assert schedule.expected_window(spec, utc(2026, 3, 29, 2), HOUR) == (
        gap_run
    )
    late = schedule.lateness(spec, utc(2026, 3, 29, 2, 30), HOUR, before)
    assert late == schedule.Lateness(
        gap_run, utc(2026, 3, 29, 2, 0), datetime.timedelta(minutes=30)
    )


def test_fall_back_grace_is_elapsed_time_not_wall_time():
    # Berlin goes back 03:00 -> 02:00 on 25 October 2026. every@1h runs
    # at 02:00 CEST (00:00 UTC), not again in the repeated hour, then at
    # 03:00 CET (02:00 UTC). During the repeated hour the 02:00 CEST run
    # stays the expected window: a wall-clock grace would mistake the
    # repeated 02:xx for "an hour after" and skip a run.
    spec = schedule.parse_spec("every@1h", "Europe/Berlin")
    first = utc(2026, 10, 25, 0, 0)
    for minutes in (60, 90, 119):
        at = first + datetime.timedelta(minutes=minutes)
        assert schedule.expected_window(spec, at, HOUR) == first, at
    at = utc(2026, 10, 25, 3, 0)
    assert schedule.expected_window(spec, at, HOUR) == utc(2026, 10, 25, 2)
    # A snapshot of the 00:00 UTC run is two hours behind then: late.
    late = schedule.lateness(spec, at, HOUR, first)
    assert late.late_by == datetime.timedelta(0)
    assert late.expected_by == at


@pytest.mark.parametrize(
    ("newest", "stale"),
    [
        (None, True),
        (utc(2026, 1, 1, 2, 30), True),  # yesterday's window only
        (utc(2026, 1, 2, 2, 30), False),  # today's
        (utc(2026, 1, 2, 2, 30, 0, 1), False),  # a later one covers it
    ],
)
def test_newest_snapshot_covers_its_window_and_earlier(newest, stale):
    spec = schedule.parse_spec("daily@02:30")
    at = utc(2026, 1, 2, 5, 0)
    late = schedule.lateness(spec, at, HOUR, newest)
    assert (late is not None) is stale
    if stale:
        assert late.window == utc(2026, 1, 2, 2, 30)
        assert late.expected_by == utc(2026, 1, 2, 3, 30)
        assert late.late_by == datetime.timedelta(hours=1, minutes=30)


def test_a_missed_week_is_measured_from_the_latest_window():
    # The conductor catches up once (the latest missed run), so that is
    # what the newest snapshot is compared with, and how late is from
    # that run's deadline, not the first missed one's.
    spec = schedule.parse_spec("daily@02:30")
    late = schedule.lateness(
        spec, utc(2026, 1, 9, 4, 0), HOUR, utc(2026, 1, 2, 2, 30)
    )
    assert late.window == utc(2026, 1, 9, 2, 30)
    assert late.late_by == datetime.timedelta(minutes=30)


def test_a_schedule_newer_than_its_window_is_not_stale_yet():
    spec = schedule.parse_spec("daily@02:30")
    at = utc(2026, 1, 2, 12, 0)
    # Created at 09:00, after today's 02:30: its first window is
    # tomorrow's.
    created = utc(2026, 1, 2, 9, 0)
    assert schedule.lateness(spec, at, HOUR, None, since=created) is None
    # Created at 02:00 it owed today's 02:30.
    created = utc(2026, 1, 2, 2, 0)
    late = schedule.lateness(spec, at, HOUR, None, since=created)
    assert late.window == utc(2026, 1, 2, 2, 30)
    # Tomorrow, the one created at 09:00 owes tomorrow's.
    late = schedule.lateness(
        spec, utc(2026, 1, 3, 12), HOUR, None, since=utc(2026, 1, 2, 9)
    )
    assert late.window == utc(2026, 1, 3, 2, 30)


def test_a_reenabled_schedule_skipped_the_windows_while_it_was_off():
    # Disabled on the 1st, enabled again at 09:00 on the 5th: the API
    # computed its next run from then (the 6th, 02:30); the clock last
    # claimed the 1st's window. The 5th's window was skipped, not missed.
    spec = schedule.parse_spec("daily@02:30")
    at = utc(2026, 1, 5, 12, 0)
    kwargs = {
        "since": utc(2025, 12, 1),
        "last_run": utc(2026, 1, 1, 2, 30),
        "next_run": utc(2026, 1, 6, 2, 30),
    }
    newest = utc(2026, 1, 1, 2, 30)
    assert schedule.lateness(spec, at, HOUR, newest, **kwargs) is None
    # Once the 6th's run is due and not taken, it is late.
    later = utc(2026, 1, 6, 4, 0)
    assert schedule.lateness(spec, later, HOUR, newest, **kwargs)


def test_a_claimed_window_without_a_snapshot_is_late():
    # The clock claimed the window (last_run) and moved on (next_run),
    # but the snapshot failed: late, whatever next_run says.
    spec = schedule.parse_spec("daily@02:30")
    late = schedule.lateness(
        spec,
        utc(2026, 1, 5, 12, 0),
        HOUR,
        utc(2026, 1, 4, 2, 30),
        last_run=utc(2026, 1, 5, 2, 30),
        next_run=utc(2026, 1, 6, 2, 30),
    )
    assert late.window == utc(2026, 1, 5, 2, 30)


def test_a_stopped_clock_is_late():
    # next_run at or before the window: nobody claimed it.
    spec = schedule.parse_spec("every@1h")
    late = schedule.lateness(
        spec,
        utc(2026, 1, 5, 12, 0),
        datetime.timedelta(minutes=30),
        utc(2026, 1, 5, 8, 0),
        last_run=utc(2026, 1, 5, 8, 0),
        next_run=utc(2026, 1, 5, 9, 0),
    )
    assert late.window == utc(2026, 1, 5, 11, 0)
    assert late.late_by == datetime.timedelta(minutes=30)


def test_a_schedule_that_never_runs_is_never_late():
    spec = schedule.parse_spec("0@mon-fri")
    assert schedule.lateness(spec, utc(2026, 1, 5), HOUR, None) is None


@pytest.mark.parametrize(
    ("at", "grace", "error"),
    [
        (datetime.datetime(2026, 1, 1), HOUR, TypeError),
        (utc(2026, 1, 1), 3600, TypeError),
        (utc(2026, 1, 1), -HOUR, ValueError),
    ],
)
def test_bad_arguments(at, grace, error):
    spec = schedule.parse_spec("daily@02:30")
    with pytest.raises(error):
        schedule.expected_window(spec, at, grace)
