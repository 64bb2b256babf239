"""``openstack server snapshot ...``: list, take, show, delete and
restore snapshots, and follow their operations."""

import argparse
import logging

from osc_lib import exceptions
from osc_lib import utils
from osc_lib.cli import format_columns
from osc_lib.cli import pagination
from osc_lib.command import command

from snapmanager_nova.osc.v1 import client as sm_client
from snapmanager_nova.osc.v1 import common

LOG = logging.getLogger(__name__)

STATUSES = ("creating", "available", "error", "deleting", "deleted")
QUIESCE_MODES = ("prefer", "require", "skip")

SNAPSHOT_FIELDS = (
    "id",
    "server_id",
    "server_name",
    "project_id",
    "schedule_id",
    "status",
    # Why it is ``unavailable`` (its host is out of service for good).
    "unavailable_reason",
    "window_start",
    "backend",
    # Administrators only: the host whose store holds a file-backed one.
    "host",
    "disks",
    "size_bytes",
    "quiesced",
    "error",
    "created_at",
    "updated_at",
    "completed_at",
    "expires_at",
    "deleted_at",
)
OPERATION_FIELDS = (
    "id",
    "type",
    "server_id",
    "snapshot_id",
    "project_id",
    "state",
    "progress",
    "step",
    "error",
    "created_at",
    "updated_at",
    "finished_at",
)
LIST_COLUMNS = (
    "ID",
    "Server ID",
    # As Nova's own lists do; from Snapmanager's inventory, blank from an
    # API that does not send it.
    "Server Name",
    "Status",
    "Window Start",
    "Size Bytes",
    "Quiesced",
)
LONG_COLUMNS = (
    "Schedule ID",
    "Backend",
    # Blank for RBD snapshots and for callers not shown it.
    "Host",
    "Completed At",
    "Expires At",
    "Error",
)


class DisksColumn(format_columns.ListDictColumn):
    """A line per disk: its target and, once known, its size in bytes."""

    def human_readable(self):
        lines = []
        for disk in self._value or []:
            line = disk["target"] or "?"
            if disk["size"] is not None:
                line += f" {disk['size']} bytes"
            lines.append(line)
        return "\n".join(lines)


_FORMATTERS = {"disks": DisksColumn}


def show_snapshot(snapshot, operation=None):
    """ShowOne's (columns, data) for a snapshot, with the ID of the
    operation that follows it when there is one."""
    fields = SNAPSHOT_FIELDS
    item = dict(snapshot)
    if operation is not None:
        fields += ("operation_id",)
        item["operation_id"] = operation["id"]
    return fields, utils.get_dict_properties(
        item, fields, formatters=_FORMATTERS
    )


def show_operation(operation):
    return OPERATION_FIELDS, utils.get_dict_properties(
        operation, OPERATION_FIELDS
    )


def operation_poll(client, operation_id):
    def poll():
        return common.Progress.of_operation(
            client.show_operation(operation_id)
        )

    return poll


def snapshot_poll(client, operation_id, snapshot_id, done_status):
    """Progress of a snapshot taken now or deleted.

    The operation says it first; the snapshot's own status settles it
    too, since a conductor may record the agent's result on the snapshot
    and leave its operation pending (doc/source/api.rst, Operations).
    """
    follow_operation = operation_poll(client, operation_id)

    def poll():
        progress = follow_operation()
        if progress.finished:
            return progress
        try:
            snapshot = client.show_snapshot(snapshot_id)
        except sm_client.APIError as exc:
            if exc.code == 404 and done_status == "deleted":
                return common.Progress("succeeded", 100, "deleted")
            raise
        status = snapshot["status"]
        if status == done_status:
            return common.Progress("succeeded", 100, status)
        if status == "error":
            return common.Progress(
                "failed", progress.percent, status, snapshot["error"]
            )
        return common.Progress(
            progress.state, progress.percent, progress.step or status
        )

    return poll


