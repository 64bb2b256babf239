"""``openstack server snapshot freshness list``: the servers whose
scheduled snapshots are late (``GET /v1/stale-servers``, admin)."""

from cliff import columns as cliff_columns
from osc_lib import utils
from osc_lib.cli import pagination
from osc_lib.command import command

from snapmanager_nova.osc.v1 import common

COLUMNS = (
    "Server ID",
    "Project ID",
    "Schedule ID",
    "Spec",
    "Timezone",
    "Newest Snapshot At",
    "Expected Window",
    "Expected By",
    "Late By",
)


class DurationColumn(cliff_columns.FormattableColumn):
    """Seconds: ``1h30m`` in a table, the number in JSON and YAML."""

    def human_readable(self):
        return common.format_duration(self._value)

    def machine_readable(self):
        return self._value


def rows(stale_servers):
    """A row per late schedule of each stale server, the API's
    ``stale_servers`` flattened."""
    for server in stale_servers:
        for schedule in server["schedules"]:
            yield {
                "server_id": server["server_id"],
                "project_id": server["project_id"],
                "schedule_id": schedule["id"],
                "spec": schedule["spec"],
                "timezone": schedule["timezone"],
                "newest_snapshot_at": schedule["newest_snapshot_at"],
                "expected_window": schedule["expected_window"],
                "expected_by": schedule["expected_by"],
                "late_by": schedule["late_by"],
            }


class ListStaleServers(command.Lister):
    _description = (
        "List the servers whose newest available scheduled snapshot is "
        "older than the schedule allows, a row per late schedule (admin)"
    )

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            "--project",
            metavar="<project>",
            help="Only this project's servers (name or ID; default: every "
            "project's)",
        )
        parser.add_argument(
            "--project-domain",
            metavar="<project-domain>",
            help="Domain the project belongs to (name or ID), when project "
            "names collide",
        )
        parser.add_argument(
            "--grace",
            metavar="<seconds>",
            type=int,
            help="Seconds a scheduled run has to produce its snapshot "
            "(default: the API's [freshness] grace)",
        )
        pagination.add_marker_pagination_option_to_parser(parser)
        return parser

    def take_action(self, parsed_args):
        project_id = None
        if parsed_args.project is not None:
            project_id = common.find_project_id(
                self.app.client_manager,
                parsed_args.project,
                parsed_args.project_domain,
            )
        stale = self.app.client_manager.snapmanager.list_stale_servers(
            project_id=project_id,
            grace=parsed_args.grace,
            limit=parsed_args.limit,
            marker=parsed_args.marker,
        )
        return COLUMNS, (
            utils.get_dict_properties(
                row, COLUMNS, formatters={"Late By": DurationColumn}
            )
            for row in rows(stale)
        )
