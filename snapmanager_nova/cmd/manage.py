"""snapmanager-manage: database migrations and operator tools.

Sub-commands follow nova-manage's ``CATEGORY ACTION`` shape:

    snapmanager-manage db sync [--revision REV]
    snapmanager-manage db version
    snapmanager-manage schedule check SPEC [--timezone TZ] [--from ISO8601]
                                           [--count N]
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
