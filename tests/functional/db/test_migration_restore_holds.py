"""The restore-holds revision on the restores of an older release, on
SQLite and MariaDB: each server's oldest unfinished restore gets the
hold and a step clock, a second one (the race it closes) fails."""

import datetime

import pytest
import sqlalchemy as sa

from snapmanager_nova.db import migration
from tests.unit.db import fixtures

pytestmark = pytest.mark.functional

REVISION = "b7d3e91c5a20"


def at(minute):
    return datetime.datetime(2026, 12, 1, 12, minute)


def test_unfinished_restores_get_their_hold(database_url):
    with fixtures.database(database_url) as engine:
        migration.upgrade("8c41e2f7a9d3")
        meta = sa.MetaData()
        meta.reflect(engine)
        instances, operations = (
            meta.tables["instances"],
            meta.tables["operations"],
        )
        rows = [
            # id, instance, type, state, created, updated
            ("first", "vm-1", "restore", "running", at(0), at(5)),
            ("second", "vm-1", "restore", "pending", at(1), None),
            ("done", "vm-1", "restore", "succeeded", at(2), at(3)),
            ("other", "vm-2", "restore", "pending", at(4), None),
            ("delete", "vm-2", "delete", "pending", at(4), None),
        ]
        with engine.begin() as conn:
            for uuid in ("vm-1", "vm-2"):
                conn.execute(
                    instances.insert().values(
                        uuid=uuid,
                        project_id="p",
                        snapshot_enabled=False,
                        daily=False,
                        keep_after_delete=False,
                        committed=True,
                        snapshot_index=0,
                        root_index=0,
                        created_at=at(0),
                    )
                )
            for op_id, uuid, kind, state, created, updated in rows:
                conn.execute(
                    operations.insert().values(
                        id=op_id,
                        type=kind,
                        instance_uuid=uuid,
                        project_id="p",
                        state=state,
                        progress=0,
                        created_at=created,
                        updated_at=updated,
                    )
                )
        migration.upgrade(REVISION)
        meta = sa.MetaData()
        meta.reflect(engine)
        operations = meta.tables["operations"]
        with engine.connect() as conn:
            after = {
                row.id: row
                for row in conn.execute(sa.select(operations)).all()
            }
    assert {
        op_id: (row.state, row.held_instance_uuid)
        for op_id, row in after.items()
    } == {
        "first": ("running", "vm-1"),
        "second": ("failed", None),
        "done": ("succeeded", None),
        "other": ("pending", "vm-2"),
        "delete": ("pending", None),
    }
    assert after["first"].step_started_at == at(5)
    assert after["other"].step_started_at == at(4)
    assert "requested first" in after["second"].error
    assert after["second"].finished_at == at(1)
