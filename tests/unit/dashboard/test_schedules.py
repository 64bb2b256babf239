"""The policy form's mapping to and from the API's schedules, and the
panel's lateness mark (pure functions)."""

import datetime

import pytest

from snapmanager_dashboard.dashboards.project.snapshot_policies import (
    schedules,
)
from snapmanager_nova import schedule as schedule_engine
from tests.unit.dashboard import fakes

UTC = datetime.UTC


@pytest.mark.parametrize(
    "fields, spec",
    [
        ({"family": "daily", "time": "02:00"}, "daily@02:00"),
        (
            {"family": "weekly", "weekday": "sun", "time": "03:00"},
            "weekly@sun@03:00",
        ),
        (
            {"family": "monthly", "day": 31, "time": "01:00"},
            "monthly@31@01:00",
        ),
        ({"family": "every", "hours": 6, "time": "00:30"}, "every@6h@00:30"),
        ({"family": "spec", "spec": "6@mon-fri@7,19"}, "6@mon-fri@7,19"),
        ({"family": "spec", "spec": "cron:30 1 * * *"}, "cron:30 1 * * *"),
    ],
)
def test_fields_make_canonical_specs_and_come_back(fields, spec):
    data = dict(fields, timezone="Europe/Berlin", keep=7)
    schedule = schedules.schedule_from_fields(data)
    assert schedule == {
        "spec": spec,
        "timezone": "Europe/Berlin",
        "retention": {"keep_count": 7},
    }
    # What the form writes is what the API's engine calls canonical, so
    # the API stores it as written and the form reads it back the same.
    assert schedule_engine.parse_spec(spec, "Europe/Berlin").text == spec
    back = schedules.fields_from_schedule(schedule)
    for name, value in fields.items():
        assert back[name] == value
    assert back["keep"] == 7


def test_no_keep_means_no_retention():
    data = {"family": "daily", "time": "02:00", "timezone": "UTC"}
    assert "retention" not in schedules.schedule_from_fields(data)


def test_every_without_a_start_reads_as_midnight():
    back = schedules.fields_from_schedule({"spec": "every@12h"})
    assert (back["family"], back["hours"], back["time"]) == (
        "every",
        12,
        "00:00",
    )


def test_next_run_is_the_earliest_enabled():
    runs = [
        fakes.schedule(next_run_at="2026-03-30T01:00:00Z"),
        fakes.schedule(next_run_at="2026-03-29T05:00:00Z"),
        fakes.schedule(next_run_at=None, enabled=False),
    ]
    assert schedules.next_run(runs) == datetime.datetime(
        2026, 3, 29, 5, tzinfo=UTC
    )
    assert schedules.next_run([]) is None


def _snapshot(window_start, **overrides):
    return fakes.snapshot(window_start=window_start, **overrides)


def test_late_when_the_newest_good_snapshot_misses_its_window():
    schedule = fakes.schedule(
        spec="daily@02:00",
        timezone="UTC",
        created_at="2026-03-01T00:00:00Z",
        last_run_at="2026-03-29T02:00:00Z",
        next_run_at="2026-03-30T02:00:00Z",
    )
    now = datetime.datetime(2026, 3, 29, 12, tzinfo=UTC)
    fresh = [_snapshot("2026-03-29T02:00:00Z")]
    assert schedules.late_schedules([schedule], fresh, now) == []
    # Yesterday's is the newest good one; today's failed.
    stale = [
        _snapshot("2026-03-28T02:00:00Z"),
        _snapshot("2026-03-29T02:00:00Z", status="error"),
    ]
    assert schedules.late_schedules([schedule], stale, now) == [schedule]
    # Another schedule's snapshot does not count for this one.
    other = [_snapshot("2026-03-29T02:00:00Z", schedule_id="another")]
    assert schedules.late_schedules([schedule], other, now) == [schedule]


def test_not_late_within_the_grace_or_when_disabled():
    schedule = fakes.schedule(
        spec="daily@02:00",
        timezone="UTC",
        created_at="2026-03-01T00:00:00Z",
        last_run_at="2026-03-29T02:00:00Z",
    )
    within = datetime.datetime(2026, 3, 29, 2, 30, tzinfo=UTC)
    old = [_snapshot("2026-03-28T02:00:00Z")]
    assert schedules.late_schedules([schedule], old, within) == []
    disabled = dict(schedule, enabled=False)
    later = datetime.datetime(2026, 3, 29, 12, tzinfo=UTC)
    assert schedules.late_schedules([disabled], old, later) == []


def test_newest_good():
    snapshots = [
        _snapshot("2026-03-29T02:00:00Z", status="error"),
        _snapshot("2026-03-28T02:00:00Z"),
        _snapshot("2026-03-27T02:00:00Z"),
    ]
    newest = schedules.newest_good(snapshots)
    assert newest["window_start"] == "2026-03-28T02:00:00Z"
    assert schedules.newest_good([]) is None


def test_effective_schedules():
    own = fakes.policy()
    default = {"project_id": "1", "schedules": [fakes.schedule(id="d")]}
    assert schedules.effective(None, default) == []
    assert schedules.effective(own, default) == own["schedules"]
    uses_default = fakes.policy(schedules=[], uses_project_default=True)
    assert schedules.effective(uses_default, default) == default["schedules"]
    assert schedules.effective(uses_default, None) == []
