"""Table tests of parse_spec and of the Spec run-time methods."""

import datetime
import pickle
import zoneinfo

import pytest

from snapmanager_nova import schedule

UTC = datetime.UTC
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def utc(*args):
    return datetime.datetime(*args, tzinfo=UTC)


def local_day_runs(spec, day):
    """Return the runs of ``spec`` on local calendar day ``day``."""
    start = datetime.datetime.combine(day, datetime.time(), spec.tz)
    end = start + datetime.timedelta(days=2)
    return [
        run
        for run in spec.runs(start - datetime.timedelta(hours=1), 200)
        if run < end and run.astimezone(spec.tz).date() == day
    ]


@pytest.mark.parametrize(
    ("text", "family", "canonical", "keep"),
    [
        ("daily@02:30", "daily", "daily@02:30", None),
        ("  DAILY@ 7:05 ", "daily", "daily@07:05", None),
        ("weekly@Fri@23:00", "weekly", "weekly@fri@23:00", None),
        ("monthly@07@00:00", "monthly", "monthly@7@00:00", None),
        ("every@24h", "every", "every@24h", None),
        ("every@4h@05:30", "every", "every@4h@01:30", None),
        ("every@1h@00:45", "every", "every@1h@00:45", None),
        ("6@mon-fri@7,19", "netapp", "6@mon-fri@7,19", 6),
        ("6@mon-fri@19,7,7", "netapp", "6@mon-fri@7,19", 6),
        ("2@sun", "netapp", "2@sun", 2),
        ("24@0,6,12,18", "netapp", "24@0,6,12,18", 24),
        ("1@mon-sun@0", "netapp", "1", 1),
        ("+05@sat,sun", "netapp", "5@sat,sun", 5),
        ("3@sat-mon,wed", "netapp", "3@wed,sat-mon", 3),
        ("0", "netapp", "0", 0),
        ("cron:0  2 * *   *", "cron", "cron:0 2 * * *", None),
        ("Cron: 0 2 * * MON-FRI", "cron", "cron:0 2 * * mon-fri", None),
    ],
)
def test_parse(text, family, canonical, keep):
    spec = schedule.parse_spec(text)
    assert spec.family == family
    assert spec.text == canonical
    assert spec.keep == keep
    assert spec.timezone == "UTC"
    assert schedule.parse_spec(canonical) == spec


def test_timezone_attributes():
    spec = schedule.parse_spec("daily@02:30", timezone=" Europe/Berlin ")
    assert spec.timezone == "Europe/Berlin"
    assert spec.tz == BERLIN
    assert spec != schedule.parse_spec("daily@02:30")
    assert hash(spec) == hash(schedule.parse_spec("daily@2:30", spec.timezone))


