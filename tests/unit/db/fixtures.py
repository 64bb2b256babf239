"""Point the DB API at a test database."""

import contextlib
import datetime
import uuid

from oslo_db.sqlalchemy import enginefacade

from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models


@contextlib.contextmanager
def database(url, create_schema=False):
    """Run the DB API against ``url`` for the duration; yield its engine.

    The engine is built by oslo.db exactly as in a service (foreign keys
    on for SQLite, TRADITIONAL sql_mode on MariaDB, oslo.db's exception
    translation), only the URL differs.
    """
    manager = enginefacade.transaction_context()
    manager.configure(connection=url, sqlite_fk=True)
    reset = db_api.context_manager.patch_factory(manager)
    try:
        engine = db_api.get_engine()
        if create_schema:
            models.Base.metadata.create_all(engine)
        yield engine
    finally:
        reset()
        manager.dispose_pool()


PROJECT = "project-a"
WINDOW = datetime.datetime(2025, 3, 30, 2, 30, tzinfo=datetime.UTC)


def make_instance(ctx, project_id=PROJECT, **values):
    return db_api.instance_create_or_update(
        ctx, str(uuid.uuid4()), dict(values, project_id=project_id)
    )


def make_schedule(ctx, instance, **values):
    values.setdefault("family", "daily")
    values.setdefault("spec", "daily@02:30")
    return db_api.schedule_create(
        ctx, dict(values, instance_uuid=instance.uuid)
    )


def make_snapshot(ctx, instance, schedule=None, **values):
    if schedule is not None:
        values.setdefault("schedule_id", schedule.id)
    return db_api.snapshot_create(
        ctx, dict(values, instance_uuid=instance.uuid)
    )
