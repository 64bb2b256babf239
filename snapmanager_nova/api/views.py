"""How database rows look in API responses.

Names are the API's: a Nova instance is a ``server`` here, as it is in
Nova's API. Storage details (paths, pools, image names) stay internal; a
snapshot shows which disks it covers and how large they were.
"""

import datetime

from snapmanager_nova.db import models


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
        # From Snapmanager's inventory of Nova's servers (None until it
        # has seen the server), as Nova's own lists name servers.
        "server_name": instance.name,
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


# What a tenant is told of a failure whose writer left no summary for
# tenants (models.Snapshot.error_summary): what happened, not why. The
# why (an agent's exception, a library's output, host names, paths) is
# for operators: in the logs, and in ``error`` for whoever
# ``snapmanager:error_detail:show`` allows.
_SNAPSHOT_NOT_TAKEN = "The snapshot could not be taken."
_SNAPSHOT_NOT_DELETED = "The snapshot could not be deleted."
_SNAPSHOT_RETRYING = "An attempt to take the snapshot failed; it is retried."
_OPERATION_FAILED = {
    "snapshot": _SNAPSHOT_NOT_TAKEN,
    "delete": _SNAPSHOT_NOT_DELETED,
    "restore": "The restore failed.",
}
_DETAIL_ELSEWHERE = " The details are logged for the operators."


def _snapshot_error(row, detail):
    if row.error is None or detail:
        return row.error
    if row.error_summary:
        return row.error_summary
    if row.status == models.SNAPSHOT_CREATING:
        return _SNAPSHOT_RETRYING + _DETAIL_ELSEWHERE
    # Only a snapshot that was taken has disks recorded: one that failed
    # with disks failed to be deleted.
    failed = _SNAPSHOT_NOT_DELETED if row.disks else _SNAPSHOT_NOT_TAKEN
    return failed + _DETAIL_ELSEWHERE


def _operation_error(row, detail):
    if row.error is None or detail:
        return row.error
    if row.error_summary:
        return row.error_summary
    failed = _OPERATION_FAILED.get(row.type, f"The {row.type} failed.")
    return failed + _DETAIL_ELSEWHERE


# Why a snapshot is shown ``unavailable`` (microversion 1.4), for
# tenants: no host names (administrators see ``host``).
UNAVAILABLE_REASON = (
    "The compute host storing this snapshot is no longer in service: it "
    "can be neither restored nor deleted until the host is back. It has "
    "not been deleted."
)


def snapshot(
    row,
    server_name=None,
    error_detail=False,
    holder_gone=False,
    version=None,
):
    """``server_name``: the inventory's name of the snapshot's server,
    where the handler looked it up (lists and show). ``error_detail``:
    show ``error`` in full (authz.sees_error_detail), else as tenants
    see it; from 1.4 it also shows ``host``, where a file-backed
    snapshot is stored. ``holder_gone``: that host is out of service for
    good, which 1.4 shows as status ``unavailable`` with the reason.
    ``version``: the request's microversion (None: 1.0)."""
    view = _snapshot(row, server_name, error_detail)
    if version is None or version < (1, 4):
        return view
    unavailable = holder_gone and row.status == models.SNAPSHOT_AVAILABLE
    if unavailable:
        view["status"] = models.SNAPSHOT_UNAVAILABLE
    view["unavailable_reason"] = UNAVAILABLE_REASON if unavailable else None
    if error_detail:
        view["host"] = row.host
    return view


def _snapshot(row, server_name, error_detail):
    return {
        "id": row.id,
        "server_id": row.instance_uuid,
        "server_name": server_name,
        "project_id": row.project_id,
        "schedule_id": row.schedule_id,
        "status": row.status,
        "window_start": timestamp(row.window_start),
        "backend": row.backend,
        "disks": [_disk(disk) for disk in row.disks or []],
        "size_bytes": row.size_bytes,
        "quiesced": row.quiesced,
        "error": _snapshot_error(row, error_detail),
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
        "completed_at": timestamp(row.completed_at),
        "expires_at": timestamp(row.expires_at),
        "deleted_at": timestamp(row.deleted_at),
    }


def operation(row, error_detail=False):
    """``error_detail`` as for :func:`snapshot`."""
    return {
        "id": row.id,
        "type": row.type,
        "server_id": row.instance_uuid,
        "snapshot_id": row.snapshot_id,
        "project_id": row.project_id,
        "state": row.state,
        "progress": row.progress,
        "step": row.step,
        "error": _operation_error(row, error_detail),
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
        "finished_at": timestamp(row.finished_at),
    }


def stale_server(item):
    """A :class:`freshness.StaleServer`: the server and its late
    schedules."""
    return {
        "server_id": item.server_id,
        "project_id": item.project_id,
        "schedules": [
            {
                "id": late.schedule.id,
                "spec": late.schedule.spec,
                "timezone": late.schedule.timezone,
                "newest_snapshot_at": timestamp(late.newest),
                "expected_window": timestamp(late.lateness.window),
                "expected_by": timestamp(late.lateness.expected_by),
                "late_by": int(late.lateness.late_by.total_seconds()),
            }
            for late in item.schedules
        ],
    }


_RELEASE_PENDING = (
    "The compute agent has not released the server's snapshots yet; it "
    "is tried again."
)


def release_pending(row, detail):
    """A server Nova deleted whose snapshots are still to be released
    (doc/source/conductor.rst); the reason in full for ``detail``
    (authz.sees_error_detail): it names hosts."""
    return {
        "server_id": row.uuid,
        "server_name": row.name,
        "project_id": row.project_id,
        "deleted_at": timestamp(row.deleted_at),
        "attempts": row.release_attempts,
        "next_attempt_at": timestamp(row.release_next_at),
        "reason": (row.release_error if detail else _RELEASE_PENDING),
    }
