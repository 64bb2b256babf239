"""Snapshot holders: which host's store holds a file-backed snapshot.

Revision ID: a1f3c5e7b9d2
Revises: e4a7c2d9f1b6
Create Date: 2026-12-06 18:45:00

- snapshots: ``host``, the compute host whose snapshot store holds a
  file-backed snapshot; work on it (delete, sizing, the copy a restore
  on another host needs) goes there, not to wherever the server runs
  now. NULL for RBD snapshots, which live in the cluster. Rows of an
  older release were all taken on the server's host of the time, and
  servers could not move without losing them, so file-backed rows are
  given their instance's recorded host.
"""

import sqlalchemy as sa
from alembic import op

revision = "a1f3c5e7b9d2"
down_revision = "e4a7c2d9f1b6"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("host", sa.String(255), nullable=True))
        batch.create_index("ix_snapshots_host", ["host"])

    snapshots = sa.table(
        "snapshots",
        sa.column("instance_uuid", sa.String),
        sa.column("backend", sa.String),
        sa.column("host", sa.String),
    )
    instances = sa.table(
        "instances", sa.column("uuid", sa.String), sa.column("host", sa.String)
    )
    op.execute(
        snapshots.update()
        .where(snapshots.c.backend == "file")
        .values(
            host=sa.select(instances.c.host)
            .where(instances.c.uuid == snapshots.c.instance_uuid)
            .scalar_subquery()
        )
    )
