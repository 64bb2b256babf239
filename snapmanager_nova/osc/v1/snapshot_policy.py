"""``openstack server snapshot-policy ...``: a server's snapshot policy
and a project's default policy.

The API replaces a policy's schedules as a whole (PUT); these commands
read the current policy first so that a command changes only what its
options name: ``set --add`` keeps the other schedules, ``set
--keep-after-delete`` alone keeps all of them, and ``unset --schedule``
removes one. The argument-to-body mapping is in pure functions below so
that it is tested without a cloud.
"""

from osc_lib import exceptions
from osc_lib import utils
from osc_lib.cli import pagination
from osc_lib.command import command

from snapmanager_nova import schedule as schedule_engine
from snapmanager_nova.osc.v1 import common

# --option: the spec it stands for (doc/source/schedules.rst). The value
# is passed on as written: the API validates it and its 400 names the
# field and quotes the value.
SCHEDULE_SHORTHANDS = (
    ("daily", "<HH:MM>", "daily@{}", "Every day at HH:MM"),
    ("weekly", "<DAY@HH:MM>", "weekly@{}", "Every week on DAY (mon..sun)"),
    (
        "monthly",
        "<DOM@HH:MM>",
        "monthly@{}",
        "Every month on day DOM (1-31; the month's last day when it is "
        "shorter)",
    ),
    (
        "every",
        "<Nh[@HH:MM]>",
        "every@{}",
        "Every N hours (N dividing 24), at HH:MM plus multiples of N",
    ),
    (
        "spec",
        "<spec>",
        "{}",
        "Any spec: the above, NetApp style COUNT[@DAYS][@HOURS] or "
        "cron:MIN HOUR DOM MON DOW",
    ),
)

# --option: the retention key it sets.
RETENTION_OPTIONS = (
    ("keep", "keep_count", "Keep the newest N snapshots (N >= 1)"),
    ("keep_hourly", "hourly", "Keep the newest of each of N hours"),
    ("keep_daily", "daily", "Keep the newest of each of N days"),
    ("keep_weekly", "weekly", "Keep the newest of each of N weeks"),
    ("keep_monthly", "monthly", "Keep the newest of each of N months"),
    ("keep_yearly", "yearly", "Keep the newest of each of N years"),
)

# The options that describe the one schedule a command adds; they need
# one of SCHEDULE_SHORTHANDS.
_SCHEDULE_DETAILS = (
    "timezone",
    "max_age",
    "enabled",
    *(dest for dest, _key, _help in RETENTION_OPTIONS),
)


def _option(dest):
    return "--" + dest.replace("_", "-")


def add_schedule_options(parser, add_help):
    """The options that describe one schedule, and ``--add``."""
    group = parser.add_argument_group(
        "schedule",
        "One schedule (doc/source/schedules.rst has the grammar). It "
        "replaces the schedules there are, or with --add joins them.",
    )
    kind = group.add_mutually_exclusive_group()
    for dest, metavar, _template, help_text in SCHEDULE_SHORTHANDS:
        kind.add_argument(
            _option(dest), dest=dest, metavar=metavar, help=help_text
        )
    group.add_argument(
        "--timezone",
        metavar="<tz>",
        help="IANA timezone whose wall clock the schedule follows "
        "(default: UTC)",
    )
    group.add_argument(
        "--add",
        action="store_true",
        help=add_help,
    )
    retention = parser.add_argument_group(
        "retention",
        "Which of the schedule's snapshots to keep; without any, all. "
        "The newest good one is never deleted.",
    )
    for dest, _key, help_text in RETENTION_OPTIONS:
        retention.add_argument(
            _option(dest), dest=dest, metavar="<N>", type=int, help=help_text
        )
    retention.add_argument(
        "--max-age",
        metavar="<duration>",
        help="Delete snapshots older than this: seconds, or w/d/h/m/s "
        "parts such as 30d or 1d12h",
    )
    enabled = group.add_mutually_exclusive_group()
    enabled.add_argument(
        "--enable",
        dest="enabled",
        action="store_const",
        const=True,
        help="The schedule takes snapshots (default)",
    )
    enabled.add_argument(
        "--disable",
        dest="enabled",
        action="store_const",
        const=False,
        help="Keep the schedule but take no snapshots with it",
    )