@pytest.mark.parametrize(
    ("text", "timezone", "message"),
    [
        ("", "UTC", "spec: must not be empty"),
        ("   ", "UTC", "spec: must not be empty"),
        (None, "UTC", "spec: None is not a string"),
        ("daily@02:30", "", "timezone: '' is not an IANA timezone"),
        ("daily@02:30", None, "timezone: None is not an IANA timezone"),
        (
            "daily@02:30",
            "Europe",
            "timezone: 'Europe' is not an IANA timezone",
        ),
        (
            "daily@02:30",
            "../etc/passwd",
            "timezone: '../etc/passwd' is not an IANA timezone",
        ),
        (
            "daily@02:30",
            "localtime",
            "timezone: 'localtime' is not an IANA timezone",
        ),
        (
            "daily@02:30",
            "right/UTC",
            "timezone: 'right/UTC' is not an IANA timezone",
        ),
        (
            "daily@02:30",
            "/usr/share/zoneinfo/UTC",
            "timezone: '/usr/share/zoneinfo/UTC' is not an IANA timezone",
        ),
        ("daily@", "UTC", "time: '' is not HH:MM (00:00-23:59)"),
        ("daily@12:60", "UTC", "time: '12:60' is not HH:MM (00:00-23:59)"),
        ("daily@noon", "UTC", "time: 'noon' is not HH:MM (00:00-23:59)"),
        ("daily@02:30@x", "UTC", "spec: 'daily@02:30@x' is not daily@HH:MM"),
        (
            "weekly@monday@09:00",
            "UTC",
            "day: 'monday' is not a weekday (mon..sun)",
        ),
        (
            "monthly@0@00:00",
            "UTC",
            "day_of_month: '0' is not a day of the month (1-31)",
        ),
        (
            "monthly@x@00:00",
            "UTC",
            "day_of_month: 'x' is not a day of the month (1-31)",
        ),
        ("every@0h", "UTC", "hours: 0 does not divide 24"),
        ("every@48h", "UTC", "hours: 48 does not divide 24"),
        ("every@6h@6", "UTC", "time: '6' is not HH:MM (00:00-23:59)"),
        (
            "every@6h@00:00@x",
            "UTC",
            "spec: 'every@6h@00:00@x' is not every@Nh[@HH:MM]",
        ),
        (
            "6@mon-funday",
            "UTC",
            "day_list: 'funday' is not a weekday (mon..sun)",
        ),
        ("6@mon,,tue", "UTC", "day_list: '' is not a weekday (mon..sun)"),
        ("6@7@mon", "UTC", "day_list: '7' is not a weekday (mon..sun)"),
        ("6@mon@7-9", "UTC", "hour_list: '7-9' is not an hour (0-23)"),
        ("6@mon@", "UTC", "hour_list: '' is not an hour (0-23)"),
        ("6x@mon", "UTC", "count: '6x' is not a whole number >= 0"),
        (
            "@daily",
            "UTC",
            "spec: '@daily' is not a known schedule "
            "(daily@HH:MM, weekly@DAY@HH:MM, monthly@D@HH:MM, "
            "every@Nh[@HH:MM], COUNT[@DAYS][@HOURS], cron:MIN HOUR DOM MON "
            "DOW)",
        ),
    ],
)
def test_errors(text, timezone, message):
    with pytest.raises(schedule.SpecError) as caught:
        schedule.parse_spec(text, timezone)
    assert str(caught.value) == message


def test_spec_error_shape():
    error = schedule.SpecError("time", "'25:00' is not HH:MM")
    assert isinstance(error, ValueError)
    assert str(error) == "time: '25:00' is not HH:MM"
    assert (error.field, error.message) == ("time", "'25:00' is not HH:MM")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.field, copy.message) == (error.field, error.message)
    assert issubclass(schedule.RetentionError, schedule.SpecError)


def test_tzdata_fallback():
    """A host without a tz database still knows every zone via tzdata."""
    zoneinfo.reset_tzpath(to=[])
    zoneinfo.ZoneInfo.clear_cache()
    try:
        assert zoneinfo.TZPATH == ()
        spec = schedule.parse_spec("daily@03:00", "Pacific/Chatham")
        run = spec.next_run(utc(2026, 9, 26))
        assert run.astimezone(spec.tz).isoformat() == (
            "2026-09-27T03:45:00+13:45"
        )
        with pytest.raises(schedule.SpecError):
            schedule.parse_spec("daily@02:30", "Mars/Base")
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()


@pytest.mark.parametrize(
    "call",
    [
        lambda spec, naive: spec.next_run(naive),
        lambda spec, naive: spec.runs(naive, 3),
        lambda spec, naive: spec.previous_run(naive),
        lambda spec, naive: spec.window_of(naive),
        lambda spec, naive: spec.missed(naive, utc(2026, 1, 1)),
        lambda spec, naive: spec.missed(utc(2026, 1, 1), naive),
    ],
)
def test_naive_datetimes_are_refused(call):
    spec = schedule.parse_spec("daily@02:30")
    with pytest.raises(TypeError):
        call(spec, datetime.datetime(2026, 1, 1))


def test_results_are_utc_whatever_the_input_zone():
    spec = schedule.parse_spec("daily@02:30", "Europe/Berlin")
    after = datetime.datetime(2026, 6, 1, 12, tzinfo=NEW_YORK)
    run = spec.next_run(after)
    assert run.tzinfo is UTC
    assert run == utc(2026, 6, 2, 0, 30)
    assert spec.previous_run(after).tzinfo is UTC


