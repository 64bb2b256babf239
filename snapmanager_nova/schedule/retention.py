"""Retention: which snapshots of one schedule to delete.

:func:`plan_deletions` is pure: it is handed the snapshots, the policy and
the time, and answers with ids; deleting them is the conductor's job. The
rules are documented in ``doc/source/schedules.rst``.
"""

import collections.abc
import dataclasses
import datetime
import re

from snapmanager_nova.schedule import errors
from snapmanager_nova.schedule import zones

CREATING = "creating"
AVAILABLE = "available"
ERROR = "error"
DELETING = "deleting"
DELETED = "deleted"
STATUSES = (CREATING, AVAILABLE, ERROR, DELETING, DELETED)

# The grandfather-father-son tiers, each with the local-time bucket a
# snapshot falls in. Buckets are wall-clock ones, so on a fall-back day
# the repeated hour is one hourly bucket, as it is one hour on the clock.
_TIER_BUCKETS = {
    "hourly": lambda local: (local.date(), local.hour),
    "daily": lambda local: local.date(),
    "weekly": lambda local: local.isocalendar()[:2],
    "monthly": lambda local: (local.year, local.month),
    "yearly": lambda local: local.year,
}
_NEWEST_RULES = ("keep_count", "keep_last")
_COUNT_RULES = _NEWEST_RULES + tuple(_TIER_BUCKETS)

_DURATION_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:[0-9]{1,9}[wdhms])+")
_DURATION_PART = re.compile(r"([0-9]+)([wdhms])")
_DURATION_HELP = (
    "seconds, or a duration like '7d', '12h', '30m', '1w', '1d12h'"
)


@dataclasses.dataclass(frozen=True)
class SnapshotInfo:
    """What retention needs to know of one snapshot."""

    id: object
    created_at: datetime.datetime
    status: str

    def __post_init__(self):
        zones.require_aware(self.created_at, "created_at")
        if self.status not in STATUSES:
            raise ValueError(
                f"status {self.status!r} is not one of {', '.join(STATUSES)}"
            )


@dataclasses.dataclass(frozen=True)
class RetentionPolicy:
    """Which snapshots of a schedule to keep.

    :param keep_count: keep the newest N (N >= 1); a NetApp spec's count.
    :param max_age: a :class:`datetime.timedelta`; delete older ones
        whatever the other rules say.
    :param keep_last: keep the newest N.
    :param hourly: keep the newest of each of the N latest hours that have
        a snapshot; ``daily``, ``weekly`` (ISO weeks), ``monthly`` and
        ``yearly`` likewise.

    With no count or tier rule set at all, every snapshot is kept (until
    ``max_age``, if set).
    """

    keep_count: int | None = None
    max_age: datetime.timedelta | None = None
    keep_last: int | None = None
    hourly: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None
    yearly: int | None = None

    def __post_init__(self):
        for name in _COUNT_RULES:
            value = getattr(self, name)
            least = 1 if name == "keep_count" else 0
            # bool is an int to Python, never to a tenant.
            if value is not None and (
                not isinstance(value, int)
                or isinstance(value, bool)
                or value < least
            ):
                raise errors.RetentionError(
                    name, f"{value!r} is not a whole number >= {least}"
                )
        if self.max_age is not None:
            _check_max_age(self.max_age)

    @property
    def has_count_rules(self):
        """Whether any count or tier rule is set."""
        return any(getattr(self, name) is not None for name in _COUNT_RULES)

    @classmethod
    def from_dict(cls, data):
        """Build a policy from a dict as the API receives it.

        Keys are the field names; None or a missing key leaves a rule
        unset. ``max_age`` is whole seconds or a duration string of
        ``w``/``d``/``h``/``m``/``s`` parts such as ``"7d"`` or
        ``"1d12h"``.

        :raises RetentionError: naming the bad or unknown key.
        """
        if not isinstance(data, collections.abc.Mapping):
            raise errors.RetentionError(
                "retention", f"{data!r} is not an object"
            )
        known = [field.name for field in dataclasses.fields(cls)]
        values = {}
        for key, value in data.items():
            if key not in known:
                raise errors.RetentionError(
                    "retention",
                    f"unknown key {key!r} (known: {', '.join(known)})",
                )
            if key == "max_age" and value is not None:
                value = _parse_duration(value)
            if value is not None:
                values[key] = value
        return cls(**values)

    def to_dict(self):
        """Return the set rules, ``max_age`` in seconds, for from_dict."""
        data = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if field.name == "max_age":
                value = int(value.total_seconds())
            data[field.name] = value
        return data


