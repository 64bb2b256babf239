"""Per-project quotas; errors as tenants see them.

Revision ID: e4a7c2d9f1b6
Revises: b7d3e91c5a20
Create Date: 2026-12-06 16:00:00

- ``project_quotas``: an administrator's limit of one resource
  (``snapshots``, ``snapshot_gigabytes``) for one project, overriding
  the ``[quota]`` default; a project without a row has the defaults.
- snapshots and operations: ``error_summary``, the short message a
  tenant sees for a failure, next to ``error``, the full text only
  administrators see. Rows of an older release have none; tenants then
  see a generic message for the kind of failure.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "e4a7c2d9f1b6"
down_revision = "b7d3e91c5a20"
branch_labels = None
depends_on = None


def _datetime():
    return sa.DateTime().with_variant(
        mysql.DATETIME(fsp=6), "mysql", "mariadb"
    )


def upgrade():
    op.create_table(
        "project_quotas",
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("resource", sa.String(64), nullable=False),
        sa.Column("hard_limit", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _datetime(), nullable=False),
        sa.Column("updated_at", _datetime(), nullable=True),
        sa.PrimaryKeyConstraint(
            "project_id", "resource", name=op.f("pk_project_quotas")
        ),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    for table in ("snapshots", "operations"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("error_summary", sa.String(255)))
