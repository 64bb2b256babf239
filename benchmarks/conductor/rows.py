"""Instances and schedules written in bulk, as the clock finds them.

Rows go in with SQLAlchemy core ``executemany`` (multi-row INSERTs),
not through the DB API one at a time: 100,000 instances with their
schedules take seconds instead of many minutes. They are the rows the
DB API would write: the column defaults of the models apply.
"""

import uuid

from snapmanager_nova.db import models

# Rows per INSERT batch: well under MariaDB's max_allowed_packet.
CHUNK = 5000

# The README's example policy: a snapshot at 02:00 Berlin time, keep 7.
FAMILY = "daily"
SPEC = "daily@02:00"
TIMEZONE = "Europe/Berlin"
RETENTION = {"keep_count": 7}


def insert(engine, model, rows):
    """Insert ``rows`` (dicts) into ``model``'s table in one transaction."""
    table = model.__table__
    with engine.begin() as conn:
        for start in range(0, len(rows), CHUNK):
            conn.execute(table.insert(), rows[start : start + CHUNK])


def instance(project_id, host, nova_status, index):
    """An instance switched on for snapshots, stable in Nova."""
    return {
        "uuid": str(uuid.uuid4()),
        "project_id": project_id,
        "host": host,
        "backend": "rbd",
        "snapshot_enabled": True,
        "name": f"server-{index}",
        "nova_status": nova_status,
    }


def own_schedule(instance_row, next_run_at):
    """A schedule of the instance's own, as a tenant sets it."""
    return _schedule(
        instance_uuid=instance_row["uuid"],
        project_id=instance_row["project_id"],
        is_project_default=False,
        next_run_at=next_run_at,
    )


def project_default(project_id, next_run_at):
    """A project's default schedule, for its instances without one."""
    return _schedule(
        instance_uuid=None,
        project_id=project_id,
        is_project_default=True,
        next_run_at=next_run_at,
    )


def service(binary, host):
    """A service that has just heartbeated."""
    return {"binary": binary, "host": host, "last_seen_at": models.utcnow()}


def _schedule(**values):
    return dict(
        values,
        id=str(uuid.uuid4()),
        family=FAMILY,
        spec=SPEC,
        timezone=TIMEZONE,
        retention=RETENTION,
        enabled=True,
        source=models.SCHEDULE_SOURCE_API,
    )
