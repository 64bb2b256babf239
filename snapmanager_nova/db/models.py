"""Snapmanager's own tables, as SQLAlchemy 2.0 declarative models.

Everything is keyed by the Nova instance UUID; Nova's tables are never
read or written. The alembic revisions in the top-level ``db/migrations``
create exactly this schema, and a functional test compares the two on
SQLite and MariaDB after every change.

Time
    Every timestamp is stored as a timezone-naive ``DATETIME`` holding UTC
    (with microseconds on MySQL/MariaDB, whose ``DATETIME`` would otherwise
    round them away: snapshot windows are compared for equality, so the
    value read back must be the value written). The conversion happens in
    one place, :class:`UTCDateTime`: values written may be aware (any
    zone, converted to UTC) or naive (taken as UTC, the oslo convention of
    ``timeutils.utcnow()``); values read back are always aware UTC, so the
    schedule code can compare them with its own aware datetimes without a
    ``TypeError`` or a silent zone mistake.

Names
    Constraints and indexes follow :data:`NAMING_CONVENTION`, so alembic,
    SQLite and MariaDB agree on every name and a later migration can drop
    or alter one by a name known in advance.

Enumerations
    Status-like columns are short strings validated by the DB API rather
    than database ENUMs: adding a state then needs no table rebuild, and the
    allowed transitions, which an ENUM could not express, live in the DB
    API anyway.
"""

import datetime
import uuid

import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.dialects import mysql

NAMING_CONVENTION = {
    "pk": "pk_%(table_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
}

# InnoDB for foreign keys and row locks; utf8mb4 so any name fits.
MYSQL_TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}

BACKENDS = ("file", "rbd", "volume")

SCHEDULE_FAMILIES = ("daily", "weekly", "monthly", "every", "netapp", "cron")

SNAPSHOT_CREATING = "creating"
SNAPSHOT_AVAILABLE = "available"
SNAPSHOT_ERROR = "error"
SNAPSHOT_DELETING = "deleting"
SNAPSHOT_DELETED = "deleted"
SNAPSHOT_STATUSES = (
    SNAPSHOT_CREATING,
    SNAPSHOT_AVAILABLE,
    SNAPSHOT_ERROR,
    SNAPSHOT_DELETING,
    SNAPSHOT_DELETED,
)
# Never stored: what the API shows (microversion 1.4) for an available
# snapshot whose holder, the host storing it, is gone for good (its
# agent's service record deleted). It is kept, never silently deleted,
# and shown available again as soon as that agent reports in
# (doc/source/multihost.rst).
SNAPSHOT_UNAVAILABLE = "unavailable"
# The only moves a snapshot's status may make; the DB API enforces them
# with a conditional UPDATE so that two writers cannot both make one.
SNAPSHOT_TRANSITIONS = {
    SNAPSHOT_CREATING: (SNAPSHOT_AVAILABLE, SNAPSHOT_ERROR),
    SNAPSHOT_AVAILABLE: (SNAPSHOT_DELETING,),
    SNAPSHOT_ERROR: (SNAPSHOT_DELETING,),
    SNAPSHOT_DELETING: (SNAPSHOT_DELETED, SNAPSHOT_ERROR),
    SNAPSHOT_DELETED: (),
}

# What is owed to a server Nova deleted (Instance.release_state; None
# while Nova has the server).
RELEASE_PENDING = "pending"
RELEASE_DONE = "done"
RELEASE_ABANDONED = "abandoned"
RELEASE_STATES = (RELEASE_PENDING, RELEASE_DONE, RELEASE_ABANDONED)

SCHEDULE_SOURCE_API = "api"
SCHEDULE_SOURCE_OPERATOR = "operator"
SCHEDULE_SOURCES = (SCHEDULE_SOURCE_API, SCHEDULE_SOURCE_OPERATOR)

