"""The snapshot-holders revision on the snapshots of an older release,
on SQLite and MariaDB: file-backed ones are held by their server's
recorded host, where they were taken; RBD ones by nobody (the
cluster)."""

import datetime

import pytest
import sqlalchemy as sa

from snapmanager_nova.db import migration
from tests.unit.db import fixtures

pytestmark = pytest.mark.functional

REVISION = "a1f3c5e7b9d2"
WHEN = datetime.datetime(2026, 12, 1, 12, 0)


def test_file_snapshots_are_held_by_their_servers_host(database_url):
    with fixtures.database(database_url) as engine:
        migration.upgrade("e4a7c2d9f1b6")
        meta = sa.MetaData()
        meta.reflect(engine)
        instances, snapshots = (
            meta.tables["instances"],
            meta.tables["snapshots"],
        )
        with engine.begin() as conn:
            for uuid, host in (("vm-1", "compute-1"), ("vm-2", "compute-2")):
                conn.execute(
                    instances.insert().values(
                        uuid=uuid,
                        project_id="p",
                        host=host,
                        snapshot_enabled=True,
                        daily=False,
                        keep_after_delete=False,
                        committed=True,
                        snapshot_index=0,
                        root_index=0,
                        created_at=WHEN,
                    )
                )
            for snap_id, uuid, backend in (
                ("file-1", "vm-1", "file"),
                ("rbd-2", "vm-2", "rbd"),
                ("file-2", "vm-2", "file"),
            ):
                conn.execute(
                    snapshots.insert().values(
                        id=snap_id,
                        instance_uuid=uuid,
                        project_id="p",
                        window_start=WHEN,
                        status="available",
                        backend=backend,
                        disks="[]",
                        quiesced=False,
                        attempts=0,
                        created_at=WHEN,
                    )
                )
        migration.upgrade(REVISION)
        meta = sa.MetaData()
        meta.reflect(engine)
        snapshots = meta.tables["snapshots"]
        with engine.connect() as conn:
            held = dict(
                conn.execute(sa.select(snapshots.c.id, snapshots.c.host)).all()
            )
    assert held == {
        "file-1": "compute-1",
        "rbd-2": None,
        "file-2": "compute-2",
    }