def wait_or_fail(poll, what, stream, timeout, operation_id):
    """Wait with a progress display on ``stream`` (the app's stderr) for
    at most ``timeout`` seconds; a failure, or the deadline, is the
    command's error."""
    try:
        progress = common.wait(
            poll, common.ProgressDisplay(what, stream), timeout=timeout
        )
    except common.WaitTimeout as exc:
        raise common.WaitTimeout(
            f"{exc.progress.line(what)}, not finished after {timeout} s; "
            "it goes on. Follow it with 'openstack server snapshot "
            f"operation show {operation_id}'.",
            exc.progress,
        ) from None
    if progress.failed:
        raise exceptions.CommandError(
            f"{what} failed: {progress.error or 'no reason given'}"
        )
    return progress


class _WaitingShowOne(command.ShowOne):
    """A ShowOne whose --wait ends with its own exit status when its
    deadline passes (:data:`common.WAIT_TIMEOUT_EXIT`), so a script can
    tell work still going on from work that failed (1)."""

    def run(self, parsed_args):
        try:
            return super().run(parsed_args)
        except common.WaitTimeout as exc:
            self.app.stderr.write(f"{exc}\n")
            return common.WAIT_TIMEOUT_EXIT


def _add_wait(parser, what):
    parser.add_argument(
        "--wait",
        action="store_true",
        help=f"Wait until {what}, showing progress on stderr; exit "
        "non-zero if it fails (or, with status "
        f"{common.WAIT_TIMEOUT_EXIT}, has not finished by --wait-timeout)",
    )
    parser.add_argument(
        "--wait-timeout",
        metavar="<seconds>",
        type=_positive_seconds,
        default=common.DEFAULT_WAIT_TIMEOUT,
        help="How long --wait waits at most (default: "
        f"{common.DEFAULT_WAIT_TIMEOUT}); the work itself goes on",
    )


def _positive_seconds(text):
    try:
        seconds = int(text)
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of seconds (1 or more)"
        )
    return seconds


class ListSnapshot(command.Lister):
    _description = "List snapshots of a server, or of the current project"

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            "server",
            metavar="<server>",
            nargs="?",
            help="Only this server's snapshots (name or ID; the ID of a "
            "deleted server whose snapshots were kept works too)",
        )
        parser.add_argument(
            "--status",
            metavar="<status>",
            choices=STATUSES,
            help="Only snapshots in this status (one of "
            f"{', '.join(STATUSES)}); without it, deleted ones are left out",
        )
        parser.add_argument(
            "--long",
            action="store_true",
            help="Show schedule, backend, completion, expiry and error",
        )
        pagination.add_marker_pagination_option_to_parser(parser)
        return parser

    def take_action(self, parsed_args):
        server_id = None
        if parsed_args.server is not None:
            server_id = common.find_server_id(
                self.app.client_manager.compute,
                parsed_args.server,
                keep_unknown_uuid=True,
            )
        snapshots = self.app.client_manager.snapmanager.list_snapshots(
            server_id=server_id,
            status=parsed_args.status,
            limit=parsed_args.limit,
            marker=parsed_args.marker,
        )
        columns = LIST_COLUMNS
        if parsed_args.long:
            columns += LONG_COLUMNS
        return columns, (
            utils.get_dict_properties(snapshot, columns)
            for snapshot in snapshots
        )


class ShowSnapshot(command.ShowOne):
    _description = "Show a snapshot"

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            "snapshot", metavar="<snapshot>", help="Snapshot ID"
        )
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.snapmanager
        return show_snapshot(client.show_snapshot(parsed_args.snapshot))


class CreateSnapshot(_WaitingShowOne):
    _description = "Take a snapshot of a server now, outside its schedules"

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            "server", metavar="<server>", help="Server (name or ID)"
        )
        parser.add_argument(
            "--quiesce",
            choices=QUIESCE_MODES,
            help="Freeze the guest's filesystems through its agent: "
            "'prefer' when it can (default), 'require' or fail, 'skip'",
        )
        _add_wait(parser, "the snapshot is available")
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.snapmanager
        server_id = common.find_server_id(
            self.app.client_manager.compute, parsed_args.server
        )
        snapshot, operation = client.create_snapshot(
            server_id, parsed_args.quiesce
        )
        if parsed_args.wait:
            wait_or_fail(
                snapshot_poll(
                    client, operation["id"], snapshot["id"], "available"
                ),
                f"Snapshot {snapshot['id']} of server {parsed_args.server}",
                self.app.stderr,
                parsed_args.wait_timeout,
                operation["id"],
            )
            snapshot = client.show_snapshot(snapshot["id"])
        return show_snapshot(snapshot, operation)