# "abandon": the way out of a failed restore, giving the server back
# unlocked as the restore left it (doc/source/api.rst).
OPERATION_TYPES = ("restore", "delete", "snapshot", "abandon")
# The operations that hold their server (Operation.held_instance_uuid).
HOLDING_TYPES = ("restore", "abandon")
OPERATION_PENDING = "pending"
OPERATION_RUNNING = "running"
OPERATION_SUCCEEDED = "succeeded"
OPERATION_FAILED = "failed"
OPERATION_STATES = (
    OPERATION_PENDING,
    OPERATION_RUNNING,
    OPERATION_SUCCEEDED,
    OPERATION_FAILED,
)
OPERATION_TRANSITIONS = {
    OPERATION_PENDING: (
        OPERATION_RUNNING,
        OPERATION_SUCCEEDED,
        OPERATION_FAILED,
    ),
    OPERATION_RUNNING: (
        OPERATION_RUNNING,
        OPERATION_SUCCEEDED,
        OPERATION_FAILED,
    ),
    OPERATION_SUCCEEDED: (),
    OPERATION_FAILED: (),
}


def utcnow():
    """The current time, aware, in UTC."""
    return datetime.datetime.now(datetime.UTC)


def generate_uuid():
    return str(uuid.uuid4())


class UTCDateTime(sa.types.TypeDecorator):
    """Naive UTC ``DATETIME`` in the database, aware UTC in Python.

    See the module docstring for why.
    """

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(datetime.UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None:
            value = value.replace(tzinfo=datetime.UTC)
        return value


class Base(orm.DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime.datetime: UTCDateTime}


class TimestampMixin:
    created_at: orm.Mapped[datetime.datetime] = orm.mapped_column(
        default=utcnow
    )
    updated_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        onupdate=utcnow
    )


class Instance(TimestampMixin, Base):
    """A Nova instance as Snapmanager knows it.

    The flags and indexes are those of the light-snapshot design:
    ``snapshot_index`` numbers this instance's snapshots and is never
    reused, ``committed`` is False while an overlay of the file backend
    has not been committed back into Nova's disk, and ``root_index`` is
    the last snapshot index committed into that disk.
    """

    __tablename__ = "instances"
    __table_args__ = (
        # The conductor's query for releases due again.
        sa.Index(None, "release_state", "release_next_at"),
        MYSQL_TABLE_ARGS,
    )

    uuid: orm.Mapped[str] = orm.mapped_column(sa.String(36), primary_key=True)
    project_id: orm.Mapped[str] = orm.mapped_column(sa.String(255), index=True)
    host: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    # Unknown until the compute agent has looked at the domain's disks.
    backend: orm.Mapped[str | None] = orm.mapped_column(sa.String(16))
    snapshot_enabled: orm.Mapped[bool] = orm.mapped_column(default=False)
    daily: orm.Mapped[bool] = orm.mapped_column(default=False)
    keep_after_delete: orm.Mapped[bool] = orm.mapped_column(default=False)
    committed: orm.Mapped[bool] = orm.mapped_column(default=True)
    snapshot_index: orm.Mapped[int] = orm.mapped_column(default=0)
    root_index: orm.Mapped[int] = orm.mapped_column(default=0)
    # Set when Nova reports the instance gone; the row stays for the
    # snapshots kept after delete.
    deleted_at: orm.Mapped[datetime.datetime | None]
    # What the conductor's Nova inventory last saw (sync and versioned
    # notifications); the clock snapshots only a stable server.
    name: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    nova_status: orm.Mapped[str | None] = orm.mapped_column(sa.String(32))
    task_state: orm.Mapped[str | None] = orm.mapped_column(sa.String(64))
    locked: orm.Mapped[bool] = orm.mapped_column(
        default=False, server_default=sa.false()
    )
    locked_reason: orm.Mapped[str | None] = orm.mapped_column(sa.Text)
    boot_from_volume: orm.Mapped[bool] = orm.mapped_column(
        default=False, server_default=sa.false()
    )
    nova_synced_at: orm.Mapped[datetime.datetime | None]
    # After Nova deleted the server: whether its storage is still owed a
    # release (RELEASE_PENDING), tried again with backoff until the agent
    # has done it or an operator gives it up (doc/source/conductor.rst).
    release_state: orm.Mapped[str | None] = orm.mapped_column(sa.String(16))
    release_attempts: orm.Mapped[int] = orm.mapped_column(
        default=0, server_default="0"
    )
    release_next_at: orm.Mapped[datetime.datetime | None]
    release_error: orm.Mapped[str | None] = orm.mapped_column(sa.Text)


