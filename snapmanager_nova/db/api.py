"""Queries on Snapmanager's own database.

Every function takes a request context first and runs in an oslo.db
enginefacade transaction: ``@context_manager.reader`` or ``.writer``
opens one (or joins the caller's, so several calls can share a
transaction by nesting them in ``with context_manager.writer.using(ctx)``)
and attaches its session to the context as ``context.session``. That
needs a context class decorated with
``enginefacade.transaction_context_provider``, such as
:class:`snapmanager_nova.context.RequestContext`.

The engine comes from the ``[database]`` options of ``cfg.CONF`` (which is
Snapmanager's ``CONF``), read on the first query, so importing this module
never connects anywhere.

Functions return model objects that stay readable after the transaction
(``expire_on_commit`` is off in oslo.db) and raise the exceptions of
:mod:`snapmanager_nova.exception`, never oslo.db's or SQLAlchemy's, for
the errors a caller can act on. Datetimes may be passed aware or naive
UTC and come back aware UTC (see :mod:`snapmanager_nova.db.models`).
"""

import collections
import datetime

import sqlalchemy as sa
from oslo_db import api as oslo_db_api
from oslo_db import exception as db_exc
from oslo_db.sqlalchemy import enginefacade
from sqlalchemy import orm
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects import sqlite

from snapmanager_nova import conf as sm_conf  # noqa: F401 registers options
from snapmanager_nova import exception
from snapmanager_nova.db import models

context_manager = enginefacade.transaction_context()
# Foreign keys are part of the schema's contract (no snapshot of a missing
# instance); SQLite only enforces them when told to on every connection.
context_manager.configure(sqlite_fk=True)


def get_engine():
    """The writer engine, e.g. for migrations (connects on first use)."""
    return context_manager.writer.get_engine()


# Fields a caller may set; identity, counters and bookkeeping columns are
# maintained here only.
_INSTANCE_FIELDS = frozenset(
    (
        "project_id",
        "host",
        # The server's name as Nova gave it when the policy was set; the
        # inventory keeps it current.
        "name",
        "backend",
        "snapshot_enabled",
        "daily",
        "keep_after_delete",
        "deleted_at",
    )
)
_SCHEDULE_CREATE_FIELDS = frozenset(
    (
        "instance_uuid",
        "project_id",
        "is_project_default",
        "family",
        "spec",
        "timezone",
        "retention",
        "enabled",
        "next_run_at",
        "last_run_at",
        "source",
    )
)
# A schedule keeps its owner and its source: moving it would silently
# change which snapshots its retention applies to, or who may rewrite it.
_SCHEDULE_UPDATE_FIELDS = _SCHEDULE_CREATE_FIELDS - {
    "instance_uuid",
    "project_id",
    "is_project_default",
    "source",
}
_SNAPSHOT_RESULT_FIELDS = frozenset(
    (
        "snapshot_index",
        "backend",
        "host",
        "disks",
        "size_bytes",
        "quiesced",
        "error",
        "error_summary",
        "completed_at",
        "expires_at",
        "deleted_at",
    )
)
_SNAPSHOT_CREATE_FIELDS = _SNAPSHOT_RESULT_FIELDS | {
    "instance_uuid",
    "schedule_id",
    "project_id",
    "window_start",
    "status",
}
_OPERATION_CREATE_FIELDS = frozenset(
    ("type", "instance_uuid", "snapshot_id", "project_id", "step")
)
_OPERATION_UPDATE_FIELDS = frozenset(
    ("state", "progress", "step", "error", "error_summary", "snapshot_id")
)


def _check_fields(values, allowed, what):
    unknown = set(values) - allowed
    if unknown:
        raise exception.Invalid(
            reason=f"{what} cannot set {', '.join(sorted(unknown))}"
        )


def _check_choice(what, value, choices):
    if value not in choices:
        raise exception.Invalid(
            reason=f"{what} must be one of {', '.join(choices)}, not {value!r}"
        )


def _require(values, what, *names):
    missing = [name for name in names if values.get(name) is None]
    if missing:
        raise exception.Invalid(reason=f"{what} needs {', '.join(missing)}")


def _get(session, model, key):
    """Read a row from the database, not from the session's cache.

    The conditional UPDATEs here are Core statements that bypass the
    session's identity map, so a cached object could be stale.
    """
    return session.get(model, key, populate_existing=True)


def _upsert(session, model, values, key_columns, update_values):
    """INSERT ``values``, or UPDATE ``update_values`` on a key clash.

    One statement, so concurrent callers (two conductors syncing the same
    instance, a service restarting) never see a duplicate-key error.
    """
    table = model.__table__
    dialect = session.get_bind().dialect.name
    if dialect in ("mysql", "mariadb"):
        stmt = (
            mysql.insert(table)
            .values(values)
            .on_duplicate_key_update(update_values)
        )
    elif dialect == "sqlite":
        stmt = (
            sqlite.insert(table)
            .values(values)
            .on_conflict_do_update(
                index_elements=key_columns, set_=update_values
            )
        )
    else:
        raise exception.SnapmanagerException(
            f"Database dialect {dialect} is not supported."
        )
    session.execute(stmt)


