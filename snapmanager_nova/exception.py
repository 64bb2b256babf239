"""Snapmanager's exceptions.

Every exception carries a message template (``msg_fmt``) filled from the
keyword arguments given when it is raised, and an HTTP-like ``code`` the
API maps to a response status. Callers catch the families (``NotFound``,
``Conflict``, ``Invalid``) and read the details from ``kwargs``; only the
message is meant for humans.

Add new exceptions beside their family; keep templates short, and name
every value they interpolate so a wrong keyword shows up in tests.
"""

from oslo_log import log as logging

LOG = logging.getLogger(__name__)


class SnapmanagerException(Exception):
    """Base of every Snapmanager exception.

    ``SomeError(name="x")`` formats ``msg_fmt`` with the keyword arguments;
    ``SomeError("explicit text")`` uses the text as it is.
    """

    msg_fmt = "An unknown exception occurred."
    code = 500

    def __init__(self, message=None, **kwargs):
        self.kwargs = kwargs
        self.kwargs.setdefault("code", self.code)
        if not message:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError, ValueError):
                # A missing keyword is a bug in the raiser, but failing to
                # build the message would hide the real error: log what
                # was given and fall back to the bare template.
                LOG.exception(
                    "Cannot format %s with %r",
                    type(self).__name__,
                    kwargs,
                )
                message = self.msg_fmt
        self.message = message
        super().__init__(message)


class Invalid(SnapmanagerException):
    msg_fmt = "Invalid input: %(reason)s"
    code = 400


class NotFound(SnapmanagerException):
    msg_fmt = "Resource could not be found."
    code = 404


class InstanceNotFound(NotFound):
    msg_fmt = "Instance %(instance_uuid)s could not be found."


class ScheduleNotFound(NotFound):
    msg_fmt = "Schedule %(schedule_id)s could not be found."


class SnapshotNotFound(NotFound):
    msg_fmt = "Snapshot %(snapshot_id)s could not be found."


class OperationNotFound(NotFound):
    msg_fmt = "Operation %(operation_id)s could not be found."


class MarkerNotFound(NotFound):
    msg_fmt = "Marker %(marker)s could not be found."


class Conflict(SnapmanagerException):
    msg_fmt = "The request conflicts with the current state."
    code = 409


class InvalidStatusTransition(Conflict):
    msg_fmt = (
        "%(resource)s %(resource_id)s cannot go from %(from_status)s to "
        "%(to_status)s."
    )


class DuplicateWindow(Conflict):
    msg_fmt = (
        "Schedule %(schedule_id)s already has a snapshot of instance "
        "%(instance_uuid)s for the window starting %(window_start)s."
    )


class InstanceNotRunningHere(NotFound):
    msg_fmt = "Instance %(instance_uuid)s has no domain on host %(host)s."


class InstanceBusy(Conflict):
    msg_fmt = (
        "Instance %(instance_uuid)s is busy with another Snapmanager "
        "operation."
    )


class ServerHeld(InstanceBusy):
    """A restore, or the abandonment of a failed one, holds the server
    (``operations.held_instance_uuid``): nothing else may start on it."""

    msg_fmt = (
        "Server %(server_id)s is busy with %(type)s %(operation_id)s "
        "(%(state)s)."
    )

    def __init__(self, message=None, **kwargs):
        if message is None and kwargs.get("state") == "failed":
            message = (
                f"Server {kwargs['server_id']} is held by "
                f"{kwargs['type']} {kwargs['operation_id']}, which failed: "
                "retry or abandon it first."
            )
        super().__init__(message, **kwargs)


class SnapshotInUse(InvalidStatusTransition):
    """The snapshot is the one a restore holding its server restores
    from: it is deleted by nobody until that restore is over."""

    msg_fmt = "Snapshot %(snapshot_id)s is in use by restore %(operation_id)s."


class OperationNotRecoverable(Conflict):
    msg_fmt = "Operation %(operation_id)s cannot be %(action)s: %(reason)s."


class InstanceNotShutOff(Conflict):
    msg_fmt = (
        "Instance %(instance_uuid)s must be shut off to be restored; its "
        "domain is %(state)s."
    )


class UnsupportedDisks(Invalid):
    msg_fmt = "Instance %(instance_uuid)s cannot be snapshotted: %(reason)s"


