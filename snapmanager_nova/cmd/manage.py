"""snapmanager-manage: database migrations and operator tools.

Sub-commands follow nova-manage's ``CATEGORY ACTION`` shape:

    snapmanager-manage db sync [--revision REV]
    snapmanager-manage db version
    snapmanager-manage schedule check SPEC [--timezone TZ] [--from ISO8601]
                                           [--count N]
    snapmanager-manage freshness check [--grace SECONDS] [--project ID]
    snapmanager-manage release list [--all]
    snapmanager-manage release retry SERVER_ID
    snapmanager-manage release abandon SERVER_ID --reason TEXT
"""

import datetime
import sys

from oslo_config import cfg

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import schedule
from snapmanager_nova import service

CONF = sm_conf.CONF


def _db_sync():
    from snapmanager_nova.db import migration

    migration.upgrade(CONF.command.revision)
    print(f"database at revision {migration.version()}")
    return 0


def _db_version():
    from snapmanager_nova.db import migration

    print(migration.version() or "none")
    return 0


def _schedule_check():
    args = CONF.command
    try:
        spec = schedule.parse_spec(args.spec, timezone=args.timezone)
        start = _parse_from(args.from_, spec.tz)
    except schedule.SpecError as exc:
        print(f"snapmanager-manage: {exc}", file=sys.stderr)
        return 2
    for run in spec.runs(after=start, count=args.count):
        print(run.astimezone(spec.tz).isoformat())
    return 0


def _parse_from(text, tz):
    if text is None:
        return datetime.datetime.now(datetime.UTC)
    try:
        start = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise schedule.SpecError(
            "from", f"{text!r} is not an ISO 8601 date-time"
        ) from None
    # A time without an offset is read in the spec's timezone, as the
    # operator would read the printed runs.
    return start if start.tzinfo else start.replace(tzinfo=tz)


def _freshness_check():
    """Print the stale servers; exit 1 if there is one (doc/source/
    freshness.rst), so a monitoring system can call it."""
    from snapmanager_nova import context
    from snapmanager_nova import freshness
    from snapmanager_nova.db import api as db_api

    args = CONF.command
    grace = CONF.freshness.grace if args.grace is None else args.grace
    ctx = context.get_admin_context()
    stale = freshness.find_stale(
        ctx,
        datetime.datetime.now(datetime.UTC),
        datetime.timedelta(seconds=grace),
        project_id=args.project,
    )
    for server in stale:
        for late in server.schedules:
            newest = late.newest.isoformat() if late.newest else "none"
            print(
                f"STALE server {server.server_id} project "
                f"{server.project_id} schedule {late.schedule.id} "
                f"{late.schedule.spec} {late.schedule.timezone}: newest "
                f"snapshot {newest}, expected by "
                f"{late.lateness.expected_by.isoformat()}, late by "
                f"{int(late.lateness.late_by.total_seconds())} s"
            )
    # A deleted server whose storage is still owed a release is a
    # problem of the same kind: snapshots Snapmanager should have dealt
    # with and has not.
    pending = [
        row
        for row in db_api.instance_list_releases(ctx)
        if args.project is None or row.project_id == args.project
    ]
    for row in pending:
        print(f"RELEASE PENDING {_release_line(row)}")
    if pending:
        print(f"{len(pending)} deleted server(s) with a release pending")
    if stale:
        print(f"{len(stale)} stale server(s) (grace {grace} s)")
    if stale or pending:
        return 1
    print(f"OK: no stale server (grace {grace} s)")
    return 0


def _release_line(row):
    when = row.release_next_at.isoformat() if row.release_next_at else "-"
    return (
        f"server {row.uuid} project {row.project_id} deleted "
        f"{row.deleted_at.isoformat()} tries {row.release_attempts} next "
        f"try {when}: {row.release_error or 'not tried yet'}"
    )


def _release_list():
    """The deleted servers whose storage release is pending (with
    ``--all``, also those given up); exit 1 if one is pending."""
    from snapmanager_nova import context
    from snapmanager_nova.db import api as db_api
    from snapmanager_nova.db import models

    states = [models.RELEASE_PENDING]
    if CONF.command.all:
        states.append(models.RELEASE_ABANDONED)
    rows = db_api.instance_list_releases(context.get_admin_context(), states)
    for row in rows:
        print(f"{row.release_state.upper()} {_release_line(row)}")
    pending = [r for r in rows if r.release_state == models.RELEASE_PENDING]
    print(f"{len(pending)} release(s) pending")
    return 1 if pending else 0


def _release_change(change, done):
    """Apply ``change(context, server)`` (a DB API call, True if the
    server's release was pending) and say so."""
    from snapmanager_nova import context

    server = CONF.command.server
    if not change(context.get_admin_context(), server):
        print(f"server {server}: no release pending", file=sys.stderr)
        return 2
    print(f"server {server}: {done}")
    return 0


def _release_retry():
    """Have the next try of a pending release made at once."""
    from snapmanager_nova.db import api as db_api

    now = datetime.datetime.now(datetime.UTC)
    return _release_change(
        lambda ctx, server: db_api.instance_release_retry_now(
            ctx, server, now
        ),
        "next try due now",
    )