class DeleteSnapshot(command.Command):
    _description = "Delete snapshots"

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            "snapshots",
            metavar="<snapshot>",
            nargs="+",
            help="Snapshot(s) to delete (ID)",
        )
        _add_wait(parser, "the snapshots are deleted")
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.snapmanager
        failures = 0
        started = []
        # All deletions are asked for first: the agents work on them
        # while the first one is waited for.
        for snapshot_id in parsed_args.snapshots:
            try:
                started.append(client.delete_snapshot(snapshot_id))
            except exceptions.CommandError as exc:
                failures += 1
                LOG.error("Failed to delete snapshot %s: %s", snapshot_id, exc)
        if parsed_args.wait:
            for snapshot, operation in started:
                try:
                    wait_or_fail(
                        snapshot_poll(
                            client, operation["id"], snapshot["id"], "deleted"
                        ),
                        f"Deletion of snapshot {snapshot['id']}",
                        self.app.stderr,
                        parsed_args.wait_timeout,
                        operation["id"],
                    )
                except exceptions.CommandError as exc:
                    failures += 1
                    LOG.error("%s", exc)
        if failures:
            total = len(parsed_args.snapshots)
            raise exceptions.CommandError(
                f"{failures} of {total} snapshots failed to delete."
            )


class RestoreSnapshot(_WaitingShowOne):
    _description = (
        "Restore a server's disks in place from a snapshot (the server is "
        "locked and stopped meanwhile, then started and unlocked)"
    )

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            "snapshot", metavar="<snapshot>", help="Snapshot ID"
        )
        _add_wait(parser, "the restore has finished")
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.snapmanager
        operation = client.restore_snapshot(parsed_args.snapshot)
        return follow_operation(
            self.app,
            operation,
            f"Restore from snapshot {parsed_args.snapshot}",
            parsed_args,
        )


def follow_operation(app, operation, what, parsed_args):
    """ShowOne's answer for an operation just started: as started, or
    with --wait as it finished."""
    if parsed_args.wait:
        client = app.client_manager.snapmanager
        wait_or_fail(
            operation_poll(client, operation["id"]),
            what,
            app.stderr,
            parsed_args.wait_timeout,
            operation["id"],
        )
        operation = client.show_operation(operation["id"])
    return show_operation(operation)


class ShowSnapshotOperation(command.ShowOne):
    _description = (
        "Show a snapshot operation (a snapshot taken now, a deletion or a "
        "restore) and its progress"
    )

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            "operation", metavar="<operation>", help="Operation ID"
        )
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.snapmanager
        return show_operation(client.show_operation(parsed_args.operation))


class _FailedRestoreAction(_WaitingShowOne):
    """An action on a failed restore's operation (API microversion 1.3);
    the answer is the operation that takes the server over."""

    # What it asks the API for, and what --wait waits for.
    action = None
    until = None

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            "operation",
            metavar="<operation>",
            help="The failed restore's operation ID",
        )
        _add_wait(parser, self.until)
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.snapmanager
        ask = getattr(client, f"{self.action}_operation")
        operation = ask(parsed_args.operation)
        self.operation = operation
        return follow_operation(
            self.app,
            operation,
            f"{self.action.capitalize()} of restore {parsed_args.operation}",
            parsed_args,
        )


class RetrySnapshotOperation(_FailedRestoreAction):
    _description = (
        "Retry a failed restore: restore the server again from the same "
        "snapshot (a failed restore keeps the server stopped and locked "
        "until it is retried or abandoned)"
    )
    action = "retry"
    until = "the new restore has finished"


class AbandonSnapshotOperation(_FailedRestoreAction):
    _description = (
        "Abandon a failed restore: Snapmanager unlocks the server and "
        "leaves it as the restore left it (stopped, if it got that far; "
        "start it with 'openstack server start')"
    )
    action = "abandon"
    until = "the server is unlocked"

    def take_action(self, parsed_args):
        result = super().take_action(parsed_args)
        server_id = self.operation["server_id"]
        self.app.stderr.write(
            f"Server {server_id} is left as the restore left it, stopped if "
            f"it got that far: 'openstack server start {server_id}' starts "
            "it.\n"
        )
        return result