def plan_deletions(snapshots, policy, now, timezone="UTC"):
    """Return the ids of the snapshots to delete, oldest first.

    :param snapshots: :class:`SnapshotInfo` of one schedule's snapshots.
    :param policy: a :class:`RetentionPolicy`.
    :param now: aware; ``max_age`` counts back from it.
    :param timezone: IANA name the tier buckets are computed in.
    """
    zones.require_aware(now, "now")
    tz = zones.load_timezone(timezone)
    snapshots = list(snapshots)
    due = [snap for snap in snapshots if snap.status in (AVAILABLE, ERROR)]
    if not due:
        return []
    if max(due, key=_age_order).status == ERROR:
        # The schedule is failing: that is an alarm for a human, and
        # pruning now would eat into the snapshots that still restore.
        return []
    # Newest first. The newest available one is never deleted, so there
    # is always something to restore.
    available = sorted(
        (snap for snap in snapshots if snap.status == AVAILABLE),
        key=_age_order,
        reverse=True,
    )
    kept = _kept_by_counts(available, policy, tz)
    cutoff = now - policy.max_age if policy.max_age is not None else None
    doomed = [
        snap
        for snap in available[1:]
        if snap.id not in kept
        or (cutoff is not None and snap.created_at < cutoff)
    ]
    # Failed snapshots hold no data worth keeping once a newer snapshot
    # succeeded; the newest due snapshot is available here, so every
    # failed one is older.
    doomed.extend(snap for snap in snapshots if snap.status == ERROR)
    return [snap.id for snap in sorted(doomed, key=_age_order)]


def _kept_by_counts(available, policy, tz):
    """Return the ids the count and tier rules keep (newest first input)."""
    if not policy.has_count_rules:
        return {snap.id for snap in available}
    kept = set()
    for name in _NEWEST_RULES:
        count = getattr(policy, name)
        if count:
            kept.update(snap.id for snap in available[:count])
    for name, bucket_of in _TIER_BUCKETS.items():
        count = getattr(policy, name)
        if not count:
            continue
        buckets = set()
        for snap in available:
            bucket = bucket_of(snap.created_at.astimezone(tz))
            if bucket in buckets:
                # An older snapshot of a bucket already kept. Buckets are
                # a set, not "the previous one": on a fall-back day an
                # earlier bucket can come round again.
                continue
            if len(buckets) == count:
                break
            buckets.add(bucket)
            kept.add(snap.id)
    return kept


def _age_order(snap):
    # Ties on created_at are broken by id so that the answer does not
    # depend on the order the database returned the rows in.
    return snap.created_at, str(snap.id)


def _parse_duration(value):
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and _DURATION.fullmatch(
        compact := "".join(value.lower().split())
    ):
        seconds = sum(
            int(number) * _DURATION_UNITS[unit]
            for number, unit in _DURATION_PART.findall(compact)
        )
    else:
        raise errors.RetentionError(
            "max_age", f"{value!r} is not {_DURATION_HELP}"
        )
    if seconds <= 0:
        raise errors.RetentionError("max_age", f"{value!r} is not > 0")
    try:
        return datetime.timedelta(seconds=seconds)
    except OverflowError:
        raise errors.RetentionError(
            "max_age", f"{value!r} is too long"
        ) from None


def _check_max_age(max_age):
    if not isinstance(max_age, datetime.timedelta):
        raise errors.RetentionError(
            "max_age", f"{max_age!r} is not a datetime.timedelta"
        )
    if max_age <= datetime.timedelta(0):
        raise errors.RetentionError("max_age", f"{max_age!r} is not > 0")
    if max_age % datetime.timedelta(seconds=1):
        # to_dict() sends whole seconds; a fraction would not round-trip.
        raise errors.RetentionError(
            "max_age", f"{max_age!r} is not a whole number of seconds"
        )
