"""Initial schema: instances, schedules, snapshots, operations, services.

Revision ID: 6dcab56df021
Revises:
Create Date: 2025-11-22 05:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = "6dcab56df021"
down_revision = None
branch_labels = None
depends_on = None

# Snapmanager does not support downgrades: upgrade() only.

TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}

# Every name is final (op.f): the models' naming convention, which alembic
# applies to this revision too, must not rewrite names already chosen.


def _datetime():
    # Naive UTC; microseconds kept on MySQL/MariaDB because snapshot
    # windows are compared for equality.
    return sa.DateTime().with_variant(
        mysql.DATETIME(fsp=6), "mysql", "mariadb"
    )


def _timestamps():
    return [
        sa.Column("created_at", _datetime(), nullable=False),
        sa.Column("updated_at", _datetime(), nullable=True),
    ]


def upgrade():
    op.create_table(
        "instances",
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("backend", sa.String(16), nullable=True),
        sa.Column("snapshot_enabled", sa.Boolean(), nullable=False),
        sa.Column("daily", sa.Boolean(), nullable=False),
        sa.Column("keep_after_delete", sa.Boolean(), nullable=False),
        sa.Column("committed", sa.Boolean(), nullable=False),
        sa.Column("snapshot_index", sa.Integer(), nullable=False),
        sa.Column("root_index", sa.Integer(), nullable=False),
        sa.Column("deleted_at", _datetime(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("uuid", name=op.f("pk_instances")),
        **TABLE_ARGS,
    )
    op.create_index(
        op.f("ix_instances_project_id"), "instances", ["project_id"]
    )

    op.create_table(
        "schedules",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=True),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("is_project_default", sa.Boolean(), nullable=False),
        sa.Column("family", sa.String(16), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("retention", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", _datetime(), nullable=True),
        sa.Column("last_run_at", _datetime(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
        sa.ForeignKeyConstraint(
            ["instance_uuid"],
            ["instances.uuid"],
            name=op.f("fk_schedules_instance_uuid_instances"),
        ),
        sa.CheckConstraint(
            "(is_project_default = 1 AND instance_uuid IS NULL) OR "
            "(is_project_default = 0 AND instance_uuid IS NOT NULL)",
            name=op.f("ck_schedules_default_xor_instance"),
        ),
        **TABLE_ARGS,
    )
    op.create_index(
        op.f("ix_schedules_instance_uuid"), "schedules", ["instance_uuid"]
    )
    op.create_index(
        op.f("ix_schedules_project_id"), "schedules", ["project_id"]
    )
    op.create_index(
        op.f("ix_schedules_enabled_next_run_at"),
        "schedules",
        ["enabled", "next_run_at"],
    )

    op.create_table(
        "snapshots",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.Column("schedule_id", sa.String(36), nullable=True),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("window_start", _datetime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("snapshot_index", sa.Integer(), nullable=True),
        sa.Column("backend", sa.String(16), nullable=True),
        sa.Column("disks", sa.JSON(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("quiesced", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("completed_at", _datetime(), nullable=True),
        sa.Column("expires_at", _datetime(), nullable=True),
        sa.Column("deleted_at", _datetime(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshots")),
        sa.ForeignKeyConstraint(
            ["instance_uuid"],
            ["instances.uuid"],
            name=op.f("fk_snapshots_instance_uuid_instances"),
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["schedules.id"],
            name=op.f("fk_snapshots_schedule_id_schedules"),
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint(
            "schedule_id",
            "instance_uuid",
            "window_start",
            name=op.f("uq_snapshots_schedule_id_instance_uuid_window_start"),
        ),
        **TABLE_ARGS,
    )
    op.create_index(
        op.f("ix_snapshots_instance_uuid"), "snapshots", ["instance_uuid"]
    )
    op.create_index(
        op.f("ix_snapshots_project_id"), "snapshots", ["project_id"]
    )
    op.create_index(op.f("ix_snapshots_status"), "snapshots", ["status"])
    op.create_index(
        op.f("ix_snapshots_expires_at"), "snapshots", ["expires_at"]
    )

    op.create_table(
        "operations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.Column("snapshot_id", sa.String(36), nullable=True),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished_at", _datetime(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations")),
        sa.ForeignKeyConstraint(
            ["instance_uuid"],
            ["instances.uuid"],
            name=op.f("fk_operations_instance_uuid_instances"),
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_operations_snapshot_id_snapshots"),
        ),
        sa.CheckConstraint(
            "progress >= 0 AND progress <= 100",
            name=op.f("ck_operations_progress_range"),
        ),
        **TABLE_ARGS,
    )
    op.create_index(
        op.f("ix_operations_instance_uuid"), "operations", ["instance_uuid"]
    )
    op.create_index(
        op.f("ix_operations_snapshot_id"), "operations", ["snapshot_id"]
    )
    op.create_index(
        op.f("ix_operations_project_id"), "operations", ["project_id"]
    )

    op.create_table(
        "services",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("binary", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("topic", sa.String(255), nullable=True),
        sa.Column("last_seen_at", _datetime(), nullable=False),
        sa.Column("created_at", _datetime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services")),
        sa.UniqueConstraint(
            "binary", "host", name=op.f("uq_services_binary_host")
        ),
        **TABLE_ARGS,
    )