def test_next_run_is_strictly_after():
    spec = schedule.parse_spec("daily@02:30")
    assert spec.next_run(utc(2026, 1, 1, 2, 30)) == utc(2026, 1, 2, 2, 30)
    assert spec.next_run(utc(2026, 1, 1, 2, 29, 59, 999999)) == utc(
        2026, 1, 1, 2, 30
    )


def test_previous_run_is_inclusive():
    spec = schedule.parse_spec("daily@02:30")
    assert spec.previous_run(utc(2026, 1, 1, 2, 30)) == utc(2026, 1, 1, 2, 30)
    assert spec.previous_run(utc(2026, 1, 1, 2, 29)) == utc(
        2025, 12, 31, 2, 30
    )


def test_window_of():
    spec = schedule.parse_spec("every@6h")
    window = spec.window_of(utc(2026, 1, 1, 7, 15))
    assert window == schedule.Window(utc(2026, 1, 1, 6), utc(2026, 1, 1, 12))
    assert window.start == utc(2026, 1, 1, 6)
    # A run instant opens its own window.
    assert spec.window_of(utc(2026, 1, 1, 6)).start == utc(2026, 1, 1, 6)


def test_missed_catches_up_once_with_the_latest_run():
    spec = schedule.parse_spec("every@1h")
    since = utc(2026, 1, 1, 0, 0)
    now = utc(2026, 1, 8, 5, 30)
    assert spec.missed(since, now) == utc(2026, 1, 8, 5)
    assert spec.missed(utc(2026, 1, 8, 5), now) is None
    assert spec.missed(utc(2026, 1, 8, 4, 59), now) == utc(2026, 1, 8, 5)
    assert spec.missed(now, now) is None
    assert spec.missed(utc(2026, 1, 8, 5, 30), utc(2026, 1, 8, 6)) == utc(
        2026, 1, 8, 6
    )


def test_never_running_spec():
    spec = schedule.parse_spec("0@mon-fri@7")
    assert spec.keep == 0
    t = utc(2026, 1, 1)
    assert spec.next_run(t) is None
    assert list(spec.runs(t, 5)) == []
    assert spec.previous_run(t) is None
    assert spec.window_of(t) == schedule.Window(None, None)
    assert spec.missed(t - datetime.timedelta(days=9), t) is None


def test_runs():
    spec = schedule.parse_spec("every@8h")
    runs = list(spec.runs(utc(2026, 1, 1), 4))
    assert runs == [
        utc(2026, 1, 1, 8),
        utc(2026, 1, 1, 16),
        utc(2026, 1, 2, 0),
        utc(2026, 1, 2, 8),
    ]
    assert list(spec.runs(utc(2026, 1, 1), 0)) == []


def test_monthly_short_months():
    spec = schedule.parse_spec("monthly@29@00:00")
    runs = list(spec.runs(utc(2027, 1, 1), 3))
    assert [run.date() for run in runs] == [
        datetime.date(2027, 1, 29),
        datetime.date(2027, 2, 28),
        datetime.date(2027, 3, 29),
    ]


# Daylight saving time, in Berlin: 2026-03-29 02:00 -> 03:00 (01:00 UTC)
# and 2026-10-25 03:00 -> 02:00 (01:00 UTC).


def test_gap_runs_at_the_end_of_the_gap_once():
    spec = schedule.parse_spec("daily@02:30", "Europe/Berlin")
    assert local_day_runs(spec, datetime.date(2026, 3, 29)) == [
        utc(2026, 3, 29, 1, 0)
    ]


def test_overlap_runs_once_at_the_first_occurrence():
    spec = schedule.parse_spec("daily@02:30", "Europe/Berlin")
    assert local_day_runs(spec, datetime.date(2026, 10, 25)) == [
        utc(2026, 10, 25, 0, 30)
    ]
    # Between the two occurrences, the window is still the first one's.
    second = utc(2026, 10, 25, 1, 30)
    assert spec.previous_run(second) == utc(2026, 10, 25, 0, 30)
    assert spec.next_run(second) == utc(2026, 10, 26, 1, 30)


