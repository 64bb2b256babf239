"""Release after delete: what is still owed for a server Nova deleted.

Revision ID: 8c41e2f7a9d3
Revises: 3f0c2a9d7b41
Create Date: 2026-12-06 15:20:00

- instances: ``release_state`` (``pending`` while the storage of a
  server Nova deleted has not been released yet, ``done``, or
  ``abandoned`` by an operator), ``release_attempts``,
  ``release_next_at`` (when the next try is due) and ``release_error``
  (why the last try failed), so that a release the agent could not do at
  once is tried again with backoff and shown to operators.
"""

import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "8c41e2f7a9d3"
down_revision = "3f0c2a9d7b41"
branch_labels = None
depends_on = None


def _datetime():
    return sa.DateTime().with_variant(
        mysql.DATETIME(fsp=6), "mysql", "mariadb"
    )


def upgrade():
    with op.batch_alter_table("instances") as batch:
        batch.add_column(
            sa.Column("release_state", sa.String(16), nullable=True)
        )
        batch.add_column(
            sa.Column(
                "release_attempts",
                sa.Integer(),
                nullable=False,
                server_default="0",
            )
        )
        batch.add_column(
            sa.Column("release_next_at", _datetime(), nullable=True)
        )
        batch.add_column(sa.Column("release_error", sa.Text(), nullable=True))
        batch.create_index(
            "ix_instances_release_state_release_next_at",
            ["release_state", "release_next_at"],
        )

    # Rows Nova reported deleted whose delete was never recorded (an
    # agent that could not release them stopped the old tidy-up before
    # it got that far): their schedules kept firing. Record the delete
    # now and owe the release, as the conductor does today.
    instances = sa.table(
        "instances",
        sa.column("uuid", sa.String),
        sa.column("nova_status", sa.String),
        sa.column("deleted_at", _datetime()),
        sa.column("nova_synced_at", _datetime()),
        sa.column("release_state", sa.String),
        sa.column("release_next_at", _datetime()),
    )
    schedules = sa.table(
        "schedules",
        sa.column("instance_uuid", sa.String),
        sa.column("enabled", sa.Boolean),
        sa.column("next_run_at", _datetime()),
    )
    stuck = sa.and_(
        instances.c.nova_status == "DELETED", instances.c.deleted_at.is_(None)
    )
    op.execute(
        schedules.update()
        .where(
            schedules.c.instance_uuid.in_(
                sa.select(instances.c.uuid).where(stuck)
            )
        )
        .values(enabled=False, next_run_at=None)
    )
    # Naive UTC, as the models store it.
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    op.execute(
        instances.update()
        .where(stuck)
        .values(
            deleted_at=sa.func.coalesce(instances.c.nova_synced_at, now),
            release_state="pending",
            release_next_at=now,
        )
    )
