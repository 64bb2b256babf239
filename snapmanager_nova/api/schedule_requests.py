"""Schedules as a PUT of a policy asks for them, and applying them.

Shared by a server's policy and a project's default: both are a list of
schedules that replaces the owner's current list.

Validation runs in full before anything is written, so a request refused
for its third schedule leaves the database as it was. Applying keeps the
rows of schedules that stay (same canonical spec and timezone): their ids,
their ``last_run_at`` and their snapshots' link to them survive a PUT
that only changes retention, and re-sending the same policy does not
reset the clock.
"""

import dataclasses
import datetime

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova import schedule as schedule_engine
from snapmanager_nova.db import api as db_api
from snapmanager_nova.schedule import limits as schedule_limits

CONF = sm_conf.CONF


@dataclasses.dataclass(frozen=True)
class RequestedSchedule:
    spec: schedule_engine.Spec
    retention: dict
    enabled: bool

    @property
    def key(self):
        return (self.spec.text, self.spec.timezone)


def _spec(entry, where):
    try:
        return schedule_engine.parse_spec(
            entry["spec"], entry.get("timezone", "UTC")
        )
    except schedule_engine.SpecError as exc:
        if exc.field == "timezone":
            raise exception.InvalidField(
                field=f"{where}.timezone", reason=exc.message
            ) from None
        # The engine names the part of the spec that is wrong (``time``,
        # ``day_list``, ``cron``...); keep that inside the message.
        reason = exc.message if exc.field == "spec" else str(exc)
        raise exception.InvalidField(
            field=f"{where}.spec", reason=reason
        ) from None


def _retention(entry, spec, where):
    data = dict(entry.get("retention") or {})
    if spec.keep is not None:
        # A NetApp style spec carries its own count; a retention that
        # says otherwise is a contradiction, not a preference.
        given = data.get("keep_count")
        if given is None and spec.keep >= 1:
            data["keep_count"] = spec.keep
        elif given is not None and given != spec.keep:
            raise exception.InvalidField(
                field=f"{where}.retention.keep_count",
                reason=f"{given} disagrees with the count {spec.keep} of "
                f"spec {spec.text!r}",
            )
    try:
        policy = schedule_engine.RetentionPolicy.from_dict(data)
    except schedule_engine.RetentionError as exc:
        field = f"{where}.retention"
        if exc.field != "retention":
            field = f"{field}.{exc.field}"
        raise exception.InvalidField(field=field, reason=exc.message) from None
    return policy.to_dict()


def _check_limits(spec, retention, where, now):
    """Refuse what [quota] does not allow: a spec that runs more often
    than ``min_schedule_interval``, a count above ``max_keep_count``."""
    most = CONF.quota.max_keep_count
    if spec.keep is not None and spec.keep > most:
        raise exception.InvalidField(
            field=f"{where}.spec",
            reason=f"the count {spec.keep} of {spec.text!r} is more than "
            f"the {most} snapshots a schedule may keep",
        )
    for name, value in retention.items():
        if name != "max_age" and value > most:
            raise exception.InvalidField(
                field=f"{where}.retention.{name}",
                reason=f"{value} is more than the {most} snapshots a "
                "schedule may keep",
            )
    floor = datetime.timedelta(seconds=CONF.quota.min_schedule_interval)
    closest = schedule_limits.shorter_gap(spec, floor, now)
    if closest is not None:
        first, second = closest
        raise exception.InvalidField(
            field=f"{where}.spec",
            reason=f"{spec.text!r} runs at {first:%Y-%m-%dT%H:%M:%SZ} and "
            f"again at {second:%Y-%m-%dT%H:%M:%SZ}; snapshots may be "
            f"scheduled at most every {int(floor.total_seconds())} seconds",
        )


def parse(entries, now=None):
    """Validate the ``schedules`` of a request body (already schema-valid).

    :param now: aware; the spec's runs after it are checked against
        ``[quota] min_schedule_interval``.
    :returns: a list of :class:`RequestedSchedule`.
    :raises InvalidField: naming ``schedules[i]`` and the bad field.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    requested = []
    seen = {}
    for index, entry in enumerate(entries):
        where = f"schedules[{index}]"
        spec = _spec(entry, where)
        retention = _retention(entry, spec, where)
        _check_limits(spec, retention, where, now)
        wanted = RequestedSchedule(
            spec=spec,
            retention=retention,
            enabled=entry.get("enabled", True),
        )
        if wanted.key in seen:
            raise exception.InvalidField(
                field=where,
                reason=f"spec {spec.text!r} in {spec.timezone} is already "
                f"schedules[{seen[wanted.key]}]",
            )
        seen[wanted.key] = index
        requested.append(wanted)
    return requested


def _next_run(wanted, now):
    # A disabled schedule has no next run: the clock only looks at enabled
    # ones, and a stale time would fire at once when it is re-enabled.
    return wanted.spec.next_run(now) if wanted.enabled else None


def replace(context, existing, requested, owner, now):
    """Make the owner's schedules ``requested``, inside the caller's
    transaction; return the resulting rows in request order.

    :param existing: the owner's current schedule rows.
    :param owner: the values that tie a new row to its owner:
        ``{"instance_uuid": ...}`` or ``{"project_id": ...,
        "is_project_default": True}``.
    """
    current = {(row.spec, row.timezone): row for row in existing}
    rows = []
    for wanted in requested:
        row = current.pop(wanted.key, None)
        if row is None:
            rows.append(
                db_api.schedule_create(
                    context,
                    dict(
                        owner,
                        family=wanted.spec.family,
                        spec=wanted.spec.text,
                        timezone=wanted.spec.timezone,
                        retention=wanted.retention,
                        enabled=wanted.enabled,
                        next_run_at=_next_run(wanted, now),
                    ),
                )
            )
            continue
        values = {"retention": wanted.retention, "enabled": wanted.enabled}
        if not wanted.enabled:
            values["next_run_at"] = None
        elif not row.enabled or row.next_run_at is None:
            values["next_run_at"] = _next_run(wanted, now)
        rows.append(db_api.schedule_update(context, row.id, values))
    for row in current.values():
        db_api.schedule_delete(context, row.id)
    return rows


def delete_all(context, existing):
    for row in existing:
        db_api.schedule_delete(context, row.id)