def schedule_from_args(args):
    """The schedule the options describe, as the API takes it, or None.

    :raises CommandError: a detail (--keep, --timezone...) without a
        schedule to apply it to.
    """
    spec = None
    for dest, _metavar, template, _help in SCHEDULE_SHORTHANDS:
        value = getattr(args, dest)
        if value is not None:
            spec = template.format(value)
    if spec is None:
        given = [
            _option(dest)
            for dest in _SCHEDULE_DETAILS
            if getattr(args, dest) is not None
        ]
        if args.add or given:
            named = ", ".join((["--add"] if args.add else []) + given)
            raise exceptions.CommandError(
                f"{named}: needs a schedule (--daily, --weekly, --monthly, "
                "--every or --spec)"
            )
        return None
    entry = {"spec": spec}
    if args.timezone is not None:
        entry["timezone"] = args.timezone
    retention = {
        key: getattr(args, dest)
        for dest, key, _help in RETENTION_OPTIONS
        if getattr(args, dest) is not None
    }
    if args.max_age is not None:
        # Whole seconds go as a number; the API parses durations itself.
        max_age = args.max_age.strip()
        retention["max_age"] = int(max_age) if max_age.isdigit() else max_age
    if retention:
        entry["retention"] = retention
    if args.enabled is not None:
        entry["enabled"] = args.enabled
    return entry


def as_request(schedule):
    """A stored schedule as a PUT sends it back unchanged."""
    return {
        "spec": schedule["spec"],
        "timezone": schedule["timezone"],
        "retention": dict(schedule["retention"]),
        "enabled": schedule["enabled"],
    }


def schedule_key(spec, timezone):
    """(canonical spec, canonical timezone), or None if they don't parse.

    The API identifies a schedule by these; an invalid one matches
    nothing here and is refused by the API with its own message.
    """
    try:
        parsed = schedule_engine.parse_spec(spec, timezone or "UTC")
    except schedule_engine.SpecError:
        return None
    return (parsed.text, parsed.timezone)


def merge_schedules(current, new, add):
    """The schedules to send: ``new`` alone, or with ``add`` joined to
    ``current`` (replacing one with the same spec and timezone)."""
    if not add:
        return [new]
    key = schedule_key(new["spec"], new.get("timezone"))
    kept = [
        as_request(schedule)
        for schedule in current
        if key is None or (schedule["spec"], schedule["timezone"]) != key
    ]
    return kept + [new]


def remove_schedules(current, selectors):
    """``current`` without the schedules named by id or spec.

    :raises CommandError: naming a selector that matches none.
    """
    remaining = list(current)
    for selector in selectors:
        key = schedule_key(selector, "UTC")
        spec = key[0] if key else selector

        def named(schedule, selector=selector, spec=spec):
            return schedule["id"] == selector or schedule["spec"] == spec

        if not any(named(schedule) for schedule in remaining):
            raise exceptions.CommandError(
                f"--schedule: no schedule with the ID or spec '{selector}'"
            )
        remaining = [s for s in remaining if not named(s)]
    return [as_request(schedule) for schedule in remaining]


def policy_body(args, current):
    """The PUT body for ``server snapshot-policy set``.

    :param current: the server's policy now, or None.
    """
    new = schedule_from_args(args)
    if new is not None and args.use_project_default:
        raise exceptions.CommandError(
            "--use-project-default: the server's own schedules are "
            "dropped, so give no schedule with it"
        )
    current_schedules = current["schedules"] if current else []
    if new is not None:
        schedules = merge_schedules(current_schedules, new, args.add)
    elif args.use_project_default:
        schedules = []
    else:
        schedules = [as_request(s) for s in current_schedules]
    body = {"schedules": schedules}
    if args.keep_after_delete is not None:
        body["keep_after_delete"] = args.keep_after_delete
    elif current is not None:
        body["keep_after_delete"] = current["keep_after_delete"]
    return body


