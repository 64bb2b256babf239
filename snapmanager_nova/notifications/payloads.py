"""Versioned notification payloads in Nova's form, built without Nova.

Nova sends each payload as the primitive of a versioned object::

    {"nova_object.name": "...Payload",
     "nova_object.namespace": "nova",
     "nova_object.version": "1.0",
     "nova_object.data": {...}}

Consumers of Nova's notifications (Ceilometer, Watcher, an operator's
own tools) read that envelope, so Snapmanager's payloads use it too,
with the namespace ``snapmanager``. Importing Nova for its object
machinery would pull Nova into every Snapmanager service, so the
envelope is built here from a declared list of fields per payload.

Versions follow Nova's rule: a new field is a minor version (1.0 ->
1.1), a field removed or changed in meaning a major one. The unit tests
pin each payload's fields to its version, so a field cannot be added
without the version moving with it.
"""

import dataclasses
import datetime

from snapmanager_nova.db import models

NAMESPACE = "snapmanager"
EVENT_PREFIX = "snapmanager"


@dataclasses.dataclass(frozen=True)
class PayloadType:
    """One versioned payload: its name, version and exact fields."""

    name: str
    version: str
    fields: tuple

    def build(self, **data):
        """The envelope around ``data``, which must give every field."""
        given, declared = set(data), set(self.fields)
        if given != declared:
            raise ValueError(
                f"{self.name} {self.version}: fields "
                f"{sorted(given - declared)} are not declared, "
                f"{sorted(declared - given)} are missing"
            )
        return {
            "nova_object.name": self.name,
            "nova_object.namespace": NAMESPACE,
            "nova_object.version": self.version,
            "nova_object.data": {name: data[name] for name in self.fields},
        }


SNAPSHOT = PayloadType(
    "SnapshotActionPayload",
    "1.0",
    (
        "snapshot_id",
        "operation_id",
        "schedule_id",
        "project_id",
        "server_id",
        "status",
        "snapshot_index",
        "backend",
        "window_start",
        "created_at",
        "finished_at",
        "duration_seconds",
        "size_bytes",
        "freed_bytes",
        "quiesced",
        "error",
    ),
)
RESTORE = PayloadType(
    "SnapshotRestorePayload",
    "1.0",
    (
        "operation_id",
        "snapshot_id",
        "schedule_id",
        "project_id",
        "server_id",
        "state",
        "step",
        "progress",
        "conductor_host",
        "created_at",
        "finished_at",
        "duration_seconds",
        "error",
    ),
)
SCHEDULE = PayloadType(
    "SnapshotSchedulePayload",
    "1.0",
    ("schedule_id", "spec", "timezone", "retention", "enabled", "next_run_at"),
)
POLICY = PayloadType(
    "SnapshotPolicyPayload",
    "1.0",
    (
        "server_id",
        "project_id",
        "snapshot_enabled",
        "keep_after_delete",
        "schedules",
    ),
)
DEFAULT_POLICY = PayloadType(
    "DefaultSnapshotPolicyPayload", "1.0", ("project_id", "schedules")
)
PAYLOADS = (SNAPSHOT, RESTORE, SCHEDULE, POLICY, DEFAULT_POLICY)

# A snapshot's status change -> (action, phase) of its event. Any other
# change (none is allowed by models.SNAPSHOT_TRANSITIONS) sends nothing.
# ``None`` is a row recorded with that status.
_SNAPSHOT_EVENTS = {
    (None, models.SNAPSHOT_CREATING): ("create", "start"),
    (models.SNAPSHOT_CREATING, models.SNAPSHOT_AVAILABLE): ("create", "end"),
    (models.SNAPSHOT_CREATING, models.SNAPSHOT_ERROR): ("create", "error"),
    (None, models.SNAPSHOT_DELETING): ("delete", "start"),
    (models.SNAPSHOT_AVAILABLE, models.SNAPSHOT_DELETING): ("delete", "start"),
    (models.SNAPSHOT_ERROR, models.SNAPSHOT_DELETING): ("delete", "start"),
    (models.SNAPSHOT_DELETING, models.SNAPSHOT_DELETED): ("delete", "end"),
    (models.SNAPSHOT_DELETING, models.SNAPSHOT_ERROR): ("delete", "error"),
}
RESTORE_PHASES = ("start", "end", "error")
POLICY_ACTIONS = ("update", "delete")


