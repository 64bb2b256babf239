"""Rows as the payload builders read them (any object with the columns)."""

import datetime
import types

from snapmanager_nova.db import models

UTC = datetime.UTC


def at(*args, tzinfo=UTC):
    return datetime.datetime(*args, tzinfo=tzinfo)


def snapshot_row(**values):
    row = dict(
        id="snap-1",
        schedule_id="sched-1",
        project_id="proj-1",
        instance_uuid="server-1",
        status=models.SNAPSHOT_CREATING,
        snapshot_index=4,
        backend="rbd",
        window_start=at(2026, 11, 22, 2, 0),
        created_at=at(2026, 11, 22, 2, 0, 3, 250000),
        updated_at=None,
        completed_at=None,
        deleted_at=None,
        size_bytes=None,
        quiesced=False,
        error=None,
    )
    row.update(values)
    return types.SimpleNamespace(**row)


def operation_row(**values):
    row = dict(
        id="op-1",
        snapshot_id="snap-1",
        project_id="proj-1",
        instance_uuid="server-1",
        state=models.OPERATION_RUNNING,
        step="locking server",
        progress=5,
        conductor_host="conductor-1",
        created_at=at(2026, 11, 22, 9, 0),
        finished_at=None,
        error=None,
    )
    row.update(values)
    return types.SimpleNamespace(**row)


def schedule_row(**values):
    row = dict(
        id="sched-1",
        spec="daily@02:00",
        timezone="Europe/Berlin",
        retention={"keep_count": 7},
        enabled=True,
        next_run_at=at(2026, 11, 23, 1, 0),
    )
    row.update(values)
    return types.SimpleNamespace(**row)
