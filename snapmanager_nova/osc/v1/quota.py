"""``openstack server snapshot quota show|set|delete``: a project's
quotas (``/v1/quota-sets/{project_id}``, API microversion 1.1).

Anyone may show their own project's; setting and deleting are for
admins, as with ``openstack quota set``.
"""

from osc_lib import exceptions
from osc_lib.command import command

from snapmanager_nova.osc.v1 import common

# The API's resources, as the columns and options name them.
RESOURCES = (
    ("snapshots", "Snapshots", "--snapshots"),
    ("snapshot_gigabytes", "Snapshot Gigabytes", "--gigabytes"),
)


def _add_project(parser, required):
    parser.add_argument(
        "project",
        metavar="<project>",
        nargs=None if required else "?",
        help="Project (name or ID)"
        + ("" if required else "; default: the token's project"),
    )
    parser.add_argument(
        "--project-domain",
        metavar="<project-domain>",
        help="Domain the project belongs to (name or ID), when project "
        "names collide",
    )


def _project_id(app, parsed_args):
    return common.find_project_id(
        app.client_manager, parsed_args.project, parsed_args.project_domain
    )


def _show(quota_set):
    """A row per resource: its limit, what is in use, the default."""
    return (
        ("Resource", "Limit", "In Use", "Default"),
        [
            (
                name,
                quota_set[name]["limit"],
                quota_set[name]["in_use"],
                quota_set[name]["default"],
            )
            for name, _, _ in RESOURCES
        ],
    )


class ShowQuota(command.Lister):
    _description = (
        "Show a project's snapshot quotas and what it uses of them "
        "(-1 is unlimited)"
    )

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _add_project(parser, required=False)
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.snapmanager
        return _show(client.show_quotas(_project_id(self.app, parsed_args)))


class SetQuota(command.Lister):
    _description = (
        "Set a project's snapshot quotas, overriding the defaults "
        "(admin; -1 is unlimited)"
    )

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _add_project(parser, required=True)
        for name, title, option in RESOURCES:
            parser.add_argument(
                option,
                dest=name,
                metavar="<limit>",
                type=int,
                help=f"{title} the project may have",
            )
        return parser

    def take_action(self, parsed_args):
        limits = {
            name: getattr(parsed_args, name)
            for name, _, _ in RESOURCES
            if getattr(parsed_args, name) is not None
        }
        if not limits:
            raise exceptions.CommandError(
                "Give at least one of "
                + ", ".join(option for _, _, option in RESOURCES)
            )
        client = self.app.client_manager.snapmanager
        project_id = _project_id(self.app, parsed_args)
        return _show(client.set_quotas(project_id, limits))


class DeleteQuota(command.Command):
    _description = (
        "Drop a project's snapshot quotas: the defaults apply again (admin)"
    )

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _add_project(parser, required=True)
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.snapmanager
        client.delete_quotas(_project_id(self.app, parsed_args))