def snapshot_event(previous, status):
    """The event type of a snapshot moving from ``previous`` (None: a new
    row) to ``status``, or None if that change is not announced."""
    event = _SNAPSHOT_EVENTS.get((previous, status))
    if event is None:
        return None
    action, phase = event
    return f"{EVENT_PREFIX}.snapshot.{action}.{phase}"


def restore_event(phase):
    if phase not in RESTORE_PHASES:
        raise ValueError(f"no restore phase {phase!r}")
    return f"{EVENT_PREFIX}.snapshot.restore.{phase}"


def policy_event(action, default=False):
    """``snapmanager.snapshot_policy.<action>``, or for a project's
    default policy ``snapmanager.default_snapshot_policy.<action>``."""
    if action not in POLICY_ACTIONS:
        raise ValueError(f"no policy action {action!r}")
    kind = "default_snapshot_policy" if default else "snapshot_policy"
    return f"{EVENT_PREFIX}.{kind}.{action}"


def is_error(event_type):
    return event_type.endswith(".error")


def timestamp(value):
    """An aware (or naive UTC) datetime as Nova's payloads write times:
    ISO 8601 in UTC, whole seconds, ``Z``. None stays None."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_between(start, end):
    """``end - start`` in seconds (milliseconds kept), or None."""
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def _snapshot_finished_at(snapshot):
    if snapshot.status in (models.SNAPSHOT_AVAILABLE, models.SNAPSHOT_ERROR):
        # A deletion that failed keeps the creation's completed_at; the
        # failure is the row's last change.
        if snapshot.completed_at is not None and (
            snapshot.updated_at is None
            or snapshot.updated_at <= snapshot.completed_at
        ):
            return snapshot.completed_at
        return snapshot.updated_at
    if snapshot.status == models.SNAPSHOT_DELETED:
        return snapshot.deleted_at
    return None


def snapshot(row, operation_id=None, freed_bytes=None):
    """The payload of a snapshot event from its row (as changed).

    ``duration_seconds`` is the time the snapshot took to make, from its
    record to its result: set once it is available or failed.
    """
    return SNAPSHOT.build(
        snapshot_id=row.id,
        operation_id=operation_id,
        schedule_id=row.schedule_id,
        project_id=row.project_id,
        server_id=row.instance_uuid,
        status=row.status,
        snapshot_index=row.snapshot_index,
        backend=row.backend,
        window_start=timestamp(row.window_start),
        created_at=timestamp(row.created_at),
        finished_at=timestamp(_snapshot_finished_at(row)),
        duration_seconds=seconds_between(row.created_at, row.completed_at),
        size_bytes=row.size_bytes,
        freed_bytes=freed_bytes,
        quiesced=bool(row.quiesced),
        error=row.error if row.status == models.SNAPSHOT_ERROR else None,
    )


def restore(operation, snapshot=None):
    """The payload of a restore event from its operation (as changed)
    and, for its schedule, the snapshot restored."""
    return RESTORE.build(
        operation_id=operation.id,
        snapshot_id=operation.snapshot_id,
        schedule_id=snapshot.schedule_id if snapshot is not None else None,
        project_id=operation.project_id,
        server_id=operation.instance_uuid,
        state=operation.state,
        step=operation.step,
        progress=operation.progress,
        conductor_host=operation.conductor_host,
        created_at=timestamp(operation.created_at),
        finished_at=timestamp(operation.finished_at),
        duration_seconds=seconds_between(
            operation.created_at, operation.finished_at
        ),
        error=operation.error
        if operation.state == models.OPERATION_FAILED
        else None,
    )


def schedule(row):
    return SCHEDULE.build(
        schedule_id=row.id,
        spec=row.spec,
        timezone=row.timezone,
        retention=dict(row.retention or {}),
        enabled=bool(row.enabled),
        next_run_at=timestamp(row.next_run_at),
    )


def policy(server_id, project_id, instance=None, schedules=()):
    """A server's policy as it is now; ``instance`` None: it has none."""
    enabled = bool(instance is not None and instance.snapshot_enabled)
    return POLICY.build(
        server_id=server_id,
        project_id=project_id,
        snapshot_enabled=enabled,
        keep_after_delete=bool(
            instance is not None and instance.keep_after_delete
        ),
        schedules=[schedule(row) for row in schedules],
    )


def default_policy(project_id, schedules=()):
    return DEFAULT_POLICY.build(
        project_id=project_id,
        schedules=[schedule(row) for row in schedules],
    )
