"""The UTC convention of the models and the DB API's basics."""

import datetime

import pytest
import sqlalchemy as sa

from snapmanager_nova import exception
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models

UTC = datetime.UTC
PLUS_5 = datetime.timezone(datetime.timedelta(hours=5))


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (
            datetime.datetime(2025, 1, 1, 12, tzinfo=PLUS_5),
            datetime.datetime(2025, 1, 1, 7),
        ),
        # Naive means UTC, as oslo's timeutils.utcnow() returns it.
        (datetime.datetime(2025, 1, 1, 7), datetime.datetime(2025, 1, 1, 7)),
        (None, None),
    ],
)
def test_datetimes_are_stored_naive_utc(given, stored):
    utc = models.UTCDateTime()
    assert utc.process_bind_param(given, None) == stored


def test_datetimes_are_read_aware_utc():
    utc = models.UTCDateTime()
    got = utc.process_result_value(datetime.datetime(2025, 1, 1, 7), None)
    assert got == datetime.datetime(2025, 1, 1, 7, tzinfo=UTC)
    assert got.tzinfo is UTC


def test_mysql_keeps_microseconds():
    ddl = sa.schema.CreateTable(models.Snapshot.__table__).compile(
        dialect=sa.dialects.mysql.dialect()
    )
    assert "window_start DATETIME(6) NOT NULL" in str(ddl)


def test_constraints_are_named():
    for table in models.Base.metadata.sorted_tables:
        for constraint in table.constraints:
            assert constraint.name, (table.name, constraint)
        for index in table.indexes:
            assert index.name.startswith(f"ix_{table.name}_")
    snapshots = models.Base.metadata.tables["snapshots"]
    assert "uq_snapshots_schedule_id_instance_uuid_window_start" in {
        c.name for c in snapshots.constraints
    }


def test_every_status_has_its_transitions():
    assert set(models.SNAPSHOT_TRANSITIONS) == set(models.SNAPSHOT_STATUSES)
    assert set(models.OPERATION_TRANSITIONS) == set(models.OPERATION_STATES)


def test_admin_context_carries_a_session(ctx):
    with db_api.context_manager.reader.using(ctx) as session:
        assert ctx.session is session


def test_exception_messages():
    exc = exception.InvalidStatusTransition(
        resource="Snapshot", resource_id="s1", from_status="a", to_status="b"
    )
    assert str(exc) == "Snapshot s1 cannot go from a to b."
    assert exc.code == 409
    assert str(exception.SnapshotNotFound("custom")) == "custom"
    # A wrong keyword still gives an exception, with the bare template.
    assert "%(" in str(exception.SnapshotNotFound(wrong="x"))
