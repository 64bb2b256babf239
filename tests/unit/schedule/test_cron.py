"""Cron: field syntax, names, and Vixie cron's day-matching rule."""

import datetime

import pytest

from snapmanager_nova import schedule

UTC = datetime.UTC
START = datetime.datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday


def run_days(text, count=6, after=START):
    spec = schedule.parse_spec(f"cron:{text}")
    return [run.date().isoformat() for run in spec.runs(after, count)]


def run_times(text, count):
    spec = schedule.parse_spec(f"cron:{text}")
    return [run.strftime("%H:%M") for run in spec.runs(START, count)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("*/15 0 * * *", ["00:15", "00:30", "00:45", "00:00"]),
        ("1-10/3 0 * * *", ["00:01", "00:04", "00:07", "00:10"]),
        ("5,1,3 0 * * *", ["00:01", "00:03", "00:05", "00:01"]),
        ("0 */8 * * *", ["08:00", "16:00", "00:00", "08:00"]),
        ("0 22-23,1 * * *", ["01:00", "22:00", "23:00", "01:00"]),
        ("59 23 * * *", ["23:59", "23:59", "23:59", "23:59"]),
    ],
)
def test_minutes_and_hours(text, expected):
    assert run_times(text, len(expected)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Day of week alone: 0, 7 and sun are all Sunday.
        ("0 0 * * 0", ["2026-01-04", "2026-01-11"]),
        ("0 0 * * 7", ["2026-01-04", "2026-01-11"]),
        ("0 0 * * sun", ["2026-01-04", "2026-01-11"]),
        ("0 0 * * 5-7", ["2026-01-02", "2026-01-03", "2026-01-04"]),
        ("0 0 * * fri-sun", ["2026-01-02", "2026-01-03", "2026-01-04"]),
        ("0 0 * * mon-sun", ["2026-01-02", "2026-01-03", "2026-01-04"]),
        ("0 0 * * sat-sun", ["2026-01-03", "2026-01-04", "2026-01-10"]),
        # Both restricted: either matches (the 13th, and every Monday).
        ("0 0 13 * mon", ["2026-01-05", "2026-01-12", "2026-01-13"]),
        # Day of week unrestricted (starts with *): both must match, and
        # "*/2" counts as unrestricted, as in Vixie cron.
        ("0 0 13 * *", ["2026-01-13", "2026-02-13", "2026-03-13"]),
        ("0 0 13 * */2", ["2026-01-13", "2026-06-13", "2026-08-13"]),
        ("0 0 */10 * mon", ["2026-05-11", "2026-06-01", "2026-08-31"]),
        # Months, by number and by name.
        ("0 0 1 */6 *", ["2026-07-01", "2027-01-01", "2027-07-01"]),
        ("0 0 1 jan,jul *", ["2026-07-01", "2027-01-01", "2027-07-01"]),
        ("0 0 1 feb-apr *", ["2026-02-01", "2026-03-01", "2026-04-01"]),
        # Rare but possible.
        ("0 0 29 2 *", ["2028-02-29", "2032-02-29", "2036-02-29"]),
        ("0 0 31 * *", ["2026-01-31", "2026-03-31", "2026-05-31"]),
    ],
)
def test_days(text, expected):
    assert run_days(text, len(expected)) == expected


def test_day_of_month_31_in_either_mode_still_runs_on_the_weekday():
    # 31 February never exists, but with both fields restricted the
    # Mondays of February still match.
    assert run_days("0 0 31 2 mon", 2) == ["2026-02-02", "2026-02-09"]


@pytest.mark.parametrize(
    "text",
    ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30,31 feb */3"],
)
def test_never_fires(text):
    with pytest.raises(schedule.SpecError) as caught:
        schedule.parse_spec(f"cron:{text}")
    assert caught.value.field == "cron"
    assert "never fires" in caught.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("60 * * * *", "field 'minute' value '60' out of range 0-59"),
        ("* 24 * * *", "field 'hour' value '24' out of range 0-23"),
        ("* * 0 * *", "field 'day-of-month' value '0' out of range 1-31"),
        ("* * * 13 *", "field 'month' value '13' out of range 1-12"),
        ("* * * * mon-8", "field 'day-of-week' value '8' out of range 0-7"),
        (
            "* * * * funday",
            "field 'day-of-week' value 'funday' is not a "
            "number, a name (sun..sat), N-M, */S or N-M/S",
        ),
        (
            "* * * * 1,",
            "field 'day-of-week' value '' is not a number, a "
            "name (sun..sat), N-M, */S or N-M/S",
        ),
        (
            "mon * * * *",
            "field 'minute' value 'mon' is not a number, N-M, */S or N-M/S",
        ),
        (
            "1-2-3 * * * *",
            "field 'minute' value '1-2-3' is not a number, N-M, */S or N-M/S",
        ),
        ("*/x * * * *", "field 'minute' step 'x' is not a whole number >= 1"),
        ("*/ * * * *", "field 'minute' step '' is not a whole number >= 1"),
        (
            "* * * * fri-mon",
            "field 'day-of-week' range 'fri-mon' is "
            "reversed (write it as a list)",
        ),
        (
            "",
            "'' has 0 fields; expected 5 (minute hour day-of-month month "
            "day-of-week)",
        ),
        (
            "* * * * * *",
            "'* * * * * *' has 6 fields; expected 5 (minute "
            "hour day-of-month month day-of-week)",
        ),
    ],
)
def test_errors(text, message):
    with pytest.raises(schedule.SpecError) as caught:
        schedule.parse_spec(f"cron:{text}")
    assert caught.value.field == "cron"
    assert caught.value.message == message


def test_sun_ending_a_range():
    assert run_days("0 0 * * sun-sun", 2) == ["2026-01-04", "2026-01-11"]
    assert run_days("0 0 * * sun-tue", 3) == [
        "2026-01-04",
        "2026-01-05",
        "2026-01-06",
    ]
