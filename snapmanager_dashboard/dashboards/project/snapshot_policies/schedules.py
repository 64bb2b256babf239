"""The policy form's fields and the API's schedules, both ways, and how
late a server's snapshots are.

Pure functions, tested without Horizon. The spec grammar is
doc/source/schedules.rst's; the form only writes the canonical forms of
the ``daily``, ``weekly``, ``monthly`` and ``every`` families and passes
any other spec on as typed (the API validates it and its message says
what is wrong). Lateness is the freshness check's own rule
(:func:`snapmanager_nova.schedule.lateness`), which is pure: the panel's
warning mark and an operator's ``freshness list`` agree.
"""

import datetime

from snapmanager_nova import schedule as schedule_engine

FAMILIES = ("daily", "weekly", "monthly", "every", "spec")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EVERY_HOURS = (1, 2, 3, 4, 6, 8, 12)
DEFAULT_TIME = "02:00"
DEFAULT_KEEP = 7
# How long after its window a schedule's snapshot may still be missing
# before the panel marks the server: the freshness check's default
# (snapmanager_nova/conf/freshness.py).
GRACE = datetime.timedelta(hours=1)


def spec_from_fields(data):
    """The spec text of the form's cleaned data."""
    family = data["family"]
    time = data.get("time") or DEFAULT_TIME
    if family == "daily":
        return f"daily@{time}"
    if family == "weekly":
        return f"weekly@{data['weekday']}@{time}"
    if family == "monthly":
        return f"monthly@{data['day']}@{time}"
    if family == "every":
        return f"every@{data['hours']}h@{time}"
    return data["spec"].strip()


def schedule_from_fields(data):
    """One schedule, as the API takes it, from the form's cleaned data."""
    schedule = {
        "spec": spec_from_fields(data),
        "timezone": data["timezone"],
    }
    if data.get("keep"):
        schedule["retention"] = {"keep_count": data["keep"]}
    return schedule


def fields_from_schedule(schedule):
    """The form's initial values for a schedule the API gave.

    A canonical spec of a family the form knows fills that family's
    fields; any other (NetApp style, cron) is shown in the spec field.
    """
    spec = schedule["spec"]
    parts = spec.split("@")
    fields = {
        "family": "spec",
        "spec": spec,
        "timezone": schedule.get("timezone") or "UTC",
        "keep": (schedule.get("retention") or {}).get("keep_count"),
    }
    family = parts[0]
    if family == "daily" and len(parts) == 2:
        fields.update(family="daily", time=parts[1])
    elif family == "weekly" and len(parts) == 3:
        fields.update(family="weekly", weekday=parts[1], time=parts[2])
    elif family == "monthly" and len(parts) == 3:
        fields.update(family="monthly", day=int(parts[1]), time=parts[2])
    elif family == "every" and len(parts) in (2, 3):
        hours = int(parts[1].removesuffix("h"))
        if hours in EVERY_HOURS:
            time = parts[2] if len(parts) == 3 else "00:00"
            fields.update(family="every", hours=hours, time=time)
    return fields


def effective(policy, default_policy):
    """The schedules that take a server's snapshots: its own, or, when it
    has snapshots on but no enabled schedule of its own, its project's
    default ones; none when snapshots are off."""
    if policy is None:
        return []
    if policy["uses_project_default"]:
        return default_policy["schedules"] if default_policy else []
    return policy["schedules"]


def _parse_time(text):
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def next_run(schedules):
    """The earliest next run of the enabled schedules (aware), or None."""
    runs = [
        _parse_time(s.get("next_run_at"))
        for s in schedules
        if s.get("enabled", True) and s.get("next_run_at")
    ]
    return min(runs) if runs else None


def newest_good(snapshots):
    """The newest ``available`` snapshot of a list, or None."""
    good = [s for s in snapshots if s["status"] == "available"]
    return max(good, key=lambda s: s["window_start"], default=None)


def late_schedules(schedules, snapshots, now, since=None):
    """The enabled schedules whose newest available snapshot is older
    than the schedule allows at ``now``.

    :param schedules: the policy's schedules, as the API gives them.
    :param snapshots: the server's snapshots (any status).
    :param since: when the server's policy began (its oldest schedule's
        ``created_at`` is used when not given).
    """
    late = []
    for schedule in schedules:
        if not schedule.get("enabled", True):
            continue
        try:
            spec = schedule_engine.parse_spec(
                schedule["spec"], schedule.get("timezone") or "UTC"
            )
        except schedule_engine.SpecError:
            continue
        taken = [
            _parse_time(s["window_start"])
            for s in snapshots
            if s["status"] == "available"
            and s.get("schedule_id") == schedule["id"]
        ]
        lateness = schedule_engine.lateness(
            spec,
            now,
            GRACE,
            max(taken, default=None),
            since=since or _parse_time(schedule.get("created_at")),
            last_run=_parse_time(schedule.get("last_run_at")),
            next_run=_parse_time(schedule.get("next_run_at")),
        )
        if lateness is not None:
            late.append(schedule)
    return late
