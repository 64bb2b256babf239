"""Control plane: Nova inventory, operator policies, retries, restores.

Revision ID: 3f0c2a9d7b41
Revises: 6dcab56df021
Create Date: 2026-12-02 04:45:00

- instances: what the conductor's Nova inventory knows of each server
  (name, status, task state, lock, boot from volume, when last synced).
- schedules: ``source``, ``api`` for tenants' policies and ``operator``
  for those of ``[conductor] policy_file``.
- snapshots: ``attempts`` and ``next_attempt_at`` for retries of
  transient failures with backoff.
- operations: ``conductor_host``, the conductor orchestrating it, so a
  restarted one resumes its own and a live one's are left alone.
- sync_markers: where the incremental Nova sync got to (changes-since).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "3f0c2a9d7b41"
down_revision = "6dcab56df021"
branch_labels = None
depends_on = None

TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def _datetime():
    return sa.DateTime().with_variant(
        mysql.DATETIME(fsp=6), "mysql", "mariadb"
    )


def upgrade():
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("name", sa.String(255), nullable=True))
        batch.add_column(
            sa.Column("nova_status", sa.String(32), nullable=True)
        )
        batch.add_column(sa.Column("task_state", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column(
                "locked",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )
        batch.add_column(sa.Column("locked_reason", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column(
                "boot_from_volume",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )
        batch.add_column(
            sa.Column("nova_synced_at", _datetime(), nullable=True)
        )

    with op.batch_alter_table("schedules") as batch:
        batch.add_column(
            sa.Column(
                "source", sa.String(16), nullable=False, server_default="api"
            )
        )

    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(
            sa.Column(
                "attempts", sa.Integer(), nullable=False, server_default="0"
            )
        )
        batch.add_column(
            sa.Column("next_attempt_at", _datetime(), nullable=True)
        )

    with op.batch_alter_table("operations") as batch:
        batch.add_column(
            sa.Column("conductor_host", sa.String(255), nullable=True)
        )
    op.create_index(op.f("ix_operations_state"), "operations", ["state"])

    op.create_table(
        "sync_markers",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", _datetime(), nullable=True),
        sa.Column("updated_at", _datetime(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sync_markers")),
        **TABLE_ARGS,
    )
