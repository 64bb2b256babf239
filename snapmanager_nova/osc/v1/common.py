"""What the policy and the snapshot commands share: finding servers and
projects by name, following an operation, formatting schedules."""

import dataclasses
import time

from cliff import columns
from openstack import exceptions as sdk_exceptions
from osc_lib import exceptions
from osc_lib.cli import identity
from oslo_utils import uuidutils

# How often --wait asks the API. An operation takes seconds to minutes;
# two seconds between polls show progress without loading the API.
POLL_INTERVAL = 2.0
# How long --wait waits by default: longer than the conductor's own
# deadlines of a restore ([conductor] restore_agent_timeout, 3600 s, and
# nova_action_timeout, 300 s, for each of stop and start), so that the
# command normally reports the restore's own outcome.
DEFAULT_WAIT_TIMEOUT = 4200
# The exit status of a command whose --wait gave up (1 is a failure).
WAIT_TIMEOUT_EXIT = 3

OPERATION_SUCCEEDED = "succeeded"
OPERATION_FAILED = "failed"


def find_server_id(compute, name_or_id, keep_unknown_uuid=False):
    """The ID of a server named by name or ID, looked up in Nova.

    Nova, as the caller sees it, decides: a server of another project is
    not found, exactly as in ``openstack server show``.

    :param keep_unknown_uuid: return a UUID Nova does not know as it is,
        for the listings that still answer for a server Nova deleted
        (its snapshots were kept); the API then says whether it knows it.
    """
    server = compute.find_server(name_or_id, ignore_missing=True)
    if server is not None:
        return server.id
    if keep_unknown_uuid and uuidutils.is_uuid_like(name_or_id):
        return name_or_id
    raise exceptions.CommandError(
        f"No server with a name or ID of '{name_or_id}' exists."
    )


def find_project_id(client_manager, name_or_id, domain=None):
    """The ID of a project by name or ID; the token's project if None.

    A member may not look projects up in Keystone (osc-lib then takes
    the name as an ID), so their own project's name is matched against
    the token first.
    """
    auth_ref = client_manager.auth_ref
    if name_or_id is None:
        return auth_ref.project_id
    if name_or_id in (auth_ref.project_id, auth_ref.project_name) and (
        domain is None
        or domain in (auth_ref.project_domain_id, auth_ref.project_domain_name)
    ):
        return auth_ref.project_id
    connection = client_manager.sdk_connection
    try:
        return identity.find_project(connection, name_or_id, domain).id
    except sdk_exceptions.NotFoundException:
        raise exceptions.CommandError(
            f"No project with a name or ID of '{name_or_id}' exists."
        ) from None


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where a long-running request is, as the waiting loop shows it."""

    state: str
    percent: int = 0
    step: str | None = None
    error: str | None = None

    @property
    def finished(self):
        return self.state in (OPERATION_SUCCEEDED, OPERATION_FAILED)

    @property
    def failed(self):
        return self.state == OPERATION_FAILED

    @classmethod
    def of_operation(cls, operation):
        return cls(
            state=operation["state"],
            percent=operation["progress"],
            step=operation["step"],
            error=operation["error"],
        )

    def line(self, what):
        text = f"{what}: {self.state} {self.percent}%"
        if self.step:
            text += f" ({self.step})"
        return text


class ProgressDisplay:
    """Progress lines on stderr, so stdout keeps only the result.

    On a terminal one line is rewritten in place; otherwise (a log, a
    pipe) each change is a line of its own.
    """

    def __init__(self, what, stream):
        self.what = what
        self.stream = stream
        self._last = None
        self._width = 0

    def show(self, progress):
        text = progress.line(self.what)
        if text == self._last:
            return
        self._last = text
        if self.stream.isatty():
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self):
        if self._last is not None and self.stream.isatty():
            self.stream.write("\n")
            self.stream.flush()


class WaitTimeout(exceptions.CommandError):
    """--wait gave up; the work goes on in the cloud."""

    def __init__(self, message, progress):
        super().__init__(message)
        self.progress = progress


def wait(
    poll,
    display,
    timeout=DEFAULT_WAIT_TIMEOUT,
    sleep=time.sleep,
    clock=None,
):
    """Call ``poll()`` until the :class:`Progress` it returns finished,
    every :data:`POLL_INTERVAL` seconds, for at most ``timeout`` seconds.

    :returns: the last Progress.
    :raises WaitTimeout: not finished by then (its message says so; the
        caller's message says what to follow).
    """
    clock = clock or time.monotonic
    deadline = clock() + timeout
    try:
        while True:
            progress = poll()
            display.show(progress)
            if progress.finished:
                return progress
            if clock() >= deadline:
                raise WaitTimeout(f"not finished after {timeout} s", progress)
            sleep(POLL_INTERVAL)
    finally:
        display.close()


def format_duration(seconds):
    """``2592000`` as ``30d``: the notation --max-age takes."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def format_retention(retention):
    """A stored retention as ``keep_count=7 max_age=30d``."""
    if not retention:
        return "keep all"
    words = []
    for key, value in retention.items():
        if key == "max_age":
            value = format_duration(value)
        words.append(f"{key}={value}")
    return " ".join(words)


def format_schedule(schedule, detailed=True):
    """One schedule on one line, for the table formatter."""
    text = f"{schedule['spec']} {schedule['timezone']}"
    if detailed:
        text += f", {format_retention(schedule['retention'])}"
    if not schedule["enabled"]:
        text += ", disabled"
    elif detailed and schedule["next_run_at"]:
        text += f", next {schedule['next_run_at']}"
    if detailed:
        text += f", id {schedule['id']}"
    return text


class SchedulesColumn(columns.FormattableColumn):
    """A policy's schedules: a line each in a table, the API's dicts in
    JSON and YAML."""

    detailed = True

    def human_readable(self):
        return "\n".join(
            format_schedule(schedule, self.detailed)
            for schedule in self._value or []
        )

    def machine_readable(self):
        return [dict(schedule) for schedule in self._value or []]


class BriefSchedulesColumn(SchedulesColumn):
    """Spec and timezone only, for the rows of a list."""

    detailed = False