def default_policy_body(args, current):
    """The PUT body for ``server snapshot-policy default set``."""
    new = schedule_from_args(args)
    if new is None:
        raise exceptions.CommandError(
            "A project default needs a schedule (--daily, --weekly, "
            "--monthly, --every or --spec)"
        )
    current_schedules = current["schedules"] if current else []
    return {"schedules": merge_schedules(current_schedules, new, args.add)}


POLICY_FIELDS = (
    "server_id",
    "server_name",
    "project_id",
    "schedules",
    "uses_project_default",
    "keep_after_delete",
)
DEFAULT_POLICY_FIELDS = ("project_id", "schedules")
_FORMATTERS = {"schedules": common.SchedulesColumn}


def _show(item, fields):
    return fields, utils.get_dict_properties(
        item, fields, formatters=_FORMATTERS
    )


def _add_server_argument(parser):
    parser.add_argument(
        "server", metavar="<server>", help="Server (name or ID)"
    )


def _add_project_options(parser):
    parser.add_argument(
        "--project",
        metavar="<project>",
        help="Project (name or ID) whose default it is (default: the "
        "current project; another project's needs the admin role)",
    )
    parser.add_argument(
        "--project-domain",
        metavar="<project-domain>",
        help="Domain the project belongs to (name or ID), when project "
        "names collide",
    )


def _add_schedule_selector(parser, what):
    parser.add_argument(
        "--schedule",
        metavar="<schedule>",
        action="append",
        default=[],
        help=f"Remove only this schedule (ID or spec) from {what}; "
        "repeat to remove several",
    )


class _PolicyCommand:
    """Lookups shared by the commands on one server's policy."""

    def server_id(self, parsed_args):
        return common.find_server_id(
            self.app.client_manager.compute, parsed_args.server
        )

    @property
    def snapmanager(self):
        return self.app.client_manager.snapmanager


class SetSnapshotPolicy(_PolicyCommand, command.Command):
    _description = (
        "Switch on snapshots for a server, or change its snapshot policy"
    )

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _add_server_argument(parser)
        add_schedule_options(
            parser,
            add_help="Add the schedule to the server's others instead of "
            "replacing them (one with the same spec and timezone is "
            "updated)",
        )
        parser.add_argument(
            "--use-project-default",
            action="store_true",
            help="Drop the server's own schedules: its project's default "
            "schedules take its snapshots",
        )
        keep = parser.add_mutually_exclusive_group()
        keep.add_argument(
            "--keep-after-delete",
            dest="keep_after_delete",
            action="store_const",
            const=True,
            help="Keep the snapshots when the server is deleted",
        )
        keep.add_argument(
            "--no-keep-after-delete",
            dest="keep_after_delete",
            action="store_const",
            const=False,
            help="Delete the snapshots with the server (default)",
        )
        return parser

    def take_action(self, parsed_args):
        # Options are checked before any request: a typo costs no
        # round trip to Nova.
        schedule_from_args(parsed_args)
        server_id = self.server_id(parsed_args)
        current = self.snapmanager.find_policy(server_id)
        body = policy_body(parsed_args, current)
        self.snapmanager.set_policy(server_id, body)


class UnsetSnapshotPolicy(_PolicyCommand, command.Command):
    _description = (
        "Switch off snapshots for a server (its snapshots stay), or "
        "remove some of its schedules"
    )

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _add_server_argument(parser)
        _add_schedule_selector(parser, "the server's policy")
        return parser

    def take_action(self, parsed_args):
        server_id = self.server_id(parsed_args)
        if not parsed_args.schedule:
            self.snapmanager.unset_policy(server_id)
            return
        current = self.snapmanager.show_policy(server_id)
        schedules = remove_schedules(
            current["schedules"], parsed_args.schedule
        )
        self.snapmanager.set_policy(
            server_id,
            {
                "schedules": schedules,
                "keep_after_delete": current["keep_after_delete"],
            },
        )


