"""Table tests of RetentionPolicy and plan_deletions."""

import datetime

import pytest

from snapmanager_nova import schedule

UTC = datetime.UTC
NOW = datetime.datetime(2026, 6, 30, 12, tzinfo=UTC)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)


def snap(name, created_at, status="available"):
    return schedule.SnapshotInfo(name, created_at, status)


def daily_snapshots(days, status="available"):
    """One snapshot a day at 02:00 UTC, named d1 (newest) .. dN."""
    return [
        snap(f"d{age}", NOW.replace(hour=2) - age * DAY + DAY, status)
        for age in range(1, days + 1)
    ]


def plan(snapshots, timezone="UTC", **policy):
    return schedule.plan_deletions(
        snapshots, schedule.RetentionPolicy(**policy), NOW, timezone
    )


# Policy validation and its dict form.


@pytest.mark.parametrize(
    ("data", "policy"),
    [
        ({}, schedule.RetentionPolicy()),
        ({"keep_count": 7}, schedule.RetentionPolicy(keep_count=7)),
        ({"keep_count": None}, schedule.RetentionPolicy()),
        ({"max_age": 3600}, schedule.RetentionPolicy(max_age=HOUR)),
        ({"max_age": "7d"}, schedule.RetentionPolicy(max_age=7 * DAY)),
        ({"max_age": "12h"}, schedule.RetentionPolicy(max_age=12 * HOUR)),
        (
            {"max_age": "30m"},
            schedule.RetentionPolicy(max_age=datetime.timedelta(minutes=30)),
        ),
        ({"max_age": "1W"}, schedule.RetentionPolicy(max_age=7 * DAY)),
        (
            {"max_age": "1d 12h"},
            schedule.RetentionPolicy(max_age=36 * HOUR),
        ),
        (
            {"daily": 7, "weekly": 4, "monthly": 12, "yearly": 0},
            schedule.RetentionPolicy(daily=7, weekly=4, monthly=12, yearly=0),
        ),
        (
            {"keep_last": 0, "hourly": 24},
            schedule.RetentionPolicy(keep_last=0, hourly=24),
        ),
    ],
)
def test_from_dict(data, policy):
    assert schedule.RetentionPolicy.from_dict(data) == policy
    assert schedule.RetentionPolicy.from_dict(policy.to_dict()) == policy


def test_to_dict():
    policy = schedule.RetentionPolicy(keep_count=3, max_age=2 * DAY, daily=7)
    assert policy.to_dict() == {
        "keep_count": 3,
        "max_age": 172800,
        "daily": 7,
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"keep": 3},
            "retention: unknown key 'keep' (known: keep_count, max_age, "
            "keep_last, hourly, daily, weekly, monthly, yearly)",
        ),
        (
            [("keep_count", 3)],
            "retention: [('keep_count', 3)] is not an object",
        ),
        ({"keep_count": 0}, "keep_count: 0 is not a whole number >= 1"),
        ({"keep_count": "3"}, "keep_count: '3' is not a whole number >= 1"),
        ({"keep_count": True}, "keep_count: True is not a whole number >= 1"),
        ({"daily": -1}, "daily: -1 is not a whole number >= 0"),
        ({"weekly": 1.5}, "weekly: 1.5 is not a whole number >= 0"),
        ({"max_age": 0}, "max_age: 0 is not > 0"),
        ({"max_age": 10**20}, "max_age: 100000000000000000000 is too long"),
        ({"max_age": "999999999w"}, "max_age: '999999999w' is too long"),
        (
            {"max_age": "\u0661d"},
            "max_age: '\u0661d' is not seconds, or a duration like '7d', "
            "'12h', '30m', '1w', '1d12h'",
        ),
        ({"max_age": "0d"}, "max_age: '0d' is not > 0"),
        (
            {"max_age": "7x"},
            "max_age: '7x' is not seconds, or a duration like '7d', '12h', "
            "'30m', '1w', '1d12h'",
        ),
        (
            {"max_age": 1.5},
            "max_age: 1.5 is not seconds, or a duration like '7d', '12h', "
            "'30m', '1w', '1d12h'",
        ),
    ],
)
def test_from_dict_errors(data, message):
    with pytest.raises(schedule.RetentionError) as caught:
        schedule.RetentionPolicy.from_dict(data)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_age": 3600}, "max_age: 3600 is not a datetime.timedelta"),
        ({"max_age": -HOUR}, "is not > 0"),
        (
            {"max_age": datetime.timedelta(seconds=1.5)},
            "is not a whole number of seconds",
        ),
    ],
)
def test_policy_errors(kwargs, message):
    with pytest.raises(schedule.RetentionError) as caught:
        schedule.RetentionPolicy(**kwargs)
    assert caught.value.field == "max_age"
    assert message in str(caught.value)


