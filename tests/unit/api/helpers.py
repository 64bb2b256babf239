"""Seeding the database the way the rest of Snapmanager would."""

from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models


def policy_path(server_id):
    return f"/v1/servers/{server_id}/snapshot-policy"


def default_path(project_id):
    return f"/v1/projects/{project_id}/default-snapshot-policy"


def record_instance(ctx, server, **values):
    return db_api.instance_create_or_update(
        ctx,
        server.id,
        dict(values, project_id=server.project_id, host=server.host),
    )


def record_snapshot(ctx, server, status=models.SNAPSHOT_AVAILABLE, **values):
    """A snapshot of ``server`` in ``status``, as the conductor leaves it."""
    record_instance(ctx, server, backend="file")
    index = db_api.instance_allocate_snapshot_index(ctx, server.id)
    snapshot = db_api.snapshot_create(
        ctx,
        dict(
            values,
            instance_uuid=server.id,
            snapshot_index=index,
            backend="file",
        ),
    )
    path = {
        models.SNAPSHOT_CREATING: [],
        models.SNAPSHOT_AVAILABLE: [models.SNAPSHOT_AVAILABLE],
        models.SNAPSHOT_ERROR: [models.SNAPSHOT_ERROR],
        models.SNAPSHOT_DELETING: [
            models.SNAPSHOT_AVAILABLE,
            models.SNAPSHOT_DELETING,
        ],
        models.SNAPSHOT_DELETED: [
            models.SNAPSHOT_AVAILABLE,
            models.SNAPSHOT_DELETING,
            models.SNAPSHOT_DELETED,
        ],
    }[status]
    for step in path:
        extra = {}
        if step == models.SNAPSHOT_AVAILABLE:
            extra = {
                "disks": [
                    {"target": "vda", "path": "/store/x/1/vda", "size": 1024}
                ],
                "size_bytes": 1024,
            }
        snapshot = db_api.snapshot_update_status(
            ctx, snapshot.id, step, **extra
        )
    return snapshot