class ShowSnapshotPolicy(_PolicyCommand, command.ShowOne):
    _description = "Show a server's snapshot policy"

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _add_server_argument(parser)
        return parser

    def take_action(self, parsed_args):
        policy = self.snapmanager.show_policy(self.server_id(parsed_args))
        return _show(policy, POLICY_FIELDS)


class ListSnapshotPolicy(command.Lister):
    _description = "List the servers that have a snapshot policy"

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            "--all-projects",
            action="store_true",
            help="Every project's servers (admin only)",
        )
        parser.add_argument(
            "--long",
            action="store_true",
            help="Show each schedule's retention, next run and ID",
        )
        pagination.add_marker_pagination_option_to_parser(parser)
        return parser

    def take_action(self, parsed_args):
        policies = self.app.client_manager.snapmanager.list_policies(
            all_projects=parsed_args.all_projects,
            limit=parsed_args.limit,
            marker=parsed_args.marker,
        )
        columns = ["Server ID", "Server Name"]
        if parsed_args.all_projects:
            columns.append("Project ID")
        columns += ["Schedules", "Uses Project Default", "Keep After Delete"]
        schedules = (
            common.SchedulesColumn
            if parsed_args.long
            else common.BriefSchedulesColumn
        )
        return columns, (
            utils.get_dict_properties(
                policy, columns, formatters={"Schedules": schedules}
            )
            for policy in policies
        )


class _DefaultPolicyCommand:
    def project_id(self, parsed_args):
        return common.find_project_id(
            self.app.client_manager,
            parsed_args.project,
            parsed_args.project_domain,
        )

    @property
    def snapmanager(self):
        return self.app.client_manager.snapmanager


class SetDefaultSnapshotPolicy(_DefaultPolicyCommand, command.Command):
    _description = (
        "Set a project's default snapshot schedules: they snapshot the "
        "project's servers that have a policy but no schedule of their own"
    )

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _add_project_options(parser)
        add_schedule_options(
            parser,
            add_help="Add the schedule to the project's other defaults "
            "instead of replacing them (one with the same spec and "
            "timezone is updated)",
        )
        return parser

    def take_action(self, parsed_args):
        schedule_from_args(parsed_args)
        project_id = self.project_id(parsed_args)
        current = None
        if parsed_args.add:
            current = self.snapmanager.find_default_policy(project_id)
        body = default_policy_body(parsed_args, current)
        self.snapmanager.set_default_policy(project_id, body)


class UnsetDefaultSnapshotPolicy(_DefaultPolicyCommand, command.Command):
    _description = "Remove a project's default snapshot schedules"

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _add_project_options(parser)
        _add_schedule_selector(parser, "the project's defaults")
        return parser

    def take_action(self, parsed_args):
        project_id = self.project_id(parsed_args)
        if parsed_args.schedule:
            current = self.snapmanager.show_default_policy(project_id)
            schedules = remove_schedules(
                current["schedules"], parsed_args.schedule
            )
            if schedules:
                self.snapmanager.set_default_policy(
                    project_id, {"schedules": schedules}
                )
                return
        self.snapmanager.unset_default_policy(project_id)


class ShowDefaultSnapshotPolicy(_DefaultPolicyCommand, command.ShowOne):
    _description = "Show a project's default snapshot schedules"

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _add_project_options(parser)
        return parser

    def take_action(self, parsed_args):
        policy = self.snapmanager.show_default_policy(
            self.project_id(parsed_args)
        )
        return _show(policy, DEFAULT_POLICY_FIELDS)
