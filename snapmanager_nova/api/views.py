"""How database rows look in API responses.

Names are the API's: a Nova instance is a ``server`` here, as it is in
Nova's API. Storage details (paths, pools, image names) stay internal; a
snapshot shows which disks it covers and how large they were.
"""

import datetime


def timestamp(value):
    """An aware datetime as ISO 8601 in UTC (``2026-03-29T01:00:00Z``)."""
    if value is None:
        return None
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule(row):
    return {
        "id": row.id,
        "spec": row.spec,
        "family": row.family,
        "timezone": row.timezone,
        "retention": dict(row.retention or {}),
        "enabled": row.enabled,
        "next_run_at": timestamp(row.next_run_at),
        "last_run_at": timestamp(row.last_run_at),
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
    }


def server_policy(instance, schedules):
    enabled_own = [row for row in schedules if row.enabled]
    return {
        "server_id": instance.uuid,
        "project_id": instance.project_id,
        "keep_after_delete": instance.keep_after_delete,
        # Without an enabled schedule of its own, the server is
        # snapshotted by its project's default schedules, if any.
        "uses_project_default": not enabled_own,
        "schedules": [schedule(row) for row in schedules],
    }


def project_default(project_id, schedules):
    return {
        "project_id": project_id,
        "schedules": [schedule(row) for row in schedules],
    }


def _disk(disk):
    return {"target": disk.get("target"), "size": disk.get("size")}


def snapshot(row):
    return {
        "id": row.id,
        "server_id": row.instance_uuid,
        "project_id": row.project_id,
        "schedule_id": row.schedule_id,
        "status": row.status,
        "window_start": timestamp(row.window_start),
        "backend": row.backend,
        "disks": [_disk(disk) for disk in row.disks or []],
        "size_bytes": row.size_bytes,
        "quiesced": row.quiesced,
        "error": row.error,
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
        "completed_at": timestamp(row.completed_at),
        "expires_at": timestamp(row.expires_at),
        "deleted_at": timestamp(row.deleted_at),
    }


def operation(row):
    return {
        "id": row.id,
        "type": row.type,
        "server_id": row.instance_uuid,
        "snapshot_id": row.snapshot_id,
        "project_id": row.project_id,
        "state": row.state,
        "progress": row.progress,
        "step": row.step,
        "error": row.error,
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
        "finished_at": timestamp(row.finished_at),
    }
