"""Restore holds and step clocks.

Revision ID: b7d3e91c5a20
Revises: 8c41e2f7a9d3
Create Date: 2026-12-06 15:40:00

- operations: ``step_started_at``, when the current step began by the
  database's clock (the agent's timeout is measured from it), and
  ``held_instance_uuid``, unique: the server a restore holds from its
  request until it succeeds, or until the tenant retries or abandons it
  after a failure, so that two restores of one server cannot both be
  recorded however the requests race.

Unfinished restores of an older release get their hold and a step clock
of ``updated_at``. Should one server have two (the race this closes),
the oldest holds it and the others fail, before the unique key is made.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "b7d3e91c5a20"
down_revision = "8c41e2f7a9d3"
branch_labels = None
depends_on = None


def _datetime():
    return sa.DateTime().with_variant(
        mysql.DATETIME(fsp=6), "mysql", "mariadb"
    )


def upgrade():
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("step_started_at", _datetime()))
        batch.add_column(sa.Column("held_instance_uuid", sa.String(36)))

    operations = sa.table(
        "operations",
        sa.column("id", sa.String),
        sa.column("type", sa.String),
        sa.column("instance_uuid", sa.String),
        sa.column("state", sa.String),
        sa.column("error", sa.Text),
        sa.column("created_at", sa.DateTime),
        sa.column("updated_at", sa.DateTime),
        sa.column("finished_at", sa.DateTime),
        sa.column("step_started_at", sa.DateTime),
        sa.column("held_instance_uuid", sa.String),
    )
    connection = op.get_bind()
    unfinished = connection.execute(
        sa.select(
            operations.c.id,
            operations.c.instance_uuid,
            operations.c.created_at,
        )
        .where(
            operations.c.type == "restore",
            operations.c.state.in_(("pending", "running")),
        )
        .order_by(operations.c.created_at, operations.c.id)
    ).all()
    held = set()
    for operation_id, instance_uuid, _ in unfinished:
        row = operations.c.id == operation_id
        if instance_uuid in held:
            connection.execute(
                operations.update()
                .where(row)
                .values(
                    state="failed",
                    error="another restore of this server was requested first",
                    finished_at=sa.func.coalesce(
                        operations.c.updated_at, operations.c.created_at
                    ),
                )
            )
            continue
        held.add(instance_uuid)
        connection.execute(
            operations.update()
            .where(row)
            .values(
                held_instance_uuid=instance_uuid,
                step_started_at=sa.func.coalesce(
                    operations.c.updated_at, operations.c.created_at
                ),
            )
        )

    with op.batch_alter_table("operations") as batch:
        batch.create_unique_constraint(
            "uq_operations_held_instance_uuid", ["held_instance_uuid"]
        )