class Schedule(TimestampMixin, Base):
    """When to snapshot, and what to keep.

    A schedule belongs either to one instance or, as a project default,
    to every instance of its project that has no schedule of its own.
    """

    __tablename__ = "schedules"
    __table_args__ = (
        sa.CheckConstraint(
            "(is_project_default = 1 AND instance_uuid IS NULL) OR "
            "(is_project_default = 0 AND instance_uuid IS NOT NULL)",
            name="default_xor_instance",
        ),
        # The clock's query: enabled AND next_run_at <= now.
        sa.Index(None, "enabled", "next_run_at"),
        MYSQL_TABLE_ARGS,
    )

    id: orm.Mapped[str] = orm.mapped_column(
        sa.String(36), primary_key=True, default=generate_uuid
    )
    instance_uuid: orm.Mapped[str | None] = orm.mapped_column(
        sa.ForeignKey("instances.uuid"), index=True
    )
    project_id: orm.Mapped[str] = orm.mapped_column(sa.String(255), index=True)
    is_project_default: orm.Mapped[bool] = orm.mapped_column(default=False)
    family: orm.Mapped[str] = orm.mapped_column(sa.String(16))
    spec: orm.Mapped[str] = orm.mapped_column(sa.Text)
    timezone: orm.Mapped[str] = orm.mapped_column(sa.String(64), default="UTC")
    # schedule.RetentionPolicy.to_dict(): {"keep_count": N, "max_age":
    # seconds, "keep_last": N, "hourly": N, ... "yearly": N}, unset rules
    # left out; validated by RetentionPolicy.from_dict before it is stored.
    retention: orm.Mapped[dict] = orm.mapped_column(sa.JSON, default=dict)
    enabled: orm.Mapped[bool] = orm.mapped_column(default=True)
    next_run_at: orm.Mapped[datetime.datetime | None]
    last_run_at: orm.Mapped[datetime.datetime | None]
    # SCHEDULE_SOURCE_API: set by a tenant through the API;
    # SCHEDULE_SOURCE_OPERATOR: declared in [conductor] policy_file and
    # rewritten whenever that file changes.
    source: orm.Mapped[str] = orm.mapped_column(
        sa.String(16), default=SCHEDULE_SOURCE_API, server_default="api"
    )


class Snapshot(TimestampMixin, Base):
    """One point in time of one instance, over all its disks."""

    __tablename__ = "snapshots"
    __table_args__ = (
        # The idempotency key: a schedule snapshots an instance once per
        # window, however many conductors race for it. The instance is part
        # of the key because a project's default schedule serves all of
        # the project's instances. On-demand snapshots have no schedule,
        # and NULLs never collide.
        sa.UniqueConstraint("schedule_id", "instance_uuid", "window_start"),
        MYSQL_TABLE_ARGS,
    )

    id: orm.Mapped[str] = orm.mapped_column(
        sa.String(36), primary_key=True, default=generate_uuid
    )
    instance_uuid: orm.Mapped[str] = orm.mapped_column(
        sa.ForeignKey("instances.uuid"), index=True
    )
    # Deleting a schedule keeps its snapshots; retention then treats them
    # as the instance's unscheduled ones.
    schedule_id: orm.Mapped[str | None] = orm.mapped_column(
        sa.ForeignKey("schedules.id", ondelete="SET NULL")
    )
    project_id: orm.Mapped[str] = orm.mapped_column(sa.String(255), index=True)
    # The scheduled window this snapshot is for; the request time for an
    # on-demand one.
    window_start: orm.Mapped[datetime.datetime]
    status: orm.Mapped[str] = orm.mapped_column(
        sa.String(16), default=SNAPSHOT_CREATING, index=True
    )
    snapshot_index: orm.Mapped[int | None]
    backend: orm.Mapped[str | None] = orm.mapped_column(sa.String(16))
    # The compute host whose snapshot store holds a file-backed snapshot
    # (its "holder"): delete, sizing and the copy a restore elsewhere
    # needs go there, wherever the server runs now. None for RBD ones,
    # which live in the cluster (doc/source/multihost.rst).
    host: orm.Mapped[str | None] = orm.mapped_column(
        sa.String(255), index=True
    )
    # [{"target": "vda", "path" | "pool"/"image": ..., "snap_name": ...,
    #   "size": bytes}, ...], as the compute agent reports them.
    disks: orm.Mapped[list] = orm.mapped_column(sa.JSON, default=list)
    size_bytes: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    quiesced: orm.Mapped[bool] = orm.mapped_column(default=False)
    # ``error`` is the full text (an agent's exception, a library's
    # output), for operators; ``error_summary`` what a tenant is told
    # (api/views.py). A writer that sets no summary leaves tenants a
    # generic one, so detail never reaches them by omission.
    error: orm.Mapped[str | None] = orm.mapped_column(sa.Text)
    error_summary: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    completed_at: orm.Mapped[datetime.datetime | None]
    expires_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        index=True
    )
    deleted_at: orm.Mapped[datetime.datetime | None]
    # Transient failures are retried with backoff: how many tries so far,
    # and not before when the next one may start.
    attempts: orm.Mapped[int] = orm.mapped_column(
        default=0, server_default="0"
    )
    next_attempt_at: orm.Mapped[datetime.datetime | None]


