"""Property tests of plan_deletions, against its documented invariants."""

import datetime

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from snapmanager_nova import schedule
from tests.unit.schedule import strategies

CASES = settings(max_examples=300, deadline=None)

TIERS = {
    "hourly": lambda local: (local.date(), local.hour),
    "daily": lambda local: local.date(),
    "weekly": lambda local: local.isocalendar()[:2],
    "monthly": lambda local: (local.year, local.month),
    "yearly": lambda local: local.year,
}


def order(snap):
    return snap.created_at, snap.id


def reference_kept(available, policy, tz):
    """The count and tier rules, by grouping rather than by scanning."""
    newest_first = sorted(available, key=order, reverse=True)
    rules = [
        getattr(policy, name) for name in ("keep_count", "keep_last", *TIERS)
    ]
    if all(rule is None for rule in rules):
        return {snap.id for snap in available}
    kept = set()
    for count in (policy.keep_count, policy.keep_last):
        kept.update(snap.id for snap in newest_first[: count or 0])
    for name, bucket_of in TIERS.items():
        newest_of_bucket = {}
        for snap in newest_first:
            bucket = bucket_of(snap.created_at.astimezone(tz))
            newest_of_bucket.setdefault(bucket, snap)
        ranked = sorted(newest_of_bucket.values(), key=order, reverse=True)
        kept.update(snap.id for snap in ranked[: getattr(policy, name) or 0])
    return kept


@st.composite
def situations(draw):
    snapshots = draw(strategies.snapshot_lists())
    latest = max(
        (snap.created_at for snap in snapshots),
        default=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    )
    now = latest + draw(
        st.timedeltas(
            min_value=datetime.timedelta(hours=-1),
            max_value=datetime.timedelta(days=30),
        )
    )
    timezone = draw(st.sampled_from(strategies.TIMEZONES))
    return snapshots, draw(strategies.policies()), now, timezone


@CASES
@given(situations())
def test_invariants(situation):
    snapshots, policy, now, timezone = situation
    deleted = schedule.plan_deletions(snapshots, policy, now, timezone)
    by_id = {snap.id: snap for snap in snapshots}

    assert len(deleted) == len(set(deleted))
    assert set(deleted) <= set(by_id)
    assert [by_id[id_] for id_ in deleted] == sorted(
        (by_id[id_] for id_ in deleted), key=order
    )
    assert {by_id[id_].status for id_ in deleted} <= {"available", "error"}

    available = sorted(
        (snap for snap in snapshots if snap.status == "available"),
        key=order,
        reverse=True,
    )
    due = [snap for snap in snapshots if snap.status in ("available", "error")]
    if not due or max(due, key=order).status == "error":
        # Nothing to prune, or a failing schedule: prune nothing.
        assert deleted == []
        return

    newest = available[0]
    assert newest.id not in deleted
    errors = {snap.id for snap in snapshots if snap.status == "error"}
    assert errors <= set(deleted)

    cutoff = now - policy.max_age if policy.max_age else None
    for snap in available[1:]:
        too_old = cutoff is not None and snap.created_at < cutoff
        if too_old:
            assert snap.id in deleted
    if policy.keep_count:
        for snap in available[: policy.keep_count]:
            if cutoff is None or snap.created_at >= cutoff:
                assert snap.id not in deleted

    tz = schedule.parse_spec("daily@00:00", timezone).tz
    kept = reference_kept(available, policy, tz)
    expected = errors | {
        snap.id
        for snap in available[1:]
        if snap.id not in kept
        or (cutoff is not None and snap.created_at < cutoff)
    }
    assert set(deleted) == expected


@CASES
@given(situations())
def test_planning_again_deletes_nothing_more(situation):
    snapshots, policy, now, timezone = situation
    deleted = set(schedule.plan_deletions(snapshots, policy, now, timezone))
    remaining = [snap for snap in snapshots if snap.id not in deleted]
    assert schedule.plan_deletions(remaining, policy, now, timezone) == []