def _conditional_update(session, model, key, where, values):
    """UPDATE one row only if ``where`` still holds; True if it did.

    The check and the write are one statement, so of two concurrent
    writers expecting the same state exactly one wins.
    """
    pk = sa.inspect(model).primary_key[0]
    result = session.execute(
        sa.update(model)
        .where(pk == key, *where)
        .values(values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _claim(session, model, stmt, values):
    """Take the rows ``stmt`` selects for this caller alone.

    ``SELECT ... FOR UPDATE SKIP LOCKED`` passes over rows another
    conductor holds, and the rows taken are marked with ``values`` in the
    same transaction, so no other conductor takes them after it commits.
    Returns them as marked.
    """
    (key,) = sa.inspect(model).primary_key
    claimed = list(
        session.execute(stmt.with_for_update(skip_locked=True)).scalars()
    )
    ids = [getattr(row, key.key) for row in claimed]
    if ids:
        session.execute(
            sa.update(model)
            .where(key.in_(ids))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    return [_get(session, model, row_id) for row_id in ids]


def _paginate(session, stmt, model, limit, marker, sort_dir):
    """Keyset pagination on (created_at, id): stable under inserts."""
    _check_choice("sort_dir", sort_dir, ("asc", "desc"))
    if marker is not None:
        last = session.get(model, marker)
        if last is None:
            raise exception.MarkerNotFound(marker=marker)
        after = (
            (lambda col, val: col > val)
            if sort_dir == "asc"
            else (lambda col, val: col < val)
        )
        stmt = stmt.where(
            sa.or_(
                after(model.created_at, last.created_at),
                sa.and_(
                    model.created_at == last.created_at,
                    after(model.id, last.id),
                ),
            )
        )
    order = sa.asc if sort_dir == "asc" else sa.desc
    stmt = stmt.order_by(order(model.created_at), order(model.id))
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.execute(stmt).scalars())


def _in(column, value):
    """``column = value``, or ``column IN value`` for a list or tuple."""
    if isinstance(value, list | tuple | set | frozenset):
        return column.in_(value)
    return column == value


# Instances


def _instance_get(session, instance_uuid):
    instance = _get(session, models.Instance, instance_uuid)
    if instance is None:
        raise exception.InstanceNotFound(instance_uuid=instance_uuid)
    return instance


@context_manager.reader
def instance_get(context, instance_uuid):
    return _instance_get(context.session, instance_uuid)


@context_manager.writer
def instance_create_or_update(context, instance_uuid, values):
    """Record what Nova says about an instance; create it if new.

    Creating needs ``project_id``; without it the instance must exist.
    ``snapshot_index``, ``root_index`` and ``committed`` are not set here:
    see :func:`instance_allocate_snapshot_index` and
    :func:`instance_set_progress`.
    """
    _check_fields(values, _INSTANCE_FIELDS, "instance")
    if values.get("backend") is not None:
        _check_choice("backend", values["backend"], models.BACKENDS)
    session = context.session
    changes = dict(values, updated_at=models.utcnow())
    if values.get("project_id") is None:
        if not _conditional_update(
            session, models.Instance, instance_uuid, (), changes
        ):
            raise exception.InstanceNotFound(instance_uuid=instance_uuid)
    else:
        _upsert(
            session,
            models.Instance,
            dict(values, uuid=instance_uuid),
            ["uuid"],
            changes,
        )
    return _get(session, models.Instance, instance_uuid)


@context_manager.reader
def instance_list(context, project_id=None, host=None, include_deleted=False):
    stmt = sa.select(models.Instance)
    if project_id is not None:
        stmt = stmt.where(models.Instance.project_id == project_id)
    if host is not None:
        stmt = stmt.where(models.Instance.host == host)
    if not include_deleted:
        stmt = stmt.where(models.Instance.deleted_at.is_(None))
    stmt = stmt.order_by(models.Instance.created_at, models.Instance.uuid)
    return list(context.session.execute(stmt).scalars())


@context_manager.writer
def instance_allocate_snapshot_index(context, instance_uuid):
    """Return a new snapshot index for the instance, never given before.

    The increment is a single UPDATE, so concurrent callers queue on the
    row lock and each reads back its own value in the same transaction.
    """
    session = context.session
    instance = models.Instance
    if not _conditional_update(
        session,
        instance,
        instance_uuid,
        (),
        {"snapshot_index": instance.snapshot_index + 1},
    ):
        raise exception.InstanceNotFound(instance_uuid=instance_uuid)
    return session.execute(
        sa.select(instance.snapshot_index).where(
            instance.uuid == instance_uuid
        )
    ).scalar_one()


@context_manager.writer
def instance_set_progress(context, instance_uuid, committed, root_index=None):
    """Record the file backend's commit progress.

    ``root_index`` may only name an index already allocated.
    """
    session = context.session
    instance = models.Instance
    values = {"committed": committed, "updated_at": models.utcnow()}
    where = ()
    if root_index is not None:
        values["root_index"] = root_index
        where = (instance.snapshot_index >= root_index,)
    if not _conditional_update(
        session, instance, instance_uuid, where, values
    ):
        current = _instance_get(session, instance_uuid)
        raise exception.Invalid(
            reason=f"root_index {root_index} of instance {instance_uuid} "
            f"is beyond its last snapshot index {current.snapshot_index}"
        )
    return _get(session, instance, instance_uuid)


# Schedules


def _schedule_get(session, schedule_id):
    schedule = _get(session, models.Schedule, schedule_id)
    if schedule is None:
        raise exception.ScheduleNotFound(schedule_id=schedule_id)
    return schedule


def _check_project(what, values, instance):
    """Fill ``project_id`` from the instance, or check it agrees."""
    project_id = values.setdefault("project_id", instance.project_id)
    if project_id != instance.project_id:
        raise exception.Invalid(
            reason=f"{what} of project {project_id} cannot belong to "
            f"instance {instance.uuid} of project {instance.project_id}"
        )


@context_manager.writer
def schedule_create(context, values):
    """Create an instance's schedule, or a project default.

    A project default (``is_project_default``) has no instance and needs
    ``project_id``; any other schedule names an existing instance.
    """
    _check_fields(values, _SCHEDULE_CREATE_FIELDS, "schedule")
    _require(values, "a schedule", "family", "spec")
    _check_choice("family", values["family"], models.SCHEDULE_FAMILIES)
    session = context.session
    values = dict(values)
    if values.get("is_project_default"):
        if values.get("instance_uuid") is not None:
            raise exception.Invalid(
                reason="a project default schedule has no instance"
            )
        _require(values, "a project default schedule", "project_id")
    else:
        _require(values, "a schedule", "instance_uuid")
        instance = _instance_get(session, values["instance_uuid"])
        _check_project("a schedule", values, instance)
    schedule = models.Schedule(**values)
    session.add(schedule)
    session.flush()
    return schedule


@context_manager.reader
def schedule_get(context, schedule_id):
    return _schedule_get(context.session, schedule_id)


@context_manager.reader
def schedule_list(
    context,
    instance_uuid=None,
    project_id=None,
    is_project_default=None,
    enabled=None,
    source=None,
    schedule_id=None,
):
    """Schedules matching every filter given, oldest first.

    ``project_id=P, is_project_default=True`` gives the defaults of P;
    ``schedule_id`` is one id or a list.
    """
    schedule = models.Schedule
    stmt = sa.select(schedule)
    if schedule_id is not None:
        stmt = stmt.where(_in(schedule.id, schedule_id))
    if instance_uuid is not None:
        stmt = stmt.where(schedule.instance_uuid == instance_uuid)
    if project_id is not None:
        stmt = stmt.where(schedule.project_id == project_id)
    if is_project_default is not None:
        stmt = stmt.where(schedule.is_project_default == is_project_default)
    if enabled is not None:
        stmt = stmt.where(schedule.enabled == enabled)
    if source is not None:
        stmt = stmt.where(schedule.source == source)
    stmt = stmt.order_by(schedule.created_at, schedule.id)
    return list(context.session.execute(stmt).scalars())


@context_manager.writer
def schedule_update(context, schedule_id, values):
    _check_fields(values, _SCHEDULE_UPDATE_FIELDS, "a schedule update")
    if "family" in values:
        _check_choice("family", values["family"], models.SCHEDULE_FAMILIES)
    session = context.session
    schedule = _schedule_get(session, schedule_id)
    for name, value in values.items():
        setattr(schedule, name, value)
    session.flush()
    return schedule


@context_manager.writer
def schedule_delete(context, schedule_id):
    """Delete a schedule; its snapshots stay, without a schedule."""
    result = context.session.execute(
        sa.delete(models.Schedule).where(models.Schedule.id == schedule_id)
    )
    if result.rowcount != 1:
        raise exception.ScheduleNotFound(schedule_id=schedule_id)


def _due_schedules(now, limit):
    schedule = models.Schedule
    stmt = (
        sa.select(schedule)
        .where(schedule.enabled == sa.true(), schedule.next_run_at <= now)
        .order_by(schedule.next_run_at, schedule.id)
    )
    return stmt if limit is None else stmt.limit(limit)


@context_manager.reader
def schedule_get_due(context, now, limit=None):
    """Enabled schedules whose next run is at or before ``now``.

    Most overdue first, so a conductor that takes only ``limit`` of them
    per tick never starves the oldest.
    """
    return list(context.session.execute(_due_schedules(now, limit)).scalars())


@context_manager.writer
def schedule_claim_due(context, now, limit):
    """Lock up to ``limit`` due schedules for the caller's transaction.

    ``SELECT ... FOR UPDATE SKIP LOCKED``: rows another conductor holds
    are passed over rather than waited for, so several conductors share
    the due schedules and none takes one twice. Call it inside
    ``context_manager.writer.using(context)`` and advance each schedule's
    ``next_run_at`` before that transaction ends; the locks last until
    then. (SQLite has no row locks; it serializes whole transactions.)
    """
    stmt = _due_schedules(now, limit).with_for_update(skip_locked=True)
    return list(context.session.execute(stmt).scalars())


@context_manager.writer
def schedules_advance(context, advances):
    """Move many claimed schedules on: ``advances`` are ``(schedule id,
    next_run_at, last_run_at)``. One UPDATE per distinct pair of times:
    schedules of the same spec and timezone, the common case of a busy
    window, share one."""
    groups = collections.defaultdict(list)
    for schedule_id, next_run_at, last_run_at in advances:
        groups[(next_run_at, last_run_at)].append(schedule_id)
    schedule = models.Schedule
    for (next_run_at, last_run_at), ids in groups.items():
        context.session.execute(
            sa.update(schedule)
            .where(schedule.id.in_(ids))
            .values(
                next_run_at=next_run_at,
                last_run_at=last_run_at,
                updated_at=models.utcnow(),
            )
            .execution_options(synchronize_session="evaluate")
        )


@context_manager.reader
def instances_to_snapshot(context, instance_uuids):
    """Those of ``instance_uuids`` their own tenant schedules snapshot
    now (as :func:`schedule_targets` for an instance's schedule), in one
    query: switched on and not deleted in Nova."""
    if not instance_uuids:
        return []
    instance = models.Instance
    stmt = (
        sa.select(instance)
        .where(
            instance.uuid.in_(list(instance_uuids)),
            instance.snapshot_enabled == sa.true(),
            instance.deleted_at.is_(None),
        )
        .order_by(instance.uuid)
    )
    return list(context.session.execute(stmt).scalars())


@context_manager.writer
def instance_allocate_snapshot_indexes(context, instance_uuids):
    """:func:`instance_allocate_snapshot_index` for several instances
    (each once) in two statements; ``{uuid: new index}``. The UPDATE
    locks the rows until the caller's transaction ends, so the values
    read back are this transaction's own."""
    if not instance_uuids:
        return {}
    uuids = sorted(set(instance_uuids))
    if len(uuids) != len(instance_uuids):
        raise exception.Invalid(reason="an instance is named twice")
    instance = models.Instance
    context.session.execute(
        sa.update(instance)
        .where(instance.uuid.in_(uuids))
        .values(snapshot_index=instance.snapshot_index + 1)
        .execution_options(synchronize_session=False)
    )
    found = dict(
        context.session.execute(
            sa.select(instance.uuid, instance.snapshot_index).where(
                instance.uuid.in_(uuids)
            )
        ).all()
    )
    missing = set(uuids) - set(found)
    if missing:
        raise exception.InstanceNotFound(instance_uuid=sorted(missing)[0])
    return found


@context_manager.reader
def snapshot_windows_taken(context, schedule_ids, windows):
    """``(schedule id, instance uuid, window_start)`` of the snapshots
    recorded for any of ``schedule_ids`` in any of ``windows``."""
    if not schedule_ids or not windows:
        return set()
    snapshot = models.Snapshot
    stmt = sa.select(
        snapshot.schedule_id, snapshot.instance_uuid, snapshot.window_start
    ).where(
        snapshot.schedule_id.in_(list(schedule_ids)),
        snapshot.window_start.in_(list(windows)),
    )
    return {tuple(row) for row in context.session.execute(stmt).all()}


@context_manager.writer
def snapshots_create_scheduled(context, values_list):
    """Record many scheduled snapshots (``creating``) in one flush, the
    instances' and schedules' existence and projects taken as checked by
    the caller (it read them in this transaction: the clock). Returns
    the rows. Raises DuplicateWindow if any window is taken already:
    call it in a savepoint, then none is recorded."""
    session = context.session
    snapshots = [models.Snapshot(**values) for values in values_list]
    session.add_all(snapshots)
    try:
        session.flush()
    except db_exc.DBDuplicateEntry:
        raise exception.DuplicateWindow(
            schedule_id="(one of a batch)",
            instance_uuid="(one of a batch)",
            window_start="(one of a batch)",
        ) from None
    return snapshots


@context_manager.reader
def schedule_targets(context, schedule):
    """The instances a schedule snapshots now.

    Only instances switched on (``snapshot_enabled``) and not deleted in
    Nova. An instance's own schedule targets that instance; a project's
    default schedule targets the project's instances that have no enabled
    schedule of their own.
    """
    instance = models.Instance
    stmt = sa.select(instance).where(
        instance.snapshot_enabled == sa.true(),
        instance.deleted_at.is_(None),
    )
    if schedule.instance_uuid is not None:
        stmt = stmt.where(instance.uuid == schedule.instance_uuid)
    else:
        own = sa.select(models.Schedule.instance_uuid).where(
            models.Schedule.instance_uuid.is_not(None),
            models.Schedule.enabled == sa.true(),
        )
        stmt = stmt.where(
            instance.project_id == schedule.project_id,
            instance.uuid.not_in(own),
        )
    stmt = stmt.order_by(instance.uuid)
    return list(context.session.execute(stmt).scalars())


# Snapshots


def _snapshot_get(session, snapshot_id):
    snapshot = _get(session, models.Snapshot, snapshot_id)
    if snapshot is None:
        raise exception.SnapshotNotFound(snapshot_id=snapshot_id)
    return snapshot


@context_manager.writer
def snapshot_create(context, values):
    """Record a snapshot, normally in ``creating`` before the agent works.

    Raises DuplicateWindow if the schedule already has a snapshot of the
    instance for ``window_start``: the conductor that gets it lost the
    race for that window and must not snapshot again. ``window_start``
    defaults to now (an on-demand snapshot) and ``project_id`` to the
    instance's.
    """
    _check_fields(values, _SNAPSHOT_CREATE_FIELDS, "snapshot")
    _require(values, "a snapshot", "instance_uuid")
    values = dict(values)
    values.setdefault("window_start", models.utcnow())
    _check_choice(
        "status",
        values.setdefault("status", models.SNAPSHOT_CREATING),
        models.SNAPSHOT_STATUSES,
    )
    session = context.session
    # Checked first for a clear error; the foreign keys still guard the
    # insert itself.
    instance = _instance_get(session, values["instance_uuid"])
    _check_project("a snapshot", values, instance)
    schedule_id = values.get("schedule_id")
    if schedule_id is not None:
        schedule = _schedule_get(session, schedule_id)
        if schedule.instance_uuid not in (None, instance.uuid):
            raise exception.Invalid(
                reason=f"schedule {schedule_id} is not a schedule of "
                f"instance {instance.uuid}"
            )
    snapshot = models.Snapshot(**values)
    session.add(snapshot)
    try:
        session.flush()
    except db_exc.DBDuplicateEntry:
        # The id is generated here, so the only key that can clash is
        # the window's.
        raise exception.DuplicateWindow(
            schedule_id=schedule_id,
            instance_uuid=values["instance_uuid"],
            window_start=values["window_start"],
        ) from None
    except db_exc.DBReferenceError as exc:
        if exc.key == "schedule_id":
            raise exception.ScheduleNotFound(schedule_id=schedule_id) from exc
        raise exception.InstanceNotFound(
            instance_uuid=values["instance_uuid"]
        ) from exc
    return snapshot


@context_manager.reader
def snapshot_get(context, snapshot_id):
    return _snapshot_get(context.session, snapshot_id)


@context_manager.reader
def snapshot_list(
    context,
    instance_uuid=None,
    project_id=None,
    status=None,
    schedule_id=None,
    limit=None,
    marker=None,
    sort_dir="asc",
):
    """Snapshots matching every filter, one page at a time.

    Ordered by (created_at, id); ``marker`` is the id of the last snapshot
    of the previous page. ``instance_uuid``, ``status`` and
    ``schedule_id`` may each be one value or a list.
    """
    snapshot = models.Snapshot
    stmt = sa.select(snapshot)
    if instance_uuid is not None:
        stmt = stmt.where(_in(snapshot.instance_uuid, instance_uuid))
    if project_id is not None:
        stmt = stmt.where(snapshot.project_id == project_id)
    if status is not None:
        stmt = stmt.where(_in(snapshot.status, status))
    if schedule_id is not None:
        stmt = stmt.where(_in(snapshot.schedule_id, schedule_id))
    return _paginate(context.session, stmt, snapshot, limit, marker, sort_dir)


def _status_change(snapshot_id, new_status, fields, now):
    """(the values, the statuses it may move from, the WHERE clauses) of
    moving a snapshot to ``new_status`` with ``fields``: see
    :func:`snapshot_update_status`."""
    _check_choice("status", new_status, models.SNAPSHOT_STATUSES)
    _check_fields(fields, _SNAPSHOT_RESULT_FIELDS, "a snapshot update")
    snapshot = models.Snapshot
    values = dict(fields, status=new_status, updated_at=now)
    if new_status in (models.SNAPSHOT_AVAILABLE, models.SNAPSHOT_ERROR):
        values.setdefault(
            "completed_at",
            sa.func.coalesce(
                snapshot.completed_at, sa.literal(now, models.UTCDateTime())
            ),
        )
    if new_status == models.SNAPSHOT_DELETED:
        values.setdefault("deleted_at", now)
    if fields.get("backend") == "file" and not fields.get("host"):
        # An agent too old to say where it stored it: the host the
        # instance ran on is where it was taken, unless one is recorded.
        values["host"] = sa.func.coalesce(
            snapshot.host, _instance_host(snapshot)
        )
    allowed_from = [
        old
        for old, targets in models.SNAPSHOT_TRANSITIONS.items()
        if new_status in targets
    ]
    where = [snapshot.status.in_(allowed_from)]
    if new_status == models.SNAPSHOT_DELETING:
        # In the same statement: a restore recorded meanwhile is seen
        # (InnoDB reads the subquery with locks), and loses nothing.
        where.append(~_held_snapshot(snapshot_id).exists())
    return values, allowed_from, where


@context_manager.writer
def snapshot_update_status(context, snapshot_id, new_status, **fields):
    """Move a snapshot to ``new_status`` and record ``fields`` with it.

    Only the moves of ``models.SNAPSHOT_TRANSITIONS`` are allowed; any
    other raises InvalidStatusTransition naming both statuses, and so does
    losing a race to a concurrent writer. ``completed_at`` defaults to now
    on reaching available or error the first time, ``deleted_at`` on
    reaching deleted.
    """
    session = context.session
    values, allowed_from, where = _status_change(
        snapshot_id, new_status, fields, models.utcnow()
    )
    snapshot = models.Snapshot
    if not _conditional_update(session, snapshot, snapshot_id, where, values):
        current = _snapshot_get(session, snapshot_id)
        if current.status in allowed_from:
            holder = session.execute(_held_snapshot(snapshot_id)).scalar()
            if holder is not None:
                raise exception.SnapshotInUse(
                    snapshot_id=snapshot_id, operation_id=holder
                )
        raise exception.InvalidStatusTransition(
            resource="Snapshot",
            resource_id=snapshot_id,
            from_status=current.status,
            to_status=new_status,
        )
    return _get(session, snapshot, snapshot_id)


# Two conductors recording batches that share rows (a report sent again)
# may lock them in different orders; the batch is idempotent, so it is
# simply run again.
@oslo_db_api.wrap_db_retry(max_retries=5, retry_on_deadlock=True)
@context_manager.writer
def snapshots_update_status(context, changes, new_status):
    """Move many snapshots to ``new_status`` in one transaction, each as
    :func:`snapshot_update_status` would with its fields: ``changes``
    maps a snapshot id to its fields.

    A snapshot that may not move (it moved on meanwhile, or is gone) is
    left as it is. Returns (the rows moved, in the order of ``changes``;
    {snapshot id: the status found, None if gone} of the others).
    """
    session = context.session
    snapshot = models.Snapshot
    now = models.utcnow()
    moved = set()
    # Rows locked in one order, whoever records them.
    for snapshot_id in sorted(changes):
        values, _allowed, where = _status_change(
            snapshot_id, new_status, changes[snapshot_id], now
        )
        if _conditional_update(session, snapshot, snapshot_id, where, values):
            moved.add(snapshot_id)
    rows = {}
    if moved:
        stmt = (
            sa.select(snapshot)
            .where(snapshot.id.in_(sorted(moved)))
            .execution_options(populate_existing=True)
        )
        rows = {row.id: row for row in session.execute(stmt).scalars()}
    others = [key for key in changes if key not in moved]
    found = dict.fromkeys(others)
    if others:
        stmt = sa.select(snapshot.id, snapshot.status).where(
            snapshot.id.in_(others)
        )
        found.update(session.execute(stmt).tuples().all())
    return [rows[key] for key in changes if key in rows], found


# The compute agents' binary, as their heartbeats record it.
COMPUTE_BINARY = "snapmanager-compute"


def _instance_host(snapshot):
    instance = models.Instance
    return (
        sa.select(instance.host)
        .where(instance.uuid == snapshot.instance_uuid)
        .scalar_subquery()
    )


@context_manager.writer
def snapshot_move_holder(context, snapshot_id, from_host, to_host):
    """Record that ``to_host``'s store now holds the snapshot, if
    ``from_host``'s still did; False when another writer moved it first
    (or it is gone). A copy is made before this and the old one is
    deleted after it, so the row names a host holding it at all times.
    """
    snapshot = models.Snapshot
    return _conditional_update(
        context.session,
        snapshot,
        snapshot_id,
        [
            snapshot.host == from_host,
            snapshot.status == models.SNAPSHOT_AVAILABLE,
        ],
        {"host": to_host, "updated_at": models.utcnow()},
    )


@context_manager.reader
def snapshot_holders_gone(context, hosts):
    """Those of ``hosts`` whose compute agent has no service record: an
    operator removed it for good (``snapmanager-manage service delete``),
    so their stores cannot be reached. An agent that is merely down keeps
    its record, and one that reports in again gets a new one."""
    hosts = set(hosts) - {None}
    if not hosts:
        return set()
    service = models.Service
    known = context.session.execute(
        sa.select(service.host).where(
            service.binary == COMPUTE_BINARY, service.host.in_(hosts)
        )
    ).scalars()
    return hosts - set(known)


@context_manager.writer
def service_delete(context, binary, host):
    """Forget ``binary`` on ``host``; False if it had no record."""
    service = models.Service
    result = context.session.execute(
        sa.delete(service).where(
            service.binary == binary, service.host == host
        )
    )
    return result.rowcount > 0


@context_manager.writer
def snapshot_update(context, snapshot_id, values):
    """Change a snapshot's recorded details, never its status.

    E.g. retention setting ``expires_at``; status changes go through
    :func:`snapshot_update_status`.
    """
    _check_fields(values, _SNAPSHOT_RESULT_FIELDS, "a snapshot update")
    session = context.session
    snapshot = _snapshot_get(session, snapshot_id)
    for name, value in values.items():
        setattr(snapshot, name, value)
    session.flush()
    return snapshot


@context_manager.writer
def snapshots_set_sizes(context, sizes):
    """Record the sizes agents measured ({snapshot id: bytes}) in one
    statement per row and one transaction; a snapshot gone is skipped."""
    if not sizes:
        return
    table = models.Snapshot.__table__
    stmt = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("snapshot_id"))
        .values(size_bytes=sa.bindparam("size"))
    )
    context.session.execute(
        stmt,
        [
            {"snapshot_id": snapshot_id, "size": size}
            for snapshot_id, size in sizes.items()
        ],
    )