def test_every_hour_on_the_spring_forward_day_runs_23_times():
    spec = schedule.parse_spec("every@1h", "Europe/Berlin")
    runs = local_day_runs(spec, datetime.date(2026, 3, 29))
    assert len(runs) == 23
    assert len(set(runs)) == 23
    assert utc(2026, 3, 29, 1, 0) in runs  # 02:00 wall, gap -> 03:00


def test_every_hour_on_the_fall_back_day_runs_24_times():
    spec = schedule.parse_spec("every@1h", "Europe/Berlin")
    runs = local_day_runs(spec, datetime.date(2026, 10, 25))
    assert len(runs) == 24
    # 02:00 CEST runs, 02:00 CET (the repeated hour) does not.
    assert utc(2026, 10, 25, 0, 0) in runs
    assert utc(2026, 10, 25, 1, 0) not in runs
    assert spec.next_run(utc(2026, 10, 25, 0, 0)) == utc(2026, 10, 25, 2, 0)


def test_every_30_minutes_cron_on_the_fall_back_day():
    spec = schedule.parse_spec("cron:*/30 * * * *", "America/New_York")
    runs = local_day_runs(spec, datetime.date(2026, 11, 1))
    assert len(runs) == 48
    assert len(set(runs)) == 48


def test_gap_run_that_meets_the_next_run_is_one_run():
    spec = schedule.parse_spec("cron:0,30 2,3 * * *", "Europe/Berlin")
    runs = local_day_runs(spec, datetime.date(2026, 3, 29))
    # 02:00 and 02:30 both land on 03:00, which also runs: one run.
    assert runs == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 30)]


def test_whole_day_gap():
    """Samoa skipped 30 December 2011: that day's run is the next day's
    first instant, and the next day runs as usual."""
    spec = schedule.parse_spec("daily@02:00", "Pacific/Apia")
    runs = list(spec.runs(utc(2011, 12, 29, 0), 3))
    local = [run.astimezone(spec.tz).isoformat() for run in runs]
    assert local == [
        "2011-12-29T02:00:00-10:00",
        "2011-12-31T00:00:00+14:00",
        "2011-12-31T02:00:00+14:00",
    ]


def test_far_future_uses_the_zone_rules():
    spec = schedule.parse_spec("daily@02:30", "Europe/Berlin")
    # Past the tz database's explicit transitions (2037), zoneinfo
    # extrapolates the POSIX rule; the gap rule still applies.
    assert spec.next_run(utc(2050, 3, 26, 12)) == utc(2050, 3, 27, 1, 0)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("monthly@\u00b2@00:00", "day_of_month"),
        ("monthly@\u0663@00:00", "day_of_month"),
        ("daily@\u0661:00", "time"),
        ("6@mon@\u00b2", "hour_list"),
        ("6@mon@" + "1" * 5000, "hour_list"),
        ("9" * 5000, "count"),
        ("cron:\u0661 * * * *", "cron"),
        ("cron:*/" + "1" * 5000 + " * * * *", "cron"),
    ],
)
def test_only_ascii_digits_of_sane_length(text, field):
    with pytest.raises(schedule.SpecError) as caught:
        schedule.parse_spec(text)
    assert caught.value.field == field


@pytest.mark.parametrize("timezone", ["UTC", "Pacific/Kiritimati"])
def test_ends_of_the_calendar(timezone):
    spec = schedule.parse_spec("every@1h", timezone)
    latest = datetime.datetime.max.replace(tzinfo=UTC)
    earliest = datetime.datetime.min.replace(tzinfo=UTC)
    assert spec.next_run(latest) is None
    # No error at either end; 0001-01-01 00:00 is a run in UTC, while in
    # Kiritimati (LMT -10:29:20) it is before the calendar's first day.
    assert spec.previous_run(earliest) in (None, earliest)
    assert spec.window_of(latest).end is None