def test_policy_is_frozen():
    policy = schedule.RetentionPolicy(keep_count=3)
    with pytest.raises(AttributeError):
        policy.keep_count = 4


def test_snapshot_info_validation():
    with pytest.raises(TypeError):
        schedule.SnapshotInfo("a", datetime.datetime(2026, 1, 1), "error")
    with pytest.raises(ValueError):
        schedule.SnapshotInfo("a", NOW, "broken")


# plan_deletions.


def test_keep_count():
    snapshots = daily_snapshots(5)
    assert plan(snapshots, keep_count=3) == ["d5", "d4"]


def test_keep_last_and_keep_count_union():
    snapshots = daily_snapshots(5)
    assert plan(snapshots, keep_count=2, keep_last=3) == ["d5", "d4"]


def test_no_count_rule_keeps_everything():
    assert plan(daily_snapshots(40)) == []


def test_max_age_alone():
    snapshots = daily_snapshots(10)
    # d1 is from today 02:00, dN from N-1 days before; max_age 3 days
    # from 12:00 cuts at 27 June 12:00, so d4 (27 June 02:00) goes.
    assert plan(snapshots, max_age=3 * DAY) == [
        f"d{age}" for age in range(10, 3, -1)
    ]


def test_max_age_beats_keep_rules():
    snapshots = daily_snapshots(6)
    # The cutoff is 28 June 12:00, so d3 (28 June 02:00) goes too.
    assert plan(snapshots, keep_count=6, max_age=2 * DAY) == [
        "d6",
        "d5",
        "d4",
        "d3",
    ]


def test_newest_available_survives_max_age():
    snapshots = [snap("old", NOW - 30 * DAY), snap("older", NOW - 40 * DAY)]
    assert plan(snapshots, keep_count=1, max_age=DAY) == ["older"]


def test_tier_zero_still_keeps_the_newest():
    assert plan(daily_snapshots(3), daily=0) == ["d3", "d2"]


def test_daily_keeps_the_newest_of_each_day():
    snapshots = [
        snap("mon-a", datetime.datetime(2026, 6, 29, 1, tzinfo=UTC)),
        snap("mon-b", datetime.datetime(2026, 6, 29, 13, tzinfo=UTC)),
        snap("sun-a", datetime.datetime(2026, 6, 28, 1, tzinfo=UTC)),
        snap("sun-b", datetime.datetime(2026, 6, 28, 13, tzinfo=UTC)),
        snap("fri", datetime.datetime(2026, 6, 26, 13, tzinfo=UTC)),
        snap("thu", datetime.datetime(2026, 6, 25, 13, tzinfo=UTC)),
    ]
    # Days without snapshots (Saturday) do not count.
    assert plan(snapshots, daily=3) == ["thu", "sun-a", "mon-a"]


def test_tiers_are_computed_in_local_time():
    # 22:30 UTC on 28 June is 08:30 on 29 June in Sydney (+10:00).
    snapshots = [
        snap("late", datetime.datetime(2026, 6, 28, 22, 30, tzinfo=UTC)),
        snap("early", datetime.datetime(2026, 6, 28, 12, 0, tzinfo=UTC)),
        snap("before", datetime.datetime(2026, 6, 27, 12, 0, tzinfo=UTC)),
    ]
    # In UTC "late" and "early" share 28 June; in Sydney they do not.
    assert plan(snapshots, "UTC", daily=2) == ["early"]
    assert plan(snapshots, "Australia/Sydney", daily=2) == ["before"]
    assert plan(snapshots, "Australia/Sydney", daily=1) == ["before", "early"]


