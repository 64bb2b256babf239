"""Alembic environment of Snapmanager's own database.

``snapmanager-manage db sync`` (snapmanager_nova.db.migration) passes an
open connection in ``config.attributes["connection"]``, so migrations run
on the engine the service uses and tests can hand in theirs. Without one,
as when a developer runs the ``alembic`` command with alembic.ini, the URL
comes from ``-x url=...`` or ``sqlalchemy.url``.

``render_as_batch`` lets the same revision alter tables on SQLite (which
rebuilds them) and on MariaDB (which alters them in place).
"""

import sqlalchemy as sa
from alembic import context

from snapmanager_nova.db import models

config = context.config
target_metadata = models.Base.metadata


def _configure(**kwargs):
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        **kwargs,
    )


def _url():
    return context.get_x_argument(as_dictionary=True).get(
        "url", config.get_main_option("sqlalchemy.url")
    )


def run_migrations_offline():
    """Print the SQL instead of running it (``alembic upgrade --sql``)."""
    _configure(
        url=_url(),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    engine = sa.create_engine(_url(), poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