def _release_abandon():
    """Give a pending release up: nothing will try it again, and the
    snapshots and images it did not release are the operator's to
    remove (the reason is kept with the row)."""
    from snapmanager_nova.db import api as db_api
    from snapmanager_nova.db import models

    error = f"given up by an operator: {CONF.command.reason}"
    return _release_change(
        lambda ctx, server: db_api.instance_release_finish(
            ctx, server, models.RELEASE_ABANDONED, error=error
        ),
        "release given up",
    )


def _service_delete():
    """Forget a compute agent taken out of service for good: the
    file-backed snapshots its host's store holds are shown unavailable
    (doc/source/multihost.rst) until an agent reports in there again."""
    from snapmanager_nova import context
    from snapmanager_nova.db import api as db_api

    host = CONF.command.service_host
    if not db_api.service_delete(
        context.get_admin_context(), db_api.COMPUTE_BINARY, host
    ):
        print(f"no compute agent recorded on {host}", file=sys.stderr)
        return 2
    print(f"compute agent on {host} forgotten")
    return 0


def _not_negative(text):
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _positive(text):
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _add_command_parsers(subparsers):
    db = subparsers.add_parser("db", help="Snapmanager's own database.")
    db_actions = db.add_subparsers(dest="action", required=True)
    sync = db_actions.add_parser("sync", help="Upgrade the schema.")
    sync.add_argument(
        "--revision", default="head", help="Target revision (default head)."
    )
    sync.set_defaults(func=_db_sync)
    version = db_actions.add_parser("version", help="Print the revision.")
    version.set_defaults(func=_db_version)

    sched = subparsers.add_parser(
        "schedule", help="Try schedule specs before using them."
    )
    sched_actions = sched.add_subparsers(dest="action", required=True)
    check = sched_actions.add_parser(
        "check",
        help="Print the next run times of SPEC, one per line, in ISO 8601 "
        "with the UTC offset, in the spec's timezone.",
    )
    check.add_argument("spec", help="A schedule spec, e.g. daily@02:30.")
    check.add_argument("--timezone", default="UTC", help="IANA timezone.")
    check.add_argument(
        "--from",
        dest="from_",
        help="Start after this ISO 8601 time (default: now).",
    )
    check.add_argument(
        "--count", type=_positive, default=5, help="How many runs to print."
    )
    check.set_defaults(func=_schedule_check)

    fresh = subparsers.add_parser(
        "freshness", help="Servers whose scheduled snapshots are late."
    )
    fresh_actions = fresh.add_subparsers(dest="action", required=True)
    fresh_check = fresh_actions.add_parser(
        "check",
        help="Print the servers whose newest available scheduled snapshot "
        "is older than its schedule allows; exit 1 if there is one, 0 "
        "otherwise. Reads the database directly.",
    )
    fresh_check.add_argument(
        "--grace",
        type=_not_negative,
        help="Seconds a run has to produce its snapshot (default: "
        "[freshness] grace).",
    )
    fresh_check.add_argument(
        "--project", help="Only this project's servers (an ID)."
    )
    fresh_check.set_defaults(func=_freshness_check)

    release = subparsers.add_parser(
        "release",
        help="The storage release owed to servers Nova deleted "
        "(doc/source/conductor.rst).",
    )
    release_actions = release.add_subparsers(dest="action", required=True)
    release_list = release_actions.add_parser(
        "list",
        help="Print the deleted servers whose release is pending, with "
        "why the last try failed; exit 1 if there is one.",
    )
    release_list.add_argument(
        "--all", action="store_true", help="Also the releases given up."
    )
    release_list.set_defaults(func=_release_list)
    retry = release_actions.add_parser(
        "retry", help="Make the next try of a pending release now."
    )
    retry.add_argument("server", help="The deleted server's ID.")
    retry.set_defaults(func=_release_retry)
    abandon = release_actions.add_parser(
        "abandon",
        help="Give a pending release up; what it did not release is left "
        "for the operator to remove.",
    )
    abandon.add_argument("server", help="The deleted server's ID.")
    abandon.add_argument(
        "--reason", required=True, help="Why, kept with the server's row."
    )
    abandon.set_defaults(func=_release_abandon)

    services = subparsers.add_parser(
        "service", help="Snapmanager's services as their heartbeats record."
    )
    service_actions = services.add_subparsers(dest="action", required=True)
    delete = service_actions.add_parser(
        "delete",
        help="Forget the compute agent of a host taken out of service for "
        "good; the file-backed snapshots stored there are then shown "
        "unavailable (doc/source/multihost.rst).",
    )
    # Not "host": the sub-command's arguments share CONF's namespace.
    delete.add_argument(
        "service_host",
        metavar="HOST",
        help="The agent's host, as it reported.",
    )
    delete.set_defaults(func=_service_delete)


def main(argv=None):
    CONF.register_cli_opt(
        cfg.SubCommandOpt(
            "command",
            title="Commands",
            handler=_add_command_parsers,
            help="Available categories",
        )
    )
    service.prepare(argv, default_config_files=None)
    return CONF.command.func()


if __name__ == "__main__":
    sys.exit(main())