def test_grandfather_father_son():
    # A snapshot every day at 03:00 UTC for a year.
    snapshots = [
        snap(
            day.isoformat(),
            datetime.datetime.combine(day, datetime.time(3), UTC),
        )
        for day in (datetime.date(2026, 6, 30) - n * DAY for n in range(365))
    ]
    deleted = plan(snapshots, daily=7, weekly=4, monthly=6)
    kept = sorted(set(s.id for s in snapshots) - set(deleted))
    assert kept == [
        # The last day of each of the 6 latest months; June's is today.
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
        "2026-05-31",
        # The Sunday of each of the 4 latest ISO weeks (this week's
        # newest is today, a Tuesday).
        "2026-06-14",
        "2026-06-21",
        "2026-06-24",
        "2026-06-25",
        "2026-06-26",
        "2026-06-27",
        "2026-06-28",
        "2026-06-29",
        "2026-06-30",
    ]


def test_hourly_fall_back_hour_is_one_bucket():
    # Berlin, 25 October 2026: 02:00-02:59 happens twice.
    first = datetime.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30+2
    second = datetime.datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30+1
    earlier = datetime.datetime(2026, 10, 24, 23, 30, tzinfo=UTC)  # 01:30
    snapshots = [snap("first", first), snap("second", second)]
    snapshots.append(snap("earlier", earlier))
    later_now = second + HOUR
    policy = schedule.RetentionPolicy(hourly=2)
    assert schedule.plan_deletions(
        snapshots, policy, later_now, "Europe/Berlin"
    ) == ["first"]
    assert schedule.plan_deletions(snapshots, policy, later_now, "UTC") == [
        "earlier"
    ]


def test_statuses():
    snapshots = [
        snap("creating", NOW, "creating"),
        snap("deleting", NOW - 9 * DAY, "deleting"),
        snap("deleted", NOW - 9 * DAY, "deleted"),
        snap("new", NOW - HOUR),
        snap("failed", NOW - DAY, "error"),
        snap("old", NOW - 2 * DAY),
        snap("older", NOW - 3 * DAY),
    ]
    assert plan(snapshots, keep_count=2) == ["older", "failed"]


def test_failing_schedule_prunes_nothing():
    snapshots = [
        snap("failed", NOW - HOUR, "error"),
        snap("creating", NOW, "creating"),
        snap("ok", NOW - DAY),
        snap("old", NOW - 20 * DAY),
    ]
    assert plan(snapshots, keep_count=1, max_age=DAY) == []
    assert plan([snap("x", NOW, "error")], keep_count=1) == []


def test_same_instant_ties_are_broken_by_id():
    snapshots = [snap("b", NOW, "error"), snap("a", NOW)]
    assert plan(snapshots, keep_count=1) == []
    snapshots = [snap("a", NOW, "error"), snap("b", NOW)]
    assert plan(snapshots, keep_count=1) == ["a"]


def test_nothing_to_do():
    assert plan([], keep_count=1) == []
    assert plan([snap("c", NOW, "creating")], keep_count=1) == []


def test_any_input_order_and_iterables():
    snapshots = daily_snapshots(6)
    expected = plan(snapshots, keep_count=2)
    assert plan(reversed(snapshots), keep_count=2) == expected
    assert plan(iter(snapshots), keep_count=2) == expected


def test_now_must_be_aware():
    with pytest.raises(TypeError):
        schedule.plan_deletions(
            [], schedule.RetentionPolicy(), datetime.datetime(2026, 1, 1)
        )


def test_bad_timezone():
    with pytest.raises(schedule.SpecError) as caught:
        plan(daily_snapshots(2), "Mars/Base", daily=1)
    assert caught.value.field == "timezone"