class Operation(TimestampMixin, Base):
    """A long-running request (restore, delete, on-demand snapshot).

    The API returns its id at once; clients poll ``state`` and
    ``progress`` while the conductor works.
    """

    __tablename__ = "operations"
    __table_args__ = (
        sa.CheckConstraint(
            "progress >= 0 AND progress <= 100", name="progress_range"
        ),
        MYSQL_TABLE_ARGS,
    )

    id: orm.Mapped[str] = orm.mapped_column(
        sa.String(36), primary_key=True, default=generate_uuid
    )
    type: orm.Mapped[str] = orm.mapped_column(sa.String(16))
    instance_uuid: orm.Mapped[str] = orm.mapped_column(
        sa.ForeignKey("instances.uuid"), index=True
    )
    snapshot_id: orm.Mapped[str | None] = orm.mapped_column(
        sa.ForeignKey("snapshots.id"), index=True
    )
    project_id: orm.Mapped[str] = orm.mapped_column(sa.String(255), index=True)
    state: orm.Mapped[str] = orm.mapped_column(
        sa.String(16), default=OPERATION_PENDING, index=True
    )
    progress: orm.Mapped[int] = orm.mapped_column(default=0)
    step: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    error: orm.Mapped[str | None] = orm.mapped_column(sa.Text)
    # As a snapshot's: the full text for operators, the summary for
    # tenants.
    error_summary: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    finished_at: orm.Mapped[datetime.datetime | None]
    # The conductor orchestrating it (restores): a restarted conductor
    # resumes its own, and one whose conductor is down is taken over.
    conductor_host: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    # When ``step`` began, by the database's clock: a step's timeout is
    # measured from it (``updated_at`` moves with every claim and report).
    step_started_at: orm.Mapped[datetime.datetime | None]
    # The instance a restore (or the abandonment of a failed one) holds:
    # set from the request until it succeeds, and kept by a failed one
    # until it is retried or abandoned. Unique, so the database itself
    # allows one such operation per server; its snapshot is deleted by
    # nobody and the schedule clock leaves the server alone meanwhile.
    held_instance_uuid: orm.Mapped[str | None] = orm.mapped_column(
        sa.String(36), unique=True
    )


class ProjectQuota(TimestampMixin, Base):
    """An administrator's limit of one resource for one project.

    Overrides the ``[quota]`` default of ``resource`` (snapmanager_nova/
    quota.py names the resources); -1 is unlimited.
    """

    __tablename__ = "project_quotas"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    project_id: orm.Mapped[str] = orm.mapped_column(
        sa.String(255), primary_key=True
    )
    resource: orm.Mapped[str] = orm.mapped_column(
        sa.String(64), primary_key=True
    )
    hard_limit: orm.Mapped[int] = orm.mapped_column(sa.BigInteger)


class Service(Base):
    """The last sign of life of one Snapmanager process."""

    __tablename__ = "services"
    __table_args__ = (
        sa.UniqueConstraint("binary", "host"),
        MYSQL_TABLE_ARGS,
    )

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    binary: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    host: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    topic: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    last_seen_at: orm.Mapped[datetime.datetime] = orm.mapped_column(
        default=utcnow
    )
    created_at: orm.Mapped[datetime.datetime] = orm.mapped_column(
        default=utcnow
    )


class SyncMarker(Base):
    """How far an incremental sync got (Nova's ``changes-since``)."""

    __tablename__ = "sync_markers"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    name: orm.Mapped[str] = orm.mapped_column(sa.String(64), primary_key=True)
    value: orm.Mapped[datetime.datetime | None]
    updated_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        default=utcnow, onupdate=utcnow
    )