class BackendError(SnapmanagerException):
    """A hypervisor or storage call failed.

    ``origin`` names the library ("libvirt", "rbd", "qemu-img") and
    ``origin_code`` its own error code, kept in the message so an operator
    can look it up in that library's documentation.
    """

    msg_fmt = (
        "%(operation)s failed: %(origin)s error %(origin_code)s: %(detail)s"
    )


class QuiesceFailed(BackendError):
    msg_fmt = (
        "Cannot quiesce the guest filesystems of %(instance_uuid)s "
        "(libvirt error %(origin_code)s): %(detail)s"
    )


class BackendTimeout(BackendError):
    msg_fmt = "%(operation)s did not finish within %(timeout)s seconds."


class StoredSnapshotNotFound(NotFound):
    msg_fmt = (
        "Snapshot %(index)s of instance %(instance_uuid)s is not in the "
        "snapshot store."
    )


class SnapshotStoreError(SnapmanagerException):
    msg_fmt = "Snapshot store %(path)s: %(reason)s"


class DisksChanged(Conflict):
    msg_fmt = (
        "The disks of instance %(instance_uuid)s changed while they were "
        "copied: %(reason)s"
    )


class BlockJobActive(Conflict):
    msg_fmt = (
        "Disk %(target)s of instance %(instance_uuid)s already has a block "
        "job running (type %(job_type)s)."
    )


class PathNotAllowed(Invalid):
    msg_fmt = "Refusing %(operation)s on %(path)s: %(reason)s"


class SnapshotIndexInUse(Conflict):
    msg_fmt = (
        "Instance %(instance_uuid)s already has a snapshot with index "
        "%(index)s in storage."
    )


class SnapshotNotRestorable(Conflict):
    msg_fmt = (
        "Snapshot %(index)s of instance %(instance_uuid)s cannot be "
        "restored: %(reason)s"
    )


class ImageInUse(Conflict):
    msg_fmt = (
        "RBD image %(pool)s/%(image)s is open by another client "
        "(%(watchers)s); it is not rolled back under a running guest."
    )


class BackendNotEnabled(Invalid):
    """The agent was asked for work on a backend its host does not serve
    (``[compute] backends``); the conductor routes RBD work to another
    agent that serves it, and reports what no agent can do."""

    msg_fmt = "Backend %(backend)r is not enabled on host %(host)s."


# Errors of the REST API. Each one is answered with its ``code`` as the
# HTTP status and its message as the error body's text, so the message
# must make sense to a tenant and never carry internals.


class InvalidField(Invalid):
    """A request field or query parameter is not acceptable.

    The message starts with the field's path (``schedules[0].spec``) so a
    tenant can find what to fix, and quotes the bad value.
    """

    msg_fmt = "%(field)s: %(reason)s"


class Forbidden(SnapmanagerException):
    msg_fmt = "Policy does not allow %(action)s to be performed."
    code = 403


class ServerNotFound(NotFound):
    msg_fmt = "Server %(server_id)s could not be found."


class SnapshotPolicyNotFound(NotFound):
    msg_fmt = "Server %(server_id)s has no snapshot policy."


class ProjectDefaultPolicyNotFound(NotFound):
    msg_fmt = "Project %(project_id)s has no default snapshot policy."


class ServerNotReady(Conflict):
    msg_fmt = "Server %(server_id)s cannot be %(action)s now: %(reason)s"


class SnapshotNotDeletable(Conflict):
    msg_fmt = "Snapshot %(snapshot_id)s cannot be deleted now: %(reason)s"


class ServiceUnavailable(SnapmanagerException):
    msg_fmt = "%(service)s is unavailable: %(reason)s"
    code = 503


class QuotaExceeded(Forbidden):
    """A snapshot would take a project past one of its quotas.

    The message names the limit (``snapshots``, ``snapshot_gigabytes``)
    and is safe to show a tenant: it is also the ``error_summary`` of a
    scheduled snapshot the quota refused.
    """

    msg_fmt = (
        "Quota exceeded for %(resource)s: the limit is %(limit)s and "
        "%(in_use)s are in use."
    )


class RateLimited(SnapmanagerException):
    """Too many requests of one kind in a period; ``retry_after`` says
    in how many seconds the next one is allowed."""

    msg_fmt = "%(what)s: at most %(limit)s per %(period)s seconds."
    code = 429

    def __init__(self, message=None, retry_after=1, **kwargs):
        super().__init__(message, **kwargs)
        self.headers = {"Retry-After": str(max(1, int(retry_after)))}