# Operations


def _operation_get(session, operation_id):
    operation = _get(session, models.Operation, operation_id)
    if operation is None:
        raise exception.OperationNotFound(operation_id=operation_id)
    return operation


def _check_operation_snapshot(session, snapshot_id, instance_uuid):
    snapshot = _snapshot_get(session, snapshot_id)
    if snapshot.instance_uuid != instance_uuid:
        raise exception.Invalid(
            reason=f"snapshot {snapshot_id} is not a snapshot of instance "
            f"{instance_uuid}"
        )


def _check_progress(values):
    progress = values.get("progress")
    if progress is not None and not 0 <= progress <= 100:
        raise exception.Invalid(
            reason=f"progress must be within 0-100, not {progress}"
        )


@context_manager.writer
def operation_create(context, values):
    """Record a requested operation, in ``pending``."""
    _check_fields(values, _OPERATION_CREATE_FIELDS, "operation")
    _require(values, "an operation", "type", "instance_uuid")
    _check_choice("type", values["type"], models.OPERATION_TYPES)
    values = dict(values)
    session = context.session
    instance = _instance_get(session, values["instance_uuid"])
    _check_project("an operation", values, instance)
    if values.get("snapshot_id") is not None:
        _check_operation_snapshot(
            session, values["snapshot_id"], instance.uuid
        )
    if values["type"] == "restore" and values.get("snapshot_id"):
        # Locked: a delete's conditional UPDATE of the snapshot waits for
        # this transaction and then sees its hold, or this one waits for
        # the delete and sees the snapshot is no longer available.
        snapshot = session.execute(
            sa.select(models.Snapshot)
            .where(models.Snapshot.id == values["snapshot_id"])
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one()
        if snapshot.status != models.SNAPSHOT_AVAILABLE:
            raise exception.SnapshotNotRestorable(
                index=snapshot.snapshot_index,
                instance_uuid=instance.uuid,
                reason=f"it is {snapshot.status}, not available",
            )
    if values["type"] in models.HOLDING_TYPES:
        values["held_instance_uuid"] = instance.uuid
    operation = models.Operation(**values)
    try:
        # A savepoint, so the holder can still be read after a refusal.
        with session.begin_nested():
            session.add(operation)
    except db_exc.DBDuplicateEntry:
        # The unique hold, not a read before the insert, decides which
        # of two concurrent requests gets the server.
        raise _server_held(session, instance.uuid) from None
    return operation


def _held_snapshot(snapshot_id):
    """SELECT the operation holding a server to restore ``snapshot_id``."""
    operation = models.Operation
    return sa.select(operation.id).where(
        operation.snapshot_id == snapshot_id,
        operation.held_instance_uuid.is_not(None),
    )


def _server_held(session, instance_uuid):
    # A locking read: the holder may have committed after this
    # transaction's first (consistent) read.
    holder = session.execute(
        sa.select(models.Operation)
        .where(models.Operation.held_instance_uuid == instance_uuid)
        .with_for_update(read=True)
    ).scalar()
    if holder is None:
        # Released between the refused insert and this read.
        return exception.InstanceBusy(instance_uuid=instance_uuid)
    return exception.ServerHeld(
        server_id=instance_uuid,
        type=holder.type,
        operation_id=holder.id,
        state=holder.state,
    )


def _db_now(session):
    """The database's clock (UTC) as an SQL expression.

    Timeouts that compare with a time the database recorded read the
    same clock, so a conductor whose own clock is off cannot stretch or
    cut them.
    """
    if session.get_bind().dialect.name == "sqlite":
        now = sa.func.strftime("%Y-%m-%d %H:%M:%f", "now")
    else:
        now = sa.func.utc_timestamp(sa.literal_column("6"))
    return sa.type_coerce(now, models.UTCDateTime())


@context_manager.reader
def operation_holding(context, instance_uuid):
    """The operation that holds the instance (a restore from its request
    until it succeeds, a failed one until it is retried or abandoned), or
    None."""
    operation = models.Operation
    return context.session.execute(
        sa.select(operation).where(
            operation.held_instance_uuid == instance_uuid
        )
    ).scalar()


@context_manager.reader
def instance_uuids_held(context, instance_uuids):
    """Those of ``instance_uuids`` an operation holds."""
    if not instance_uuids:
        return set()
    held = models.Operation.held_instance_uuid
    stmt = sa.select(held).where(held.in_(list(instance_uuids)))
    return set(context.session.execute(stmt).scalars())


@context_manager.writer
def operation_take_over_restore(context, operation_id, new_type):
    """The tenant's way out of a failed restore: a new operation of
    ``new_type`` (``restore``: retry it from the same snapshot;
    ``abandon``: unlock the server and leave it as it is) takes over the
    failed one's hold on the server, in one transaction.

    Raises OperationNotRecoverable unless ``operation_id`` is a failed
    restore or abandonment that still holds its server; of two
    concurrent requests, one takes the hold and the other gets that.
    """
    _check_choice("type", new_type, models.HOLDING_TYPES)
    session = context.session
    operation = models.Operation
    failed = _operation_get(session, operation_id)
    action = "retried" if new_type == "restore" else "abandoned"

    def refuse(reason):
        return exception.OperationNotRecoverable(
            operation_id=operation_id, action=action, reason=reason
        )

    if failed.type not in models.HOLDING_TYPES:
        raise refuse(f"it is a {failed.type} operation, not a restore")
    if failed.state != models.OPERATION_FAILED:
        raise refuse(
            f"it is {failed.state}; only a failed restore that still "
            "holds its server can be"
        )
    if new_type == "restore":
        snapshot = _snapshot_get(session, failed.snapshot_id)
        if snapshot.status != models.SNAPSHOT_AVAILABLE:
            raise refuse(f"its snapshot is {snapshot.status}")
    if not _conditional_update(
        session,
        operation,
        operation_id,
        (
            operation.state == models.OPERATION_FAILED,
            operation.held_instance_uuid == failed.instance_uuid,
        ),
        # Its history stays as it was: updated_at too.
        {"held_instance_uuid": None, "updated_at": operation.updated_at},
    ):
        raise refuse("it was retried or abandoned already")
    successor = models.Operation(
        type=new_type,
        instance_uuid=failed.instance_uuid,
        snapshot_id=failed.snapshot_id,
        project_id=failed.project_id,
        held_instance_uuid=failed.instance_uuid,
    )
    session.add(successor)
    session.flush()
    return successor


@context_manager.reader
def operation_get(context, operation_id):
    return _operation_get(context.session, operation_id)


@context_manager.reader
def operation_list(context, instance_uuid=None, project_id=None, state=None):
    """Operations matching every filter, oldest first."""
    operation = models.Operation
    stmt = sa.select(operation)
    if instance_uuid is not None:
        stmt = stmt.where(operation.instance_uuid == instance_uuid)
    if project_id is not None:
        stmt = stmt.where(operation.project_id == project_id)
    if state is not None:
        stmt = stmt.where(_in(operation.state, state))
    stmt = stmt.order_by(operation.created_at, operation.id)
    return list(context.session.execute(stmt).scalars())


@context_manager.writer
def operation_update(context, operation_id, values):
    """Record an operation's progress or result.

    A finished operation (succeeded or failed) cannot change any more;
    ``finished_at`` is set on finishing, and ``progress`` becomes 100 on
    success unless given.
    """
    _check_fields(values, _OPERATION_UPDATE_FIELDS, "an operation update")
    _check_progress(values)
    session = context.session
    operation = models.Operation
    now = models.utcnow()
    values = dict(values, updated_at=now)
    state = values.get("state")
    if state is None:
        allowed_from = [
            old
            for old, targets in models.OPERATION_TRANSITIONS.items()
            if targets
        ]
    else:
        _check_choice("state", state, models.OPERATION_STATES)
        allowed_from = [
            old
            for old, targets in models.OPERATION_TRANSITIONS.items()
            if state in targets
        ]
        if not models.OPERATION_TRANSITIONS[state]:
            values["finished_at"] = now
        if state == models.OPERATION_SUCCEEDED:
            values.setdefault("progress", 100)
    if values.get("snapshot_id") is not None:
        current = _operation_get(session, operation_id)
        _check_operation_snapshot(
            session, values["snapshot_id"], current.instance_uuid
        )
    if not _conditional_update(
        session,
        operation,
        operation_id,
        (operation.state.in_(allowed_from),),
        values,
    ):
        current = _operation_get(session, operation_id)
        raise exception.InvalidStatusTransition(
            resource="Operation",
            resource_id=operation_id,
            from_status=current.state,
            to_status=state or current.state,
        )
    return _get(session, operation, operation_id)


# Services


@context_manager.writer
def service_heartbeat(context, binary, host, topic=None):
    """Record that ``binary`` on ``host`` is alive now."""
    session = context.session
    now = models.utcnow()
    _upsert(
        session,
        models.Service,
        {
            "binary": binary,
            "host": host,
            "topic": topic,
            "last_seen_at": now,
            "created_at": now,
        },
        ["binary", "host"],
        {"topic": topic, "last_seen_at": now},
    )
    service = models.Service
    return session.execute(
        sa.select(service)
        .where(service.binary == binary, service.host == host)
        .execution_options(populate_existing=True)
    ).scalar_one()


@context_manager.reader
def service_list(context, binary=None):
    service = models.Service
    stmt = sa.select(service)
    if binary is not None:
        stmt = stmt.where(service.binary == binary)
    stmt = stmt.order_by(service.binary, service.host)
    return list(context.session.execute(stmt).scalars())


# Queries of the REST API's listings


@context_manager.reader
def instance_list_page(
    context, project_id=None, snapshot_enabled=None, limit=None, marker=None
):
    """Instances not deleted in Nova, by uuid, one page at a time.

    ``marker`` is the uuid of the last instance of the previous page. The
    order is the uuid itself, so the marker is a position, not a row: a
    page can resume after an instance that has gone meanwhile.
    """
    instance = models.Instance
    stmt = sa.select(instance).where(instance.deleted_at.is_(None))
    if project_id is not None:
        stmt = stmt.where(instance.project_id == project_id)
    if snapshot_enabled is not None:
        stmt = stmt.where(instance.snapshot_enabled == snapshot_enabled)
    if marker is not None:
        stmt = stmt.where(instance.uuid > marker)
    stmt = stmt.order_by(instance.uuid)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(context.session.execute(stmt).scalars())


@context_manager.reader
def schedule_list_by_instances(context, instance_uuids, source=None):
    """The schedules of several instances in one query, oldest first."""
    if not instance_uuids:
        return []
    schedule = models.Schedule
    stmt = sa.select(schedule).where(
        schedule.instance_uuid.in_(list(instance_uuids))
    )
    if source is not None:
        stmt = stmt.where(schedule.source == source)
    stmt = stmt.order_by(schedule.created_at, schedule.id)
    return list(context.session.execute(stmt).scalars())


# The conductor's Nova inventory and restore orchestration

# What Nova says of a server, as the inventory records it.
_INVENTORY_FIELDS = frozenset(
    (
        "project_id",
        "host",
        "name",
        "nova_status",
        "task_state",
        "locked",
        "locked_reason",
        "boot_from_volume",
    )
)
_RESTORE_STEP_FIELDS = frozenset(
    ("state", "progress", "step", "error", "conductor_host")
)


@context_manager.reader
def instance_list_by_uuids(context, instance_uuids):
    """The known instances among ``instance_uuids`` (deleted ones too)."""
    if not instance_uuids:
        return []
    instance = models.Instance
    stmt = sa.select(instance).where(instance.uuid.in_(list(instance_uuids)))
    return list(context.session.execute(stmt).scalars())


@context_manager.writer
def instance_update_inventory(context, instance_uuid, values, observed_at):
    """Record what Nova said of a known instance at ``observed_at``.

    Only if nothing newer was recorded: the periodic sync and the
    notifications (which may arrive out of order) both write here, and an
    older observation must not overwrite a newer one. ``nova_synced_at``
    becomes ``observed_at``. True if the row was updated.
    """
    _check_fields(values, _INVENTORY_FIELDS, "an inventory update")
    instance = models.Instance
    return _conditional_update(
        context.session,
        instance,
        instance_uuid,
        (
            sa.or_(
                instance.nova_synced_at.is_(None),
                instance.nova_synced_at <= observed_at,
            ),
        ),
        dict(values, nova_synced_at=observed_at, updated_at=models.utcnow()),
    )


@context_manager.writer
def instance_mark_deleted(context, instance_uuid, deleted_at):
    """Record that Nova deleted the instance; True the first time only."""
    instance = models.Instance
    return _conditional_update(
        context.session,
        instance,
        instance_uuid,
        (instance.deleted_at.is_(None),),
        {"deleted_at": deleted_at, "updated_at": models.utcnow()},
    )


@context_manager.reader
def sync_marker_get(context, name):
    """The marker's value, or None if it was never set."""
    marker = context.session.get(models.SyncMarker, name)
    return None if marker is None else marker.value


@context_manager.writer
def sync_marker_set(context, name, value):
    now = models.utcnow()
    _upsert(
        context.session,
        models.SyncMarker,
        {"name": name, "value": value, "updated_at": now},
        ["name"],
        {"value": value, "updated_at": now},
    )


@context_manager.writer
def operation_claim_restores(
    context, host, conductor_binary, alive_since, limit
):
    """Take the restores no live conductor is working on.

    Unfinished restores nobody owns (new ones), this conductor's own
    (``host``: after a restart it resumes them) and those of conductors
    whose last heartbeat is older than ``alive_since``; the rows are
    locked with ``FOR UPDATE SKIP LOCKED`` and their ``conductor_host``
    set to ``host`` in the same transaction, so two conductors never
    take the same one. Oldest first.
    """
    operation = models.Operation
    service = models.Service
    # A plain read first: inside the locking SELECT, SKIP LOCKED would
    # also pass over a services row a heartbeat is writing, and take
    # that live conductor for a dead one.
    alive = list(
        context.session.execute(
            sa.select(service.host).where(
                service.binary == conductor_binary,
                service.last_seen_at >= alive_since,
                service.host != host,
            )
        ).scalars()
    )
    stmt = (
        sa.select(operation)
        .where(
            operation.type.in_(models.HOLDING_TYPES),
            operation.state.in_(
                (models.OPERATION_PENDING, models.OPERATION_RUNNING)
            ),
            sa.or_(
                operation.conductor_host.is_(None),
                operation.conductor_host.not_in(alive),
            ),
        )
        .order_by(operation.created_at, operation.id)
        .limit(limit)
    )
    # updated_at is left as it is (named, or its onupdate would stamp
    # every pass): it says when the restore last moved, not who looked.
    return _claim(
        context.session,
        operation,
        stmt,
        {"conductor_host": host, "updated_at": operation.updated_at},
    )


@context_manager.writer
def operation_update_step(context, operation_id, expected_step, values):
    """Move an unfinished operation on from ``expected_step``.

    A conditional UPDATE: it happens only if the operation is still
    pending or running at ``expected_step`` (None: no step yet), so a
    duplicated agent report or a second conductor cannot move it twice.
    Finishing sets ``finished_at`` (and ``progress`` 100 on success) as
    :func:`operation_update` does. True if the row was updated.
    """
    _check_fields(values, _RESTORE_STEP_FIELDS, "an operation step")
    _check_progress(values)
    operation = models.Operation
    now = models.utcnow()
    values = dict(values, updated_at=now)
    if "step" in values:
        values["step_started_at"] = _db_now(context.session)
    state = values.get("state")
    if state is not None:
        _check_choice("state", state, models.OPERATION_STATES)
        if not models.OPERATION_TRANSITIONS[state]:
            values["finished_at"] = now
        if state == models.OPERATION_SUCCEEDED:
            values.setdefault("progress", 100)
            # Done with the server; a failed one keeps it (see
            # operation_take_over_restore).
            values["held_instance_uuid"] = None
    step = (
        operation.step.is_(None)
        if expected_step is None
        else operation.step == expected_step
    )
    return _conditional_update(
        context.session,
        operation,
        operation_id,
        (
            operation.state.in_(
                (models.OPERATION_PENDING, models.OPERATION_RUNNING)
            ),
            step,
        ),
        values,
    )


@context_manager.reader
def operation_step_age(context, operation_id):
    """How long the operation has been at its current step, by the
    database's clock (None if no step start is recorded)."""
    operation = models.Operation
    started, now = context.session.execute(
        sa.select(operation.step_started_at, _db_now(context.session)).where(
            operation.id == operation_id
        )
    ).one()
    return None if started is None else now - started


# Retention, retries, reconciliation and the operators' policy file

# A snapshot that still has (or may have) something in storage.
_NOT_DELETED = (
    models.SNAPSHOT_CREATING,
    models.SNAPSHOT_AVAILABLE,
    models.SNAPSHOT_ERROR,
    models.SNAPSHOT_DELETING,
)
# Finished snapshots that retention and roll-off may delete.
_FINISHED = (models.SNAPSHOT_AVAILABLE, models.SNAPSHOT_ERROR)


@context_manager.reader
def service_hosts_alive(context, binary, since):
    """The hosts of ``binary`` whose last heartbeat is at or after
    ``since``."""
    service = models.Service
    stmt = sa.select(service.host).where(
        service.binary == binary, service.last_seen_at >= since
    )
    return set(context.session.execute(stmt).scalars())


@context_manager.writer
def snapshot_defer(context, snapshot_id, attempts, next_attempt_at, error):
    """Put a ``creating`` snapshot back to be tried again later.

    Only if it is still in flight (``next_attempt_at`` unset) after
    ``attempts`` retries: of two reports of one failure, or of a failure
    report and reconciliation, exactly one schedules the retry. Counts
    the retry and records why. True if the row was updated.
    """
    snapshot = models.Snapshot
    return _conditional_update(
        context.session,
        snapshot,
        snapshot_id,
        (
            snapshot.status == models.SNAPSHOT_CREATING,
            snapshot.attempts == attempts,
            snapshot.next_attempt_at.is_(None),
        ),
        {
            "attempts": attempts + 1,
            "next_attempt_at": next_attempt_at,
            "error": error,
            "updated_at": models.utcnow(),
        },
    )


@context_manager.writer
def snapshot_claim_retries(context, now, limit):
    """Take up to ``limit`` snapshots whose retry is due at ``now``.

    ``FOR UPDATE SKIP LOCKED`` and clearing ``next_attempt_at`` in the
    same transaction: several conductors share the due retries and none
    takes one twice. A claimed snapshot is in flight again; if the
    claimer dies before casting, reconciliation finds it. Oldest first.
    """
    snapshot = models.Snapshot
    stmt = (
        sa.select(snapshot)
        .where(
            snapshot.status == models.SNAPSHOT_CREATING,
            snapshot.next_attempt_at <= now,
        )
        .order_by(snapshot.next_attempt_at, snapshot.id)
        .limit(limit)
    )
    return _claim(
        context.session,
        snapshot,
        stmt,
        {"next_attempt_at": None, "updated_at": models.utcnow()},
    )


@context_manager.writer
def snapshot_touch(context, snapshot_id):
    """Record that the snapshot's pending work was just asked for again
    (its ``updated_at`` is what reconciliation's timeout measures)."""
    snapshot = models.Snapshot
    _conditional_update(
        context.session,
        snapshot,
        snapshot_id,
        (),
        {"updated_at": models.utcnow()},
    )


@context_manager.reader
def snapshot_list_stuck(context, before, limit):
    """Snapshots whose agent work should have ended before ``before``.

    ``deleting`` ones, and ``creating`` ones in flight (not waiting for
    a retry), last changed before ``before``. Oldest first.
    """
    snapshot = models.Snapshot
    changed = sa.func.coalesce(snapshot.updated_at, snapshot.created_at)
    stmt = (
        sa.select(snapshot)
        .where(
            sa.or_(
                snapshot.status == models.SNAPSHOT_DELETING,
                sa.and_(
                    snapshot.status == models.SNAPSHOT_CREATING,
                    snapshot.next_attempt_at.is_(None),
                ),
            ),
            changed < before,
        )
        .order_by(changed, snapshot.id)
        .limit(limit)
    )
    return list(context.session.execute(stmt).scalars())


@context_manager.reader
def instance_uuids_with_unscheduled_snapshots(context, before, limit):
    """Instances not deleted in Nova with an available or failed
    snapshot older than ``before`` that no schedule governs."""
    snapshot = models.Snapshot
    instance = models.Instance
    stmt = (
        sa.select(snapshot.instance_uuid)
        .join(instance, instance.uuid == snapshot.instance_uuid)
        .where(
            instance.deleted_at.is_(None),
            snapshot.schedule_id.is_(None),
            snapshot.status.in_(_FINISHED),
            snapshot.window_start < before,
        )
        .distinct()
        .order_by(snapshot.instance_uuid)
        .limit(limit)
    )
    return list(context.session.execute(stmt).scalars())


@context_manager.reader
def snapshot_list_of_deleted_instances(context, kept_before, limit):
    """Available or failed snapshots of instances Nova deleted that are
    due to go: all of those whose instance does not keep its snapshots
    after delete, and those older than ``kept_before`` (None: none) of
    instances that do. Oldest first."""
    snapshot = models.Snapshot
    instance = models.Instance
    due = instance.keep_after_delete == sa.false()
    if kept_before is not None:
        due = sa.or_(due, snapshot.window_start < kept_before)
    # A pending (or given up) release owns its instance's snapshots.
    released = sa.or_(
        instance.release_state.is_(None),
        instance.release_state == models.RELEASE_DONE,
    )
    stmt = (
        sa.select(snapshot)
        .join(instance, instance.uuid == snapshot.instance_uuid)
        .where(
            instance.deleted_at.is_not(None),
            released,
            snapshot.status.in_(_FINISHED),
            due,
        )
        .order_by(snapshot.window_start, snapshot.id)
        .limit(limit)
    )
    return list(context.session.execute(stmt).scalars())


@context_manager.reader
def instance_list_with_snapshot_indexes(context, after=None, limit=None):
    """Instances that can have snapshots in storage: given a snapshot
    index at some time, with a host, and either not deleted in Nova or
    still with a snapshot that is not deleted (one it keeps).

    In UUID order; ``after`` (a UUID) and ``limit`` page through them,
    so that a pass over a large cloud reads a bounded slice."""
    instance = models.Instance
    snapshot = models.Snapshot
    kept = sa.exists().where(
        snapshot.instance_uuid == instance.uuid,
        snapshot.status.in_(_NOT_DELETED),
    )
    stmt = (
        sa.select(instance)
        .where(
            instance.snapshot_index > 0,
            instance.host.is_not(None),
            sa.or_(instance.deleted_at.is_(None), kept),
        )
        .order_by(instance.uuid)
    )
    if after is not None:
        stmt = stmt.where(instance.uuid > after)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(context.session.execute(stmt).scalars())


@context_manager.reader
def operation_list_unfinished_for_snapshot(context, snapshot_id, types):
    """The pending or running operations of ``types`` on a snapshot, or
    on any of a list of snapshots."""
    operation = models.Operation
    stmt = (
        sa.select(operation)
        .where(
            _in(operation.snapshot_id, snapshot_id),
            operation.type.in_(types),
            operation.state.in_(
                (models.OPERATION_PENDING, models.OPERATION_RUNNING)
            ),
        )
        .order_by(operation.created_at, operation.id)
    )
    return list(context.session.execute(stmt).scalars())


@context_manager.reader
def schedule_list_by_source(context, source):
    """Every schedule of one source, oldest first."""
    _check_choice("source", source, models.SCHEDULE_SOURCES)
    schedule = models.Schedule
    stmt = (
        sa.select(schedule)
        .where(schedule.source == source)
        .order_by(schedule.created_at, schedule.id)
    )
    return list(context.session.execute(stmt).scalars())


@context_manager.reader
def instance_list_by_names(context, names):
    """Instances not deleted in Nova whose name is one of ``names``."""
    if not names:
        return []
    instance = models.Instance
    stmt = (
        sa.select(instance)
        .where(instance.name.in_(list(names)), instance.deleted_at.is_(None))
        .order_by(instance.uuid)
    )
    return list(context.session.execute(stmt).scalars())


@context_manager.reader
def instance_project_ids(context):
    """The projects that have an instance not deleted in Nova."""
    instance = models.Instance
    stmt = (
        sa.select(instance.project_id)
        .where(instance.deleted_at.is_(None))
        .distinct()
    )
    return set(context.session.execute(stmt).scalars())


def _has_schedule(source, **where):
    """EXISTS an enabled schedule of ``source`` owned as ``where`` says."""
    schedule = orm.aliased(models.Schedule)
    conditions = [schedule.enabled == sa.true(), schedule.source == source]
    if "instance_uuid" in where:
        conditions.append(schedule.instance_uuid == where["instance_uuid"])
    else:
        conditions.extend(
            (
                schedule.is_project_default == sa.true(),
                schedule.project_id == where["project_id"],
            )
        )
    return sa.exists().where(*conditions)


@context_manager.reader
def schedule_targets_by_precedence(context, schedule):
    """The instances ``schedule`` snapshots now, of either source.

    A tenant's schedules (source ``api``) target as
    :func:`schedule_targets` says. An operator's follow the precedence of
    doc/source/policy_file.rst, where for each instance the first of
    these levels that has an enabled schedule decides:

    1. the tenant's own schedules of the server (while its policy is on,
       ``snapshot_enabled``);
    2. the operator's schedules of the server;
    3. the tenant's project default (while the server's policy is on);
    4. the operator's default of the project (a project entry of the
       file, or else the file's general default).
    """
    if schedule.source == models.SCHEDULE_SOURCE_API:
        return schedule_targets(context, schedule)
    instance = models.Instance
    api = models.SCHEDULE_SOURCE_API
    tenant_own = sa.and_(
        instance.snapshot_enabled == sa.true(),
        _has_schedule(api, instance_uuid=instance.uuid),
    )
    stmt = sa.select(instance).where(instance.deleted_at.is_(None))
    if schedule.instance_uuid is not None:
        stmt = stmt.where(
            instance.uuid == schedule.instance_uuid, sa.not_(tenant_own)
        )
    else:
        operator_own = _has_schedule(
            models.SCHEDULE_SOURCE_OPERATOR, instance_uuid=instance.uuid
        )
        tenant_default = sa.and_(
            instance.snapshot_enabled == sa.true(),
            _has_schedule(api, project_id=instance.project_id),
        )
        stmt = stmt.where(
            instance.project_id == schedule.project_id,
            sa.not_(tenant_own),
            sa.not_(operator_own),
            sa.not_(tenant_default),
        )
    stmt = stmt.order_by(instance.uuid)
    return list(context.session.execute(stmt).scalars())


# Freshness (doc/source/freshness.rst)


def _freshness_pairs(project_id, after):
    """SELECT (instance_uuid, schedule_id) of every enabled schedule and
    each server it snapshots now, by the precedence of
    :func:`schedule_targets_by_precedence`.

    One branch per precedence level, each an equality join the indexes
    serve (an OR of the four in one join would scan every instance for
    every schedule). A functional test keeps the branches equal to the
    clock's query.
    """
    instance = models.Instance
    schedule = models.Schedule
    api = models.SCHEDULE_SOURCE_API
    operator = models.SCHEDULE_SOURCE_OPERATOR
    tenant_own = sa.and_(
        instance.snapshot_enabled == sa.true(),
        _has_schedule(api, instance_uuid=instance.uuid),
    )
    other = orm.aliased(models.Schedule)
    any_own = sa.exists().where(
        other.instance_uuid == instance.uuid, other.enabled == sa.true()
    )
    tenant_default = sa.and_(
        instance.snapshot_enabled == sa.true(),
        _has_schedule(api, project_id=instance.project_id),
    )
    own = instance.uuid == schedule.instance_uuid
    default = sa.and_(
        schedule.is_project_default == sa.true(),
        schedule.project_id == instance.project_id,
    )
    branches = (
        (own, schedule.source == api, instance.snapshot_enabled == sa.true()),
        (own, schedule.source == operator, sa.not_(tenant_own)),
        (
            default,
            schedule.source == api,
            instance.snapshot_enabled == sa.true(),
            sa.not_(any_own),
        ),
        (
            default,
            schedule.source == operator,
            sa.not_(tenant_own),
            sa.not_(_has_schedule(operator, instance_uuid=instance.uuid)),
            sa.not_(tenant_default),
        ),
    )
    common = [instance.deleted_at.is_(None), schedule.enabled == sa.true()]
    if project_id is not None:
        common.append(instance.project_id == project_id)
    if after is not None:
        common.append(instance.uuid > after)
    return sa.union_all(
        *(
            sa.select(
                instance.uuid.label("instance_uuid"),
                schedule.id.label("schedule_id"),
            )
            .select_from(instance)
            .join(schedule, join_on)
            .where(*conditions, *common)
            for join_on, *conditions in branches
        )
    ).subquery("pairs")


@context_manager.reader
def schedule_freshness_list(context, project_id=None, after=None, limit=None):
    """What the freshness check needs, for servers in uuid order.

    Every server not deleted in Nova (of ``project_id``, if given; with a
    uuid after ``after``, if given; the first ``limit`` such servers, if
    given) that an enabled schedule snapshots now, once per such
    schedule, as rows of ``(instance, schedule, newest)``: the
    :class:`~models.Instance`, the :class:`~models.Schedule`, and the
    ``window_start`` of the newest ``available`` snapshot that schedule
    took of that server (None if none). Ordered by server uuid, then
    schedule age. Which schedules snapshot a server follows the
    precedence of :func:`schedule_targets_by_precedence`.
    """
    session = context.session
    pairs = _freshness_pairs(project_id, after)
    instance = models.Instance
    schedule = models.Schedule
    snapshot = models.Snapshot
    servers = sa.select(pairs.c.instance_uuid).distinct()
    servers = servers.order_by(pairs.c.instance_uuid)
    if limit is not None:
        servers = servers.limit(limit)
    uuids = list(session.execute(servers).scalars())
    if not uuids:
        return []
    newest = (
        sa.select(
            snapshot.schedule_id,
            snapshot.instance_uuid,
            sa.func.max(snapshot.window_start).label("newest"),
        )
        .where(
            snapshot.instance_uuid.in_(uuids),
            snapshot.schedule_id.is_not(None),
            snapshot.status == models.SNAPSHOT_AVAILABLE,
        )
        .group_by(snapshot.schedule_id, snapshot.instance_uuid)
        .subquery("newest")
    )
    stmt = (
        sa.select(instance, schedule, newest.c.newest)
        .select_from(pairs)
        .join(instance, instance.uuid == pairs.c.instance_uuid)
        .join(schedule, schedule.id == pairs.c.schedule_id)
        .outerjoin(
            newest,
            sa.and_(
                newest.c.schedule_id == pairs.c.schedule_id,
                newest.c.instance_uuid == pairs.c.instance_uuid,
            ),
        )
        .where(pairs.c.instance_uuid.in_(uuids))
        .order_by(instance.uuid, schedule.created_at, schedule.id)
    )
    return [tuple(row) for row in session.execute(stmt)]


# Servers Nova deleted: stopping their schedules, and the release of
# their storage (doc/source/conductor.rst)


@context_manager.writer
def instance_begin_release(context, instance_uuid, deleted_at, now):
    """Record that Nova deleted the instance, and owe its release.

    In one transaction: the row gets ``deleted_at`` (which takes it out
    of every schedule's targets and every tenant's list of policies), its
    own schedules are switched off for good, and its release becomes
    pending, due at ``now``. True the first time only; a row already
    marked deleted is left as it is.
    """
    session = context.session
    instance = models.Instance
    began = _conditional_update(
        session,
        instance,
        instance_uuid,
        (instance.deleted_at.is_(None),),
        {
            "deleted_at": deleted_at,
            "release_state": models.RELEASE_PENDING,
            "release_attempts": 0,
            "release_next_at": now,
            "release_error": None,
            "updated_at": models.utcnow(),
        },
    )
    if began:
        session.execute(
            sa.update(models.Schedule)
            .where(models.Schedule.instance_uuid == instance_uuid)
            .values(
                enabled=False, next_run_at=None, updated_at=models.utcnow()
            )
            .execution_options(synchronize_session=False)
        )
        # A restore works in place: none holds a server Nova deleted, so
        # the release may delete the snapshot a failed one kept (one
        # still running fails at its next step on Nova's 404).
        operation = models.Operation
        session.execute(
            sa.update(operation)
            .where(operation.held_instance_uuid == instance_uuid)
            .values(held_instance_uuid=None, updated_at=operation.updated_at)
            .execution_options(synchronize_session=False)
        )
    return began


@context_manager.writer
def instance_claim_releases(context, now, lease_until, limit):
    """Take up to ``limit`` pending releases due at ``now``.

    ``FOR UPDATE SKIP LOCKED``, and ``release_next_at`` moved to
    ``lease_until`` in the same transaction: conductors side by side
    share the due releases, and one that dies while it works on a
    release leaves it due again at ``lease_until``. Most overdue first.
    """
    instance = models.Instance
    stmt = (
        sa.select(instance)
        .where(
            instance.release_state == models.RELEASE_PENDING,
            instance.release_next_at <= now,
        )
        .order_by(instance.release_next_at, instance.uuid)
        .limit(limit)
    )
    return _claim(
        context.session, instance, stmt, {"release_next_at": lease_until}
    )


@context_manager.writer
def instance_release_defer(
    context, instance_uuid, attempts, next_attempt_at, error
):
    """A try of a pending release failed: count it, say why, and when
    the next one is due. Only if nobody counted this try already (the
    release is still pending after ``attempts`` tries). True if so."""
    instance = models.Instance
    return _conditional_update(
        context.session,
        instance,
        instance_uuid,
        (
            instance.release_state == models.RELEASE_PENDING,
            instance.release_attempts == attempts,
        ),
        {
            "release_attempts": attempts + 1,
            "release_next_at": next_attempt_at,
            "release_error": error,
            "updated_at": models.utcnow(),
        },
    )


@context_manager.writer
def instance_release_finish(context, instance_uuid, state, error=None):
    """End a pending release: ``done``, or ``abandoned`` by an operator
    (``error`` says why). True if it was pending."""
    _check_choice(
        "release state",
        state,
        (models.RELEASE_DONE, models.RELEASE_ABANDONED),
    )
    instance = models.Instance
    return _conditional_update(
        context.session,
        instance,
        instance_uuid,
        (instance.release_state == models.RELEASE_PENDING,),
        {
            "release_state": state,
            "release_next_at": None,
            "release_error": error,
            "updated_at": models.utcnow(),
        },
    )


@context_manager.writer
def instance_release_retry_now(context, instance_uuid, now):
    """An operator asks for the next try of a pending release at once.
    True if it was pending."""
    instance = models.Instance
    return _conditional_update(
        context.session,
        instance,
        instance_uuid,
        (instance.release_state == models.RELEASE_PENDING,),
        {"release_next_at": now, "updated_at": models.utcnow()},
    )


@context_manager.writer
def instance_release_retry_all(context, now):
    """Make every pending release due at ``now`` (an agent came up);
    returns how many."""
    instance = models.Instance
    result = context.session.execute(
        sa.update(instance)
        .where(
            instance.release_state == models.RELEASE_PENDING,
            instance.release_next_at > now,
        )
        .values(release_next_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


@context_manager.reader
def instance_list_releases(context, states=(models.RELEASE_PENDING,)):
    """Instances whose release is in one of ``states``, most overdue
    first (the operators' view)."""
    instance = models.Instance
    stmt = (
        sa.select(instance)
        .where(instance.release_state.in_(list(states)))
        .order_by(instance.release_next_at, instance.uuid)
    )
    return list(context.session.execute(stmt).scalars())


# Quotas (snapmanager_nova/quota.py applies them)

# The snapshots a quota counts: those that exist or are on their way.
# Failed ones hold no finished copy, and deleted ones none at all; a
# scheduled snapshot the quota refused is recorded as failed, so it must
# not count against the quota that refused it.
QUOTA_COUNTED_STATUSES = (
    models.SNAPSHOT_CREATING,
    models.SNAPSHOT_AVAILABLE,
    models.SNAPSHOT_DELETING,
)


@context_manager.reader
def project_quota_get_all(context, project_id):
    """The project's overridden limits, as ``{resource: hard_limit}``."""
    quota = models.ProjectQuota
    stmt = sa.select(quota.resource, quota.hard_limit).where(
        quota.project_id == project_id
    )
    return dict(context.session.execute(stmt).all())


@context_manager.reader
def project_quota_get_many(context, project_ids):
    """:func:`project_quota_get_all` of several projects in one query:
    ``{project_id: {resource: hard_limit}}``, only those with any."""
    if not project_ids:
        return {}
    quota = models.ProjectQuota
    stmt = sa.select(quota.project_id, quota.resource, quota.hard_limit).where(
        quota.project_id.in_(list(project_ids))
    )
    found = collections.defaultdict(dict)
    for project_id, resource, hard_limit in context.session.execute(stmt):
        found[project_id][resource] = hard_limit
    return dict(found)


@context_manager.writer
def project_quota_set(context, project_id, limits):
    """Record the limits ``{resource: hard_limit}`` of a project; the
    project's other overrides stay."""
    now = models.utcnow()
    for resource, hard_limit in limits.items():
        _upsert(
            context.session,
            models.ProjectQuota,
            {
                "project_id": project_id,
                "resource": resource,
                "hard_limit": hard_limit,
                "created_at": now,
            },
            ["project_id", "resource"],
            {"hard_limit": hard_limit, "updated_at": now},
        )


@context_manager.writer
def project_quota_delete_all(context, project_id):
    """Drop the project's overrides: its defaults apply again."""
    quota = models.ProjectQuota
    context.session.execute(
        sa.delete(quota).where(quota.project_id == project_id)
    )


@context_manager.reader
def snapshot_usage(context, project_id):
    """``(count, bytes)`` of the project's snapshots a quota counts.

    Bytes are the sizes the agents reported; a snapshot whose backend
    could not say counts as 0.
    """
    snapshot = models.Snapshot
    stmt = sa.select(
        sa.func.count(snapshot.id),
        sa.func.coalesce(sa.func.sum(snapshot.size_bytes), 0),
    ).where(
        snapshot.project_id == project_id,
        snapshot.status.in_(QUOTA_COUNTED_STATUSES),
    )
    count, size = context.session.execute(stmt).one()
    return int(count), int(size)


@context_manager.reader
def snapshot_usage_many(context, project_ids):
    """:func:`snapshot_usage` of several projects in one query:
    ``{project_id: (count, bytes)}``, (0, 0) for a project with none."""
    if not project_ids:
        return {}
    snapshot = models.Snapshot
    stmt = (
        sa.select(
            snapshot.project_id,
            sa.func.count(snapshot.id),
            sa.func.coalesce(sa.func.sum(snapshot.size_bytes), 0),
        )
        .where(
            snapshot.project_id.in_(list(project_ids)),
            snapshot.status.in_(QUOTA_COUNTED_STATUSES),
        )
        .group_by(snapshot.project_id)
    )
    usage = dict.fromkeys(project_ids, (0, 0))
    for project_id, count, size in context.session.execute(stmt):
        usage[project_id] = (int(count), int(size))
    return usage


@context_manager.reader
def snapshot_on_demand_since(context, instance_uuid, since):
    """``(count, oldest created_at)`` of the snapshots taken on request
    of an instance since ``since``, whatever became of them (deleting
    one must not make room for another).

    Counted by their operations: only a snapshot taken on request has
    one (a scheduled snapshot whose schedule was deleted has none).
    """
    operation = models.Operation
    stmt = sa.select(
        sa.func.count(operation.id), sa.func.min(operation.created_at)
    ).where(
        operation.instance_uuid == instance_uuid,
        operation.type == "snapshot",
        operation.created_at >= since,
    )
    count, oldest = context.session.execute(stmt).one()
    if oldest is not None and oldest.tzinfo is None:
        # An aggregate is not typed by the column: make it UTC as the
        # column's own values are.
        oldest = oldest.replace(tzinfo=datetime.UTC)
    return int(count), oldest
