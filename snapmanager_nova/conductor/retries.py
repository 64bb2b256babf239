"""Scheduled snapshots that failed for a passing reason, tried again.

Which failures pass
    A snapshot is retried when what stopped it says "not now" rather than
    "not so": the agent on the instance's host is down, Nova is busy with
    the server (:func:`snapmanager_nova.nova_state.busy_reason`) or a
    restore holds it, the message bus refused the cast, or the agent
    reported an error that goes away by itself -- a library call that
    overran its deadline, a domain that changed state or was locked by
    another job, a block job in progress,
    an instance that is being migrated, an RBD image that is busy. The
    agent reports a failure as the text of Snapmanager's exception
    (:mod:`snapmanager_nova.exception`); :func:`is_transient` matches that
    text against the templates of the transient exceptions and, for a
    library error, against the library's codes. Anything else (disks
    Snapmanager cannot handle, a guest that cannot be frozen when
    freezing is required, a full store) fails the snapshot at once.

How often
    At most ``[conductor] max_retries`` retries per snapshot, the n-th
    after :func:`backoff_delay` seconds. A snapshot waiting for its retry
    stays ``creating`` with ``next_attempt_at`` set and the last reason
    in ``error``; :meth:`SnapshotDispatcher.retry_due` re-casts the due
    ones, with the same snapshot index (the agent serializes work per
    instance and refuses an index it already has, so a duplicate attempt
    is harmless). When the retries are used up the snapshot is ``error``
    with the last reason.

Only scheduled snapshots are retried. One taken on demand has a user
waiting on its operation (``--wait``), who is better told at once.
"""

import datetime
import errno
import functools
import random
import re
import time

import oslo_messaging as messaging
from oslo_log import log as logging

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova import nova_state
from snapmanager_nova.compute import guest
from snapmanager_nova.conductor import inventory
from snapmanager_nova.conductor import snapshot_operations
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models

CONF = sm_conf.CONF
LOG = logging.getLogger(__name__)

# The binary name compute agents heartbeat as (cmd/compute.py).
COMPUTE_BINARY = "snapmanager-compute"
SERVER_DELETED = "the server was deleted in Nova"

# Exceptions an agent reports that say "not now".
TRANSIENT_EXCEPTIONS = (
    # A libvirt or librbd call overran its deadline (a busy libvirtd, a
    # slow OSD).
    exception.BackendTimeout,
    # Another Snapmanager operation holds the instance.
    exception.InstanceBusy,
    # A block job is running on a disk (Nova's live migration or block
    # copy); it ends.
    exception.BlockJobActive,
    # The disks changed while they were copied (Nova resized or
    # rebuilt them); the next copy sees the new ones.
    exception.DisksChanged,
    # No domain on the host Snapmanager knows: the instance is migrating,
    # and the inventory follows it to its new host.
    exception.InstanceNotRunningHere,
    # Another client has the RBD image open.
    exception.ImageInUse,
)

# libvirt's virErrorNumber values that pass (checked against the libvirt
# module by the unit tests; the conductor itself needs no libvirt).
TRANSIENT_LIBVIRT_CODES = frozenset(
    {
        5,  # VIR_ERR_NO_CONNECT: libvirtd cannot be reached
        39,  # VIR_ERR_RPC: the connection to libvirtd broke
        55,  # VIR_ERR_OPERATION_INVALID: the domain changed state under us
        68,  # VIR_ERR_OPERATION_TIMEOUT: another job holds the domain
        86,  # VIR_ERR_AGENT_UNRESPONSIVE: the guest agent is not up yet
    }
)
# errno values of librbd and librados errors that pass.
TRANSIENT_ERRNOS = frozenset(
    {errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT, errno.ESHUTDOWN}
)


@functools.cache
def _template(exception_class):
    """A regular expression matching ``exception_class``'s messages.

    Built from the class's own ``msg_fmt``, so the classification
    follows the exceptions as they change; each ``%(name)s`` becomes a
    named group.
    """
    parts = re.split(r"%\((\w+)\)s", exception_class.msg_fmt)
    pattern = "".join(
        re.escape(part) if position % 2 == 0 else f"(?P<{part}>.*?)"
        for position, part in enumerate(parts)
    )
    return re.compile(pattern, re.DOTALL)


def _transient_code(origin, code):
    try:
        code = int(code)
    except (TypeError, ValueError):
        return False
    if origin == "libvirt":
        return code in TRANSIENT_LIBVIRT_CODES
    if origin in ("rbd", "rados"):
        # Ceph's bindings give errno values, sometimes negated.
        return abs(code) in TRANSIENT_ERRNOS
    return False


def is_transient(error):
    """Whether an agent's error text says the snapshot may work later."""
    text = str(error)
    for exception_class in TRANSIENT_EXCEPTIONS:
        if _template(exception_class).fullmatch(text):
            return True
    match = _template(exception.QuiesceFailed).fullmatch(text)
    if match:
        return _transient_code("libvirt", match["origin_code"])
    match = _template(exception.BackendError).fullmatch(text)
    if match:
        return _transient_code(match["origin"], match["origin_code"])
    return False


def backoff_delay(retry, base, cap, jitter):
    """Seconds to wait before retry number ``retry`` (1 for the first).

    Exponential, ``base * 2 ** (retry - 1)`` capped at ``cap``, with
    "equal jitter": the wait is drawn from the upper half of that by
    ``jitter``, a number in [0, 1) the caller draws. Half the wait is
    guaranteed (an agent that is down gets time to come back); the other
    half spreads the retries of snapshots that failed together -- an
    agent restart fails a whole host's window at once -- so they do not
    come back as one burst.
    """
    if isinstance(retry, bool) or not isinstance(retry, int) or retry < 1:
        raise ValueError(f"retry {retry!r} is not a whole number >= 1")
    if not base > 0 or not cap > 0:
        raise ValueError(f"base {base!r} and cap {cap!r} must be > 0")
    if not 0 <= jitter < 1:
        raise ValueError(f"jitter {jitter!r} is not in [0, 1)")
    # Compare exponents, not powers: a large retry must not build a huge
    # number just to cap it.
    doublings = retry - 1
    if doublings >= 64 or base * 2**doublings >= cap:
        ceiling = float(cap)
    else:
        ceiling = float(base * 2**doublings)
    return ceiling / 2 + jitter * ceiling / 2


class AgentLiveness:
    """Which compute agents are up, from their heartbeats.

    An agent is up when it heartbeated within ``[conductor]
    service_down_time``; a host whose agent never heartbeated is down.
    Heartbeats are real time, whatever clock drives the schedules. The
    answer is reused for ``max_age`` seconds, so a tick dispatching a
    thousand snapshots asks the database once.
    """

    def __init__(self, max_age=1.0):
        self.max_age = max_age
        self._hosts = set()
        self._read_at = None

    def is_up(self, context, host):
        return host in self.alive_hosts(context)

    def alive_hosts(self, context):
        """The hosts whose agent is up."""
        now = time.monotonic()
        if self._read_at is None or now - self._read_at > self.max_age:
            since = models.utcnow() - datetime.timedelta(
                seconds=CONF.conductor.service_down_time
            )
            self._hosts = db_api.service_hosts_alive(
                context, COMPUTE_BINARY, since
            )
            self._read_at = now
        return set(self._hosts)


class SnapshotDispatcher:
    """Casts snapshots to their agents, and retries the ones that wait.

    Shared by the schedule clock (first tries), the agents' failure
    reports (transient ones come back here) and reconciliation (work the
    agent lost).
    """

    def __init__(
        self,
        compute_api,
        now=models.utcnow,
        jitter=random.random,
        server_gone=None,
    ):
        """``server_gone(context, instance_uuid)``: asks Nova whether a
        server whose try failed as if it were gone is gone, and if so
        records its delete (:class:`.release.NovaGoneCheck`); None: not
        asked, such a try is retried as a passing failure."""
        self.compute_api = compute_api
        self.now = now
        self.jitter = jitter
        self.agents = AgentLiveness()
        self.server_gone = server_gone

    def dispatch(
        self,
        context,
        snapshot_id,
        instance_uuid,
        host,
        index,
        busy=None,
        attempts=0,
        sender=None,
    ):
        """Cast a scheduled snapshot to its agent, or put it back.

        ``busy`` is why Nova's server cannot be snapshotted now, if it
        cannot; ``attempts`` the retries the snapshot had so far;
        ``sender`` what casts it (``create_snapshot``), by default the
        compute API: the clock passes its batches of casts per host.
        """
        if not host:
            self.fail(
                context,
                snapshot_id,
                "the instance has no compute host (not yet scheduled, or "
                "shelved)",
            )
            return False
        if busy:
            return self.defer(context, snapshot_id, attempts, busy)
        if not self.agents.is_up(context, host):
            return self.defer(
                context,
                snapshot_id,
                attempts,
                f"the compute agent on {host} is down (no heartbeat "
                f"within {CONF.conductor.service_down_time} s)",
            )
        try:
            (sender or self.compute_api).create_snapshot(
                context,
                host,
                instance_uuid,
                snapshot_id,
                index,
                guest.QUIESCE_PREFER,
            )
        except messaging.MessagingException as exc:
            return self.defer(
                context,
                snapshot_id,
                attempts,
                f"the request could not be sent to the agent on {host}: {exc}",
            )
        return True

    def defer(self, context, snapshot_id, attempts, reason, retry=True):
        """Put an in-flight ``creating`` snapshot back for a later try.

        After ``attempts`` retries, or with ``retry`` False, the snapshot
        fails for good with ``reason`` instead. Returns False.
        """
        if not retry:
            self.fail(context, snapshot_id, reason)
            return False
        if attempts >= CONF.conductor.max_retries:
            self.fail(
                context,
                snapshot_id,
                f"{reason} (given up after {attempts + 1} tries)",
            )
            return False
        delay = backoff_delay(
            attempts + 1,
            CONF.conductor.retry_base_delay,
            CONF.conductor.retry_max_delay,
            self.jitter(),
        )
        when = self.now() + datetime.timedelta(seconds=delay)
        error = (
            f"try {attempts + 1} failed: {reason}; next try at "
            f"{when.isoformat(timespec='seconds')}"
        )[: snapshot_operations.MAX_ERROR]
        if db_api.snapshot_defer(context, snapshot_id, attempts, when, error):
            LOG.warning("Snapshot %s: %s", snapshot_id, error)
        else:
            LOG.debug("Snapshot %s moved on; no retry recorded", snapshot_id)
        return False

    def fail(self, context, snapshot_id, reason):
        """Fail a ``creating`` snapshot and the operation following it."""
        reason = str(reason)
        try:
            snapshot = db_api.snapshot_update_status(
                context,
                snapshot_id,
                models.SNAPSHOT_ERROR,
                error=reason[: snapshot_operations.MAX_ERROR],
            )
        except (exception.InvalidStatusTransition, exception.NotFound) as exc:
            LOG.warning("Snapshot %s not failed: %s", snapshot_id, exc)
            return
        LOG.error("Snapshot %s failed: %s", snapshot_id, reason)
        snapshot_operations.finish(
            context, snapshot, models.SNAPSHOT_CREATING, reason
        )

    def retry_failure(self, context, snapshot_id, error):
        """An agent reported that taking the snapshot failed.

        True if that is handled here: a scheduled snapshot still being
        taken, failed for a transient reason, is put back (or, retries
        used up, failed). Anything else is for the caller to record.
        """
        try:
            snapshot = db_api.snapshot_get(context, snapshot_id)
        except exception.NotFound:
            return False
        if (
            snapshot.status != models.SNAPSHOT_CREATING
            or snapshot.schedule_id is None
            or not is_transient(error)
        ):
            return False
        if self._gone(context, snapshot.instance_uuid, error):
            self.fail(context, snapshot.id, SERVER_DELETED)
            return True
        if snapshot.next_attempt_at is None:
            self.defer(context, snapshot.id, snapshot.attempts, error)
        else:
            LOG.debug("Snapshot %s already waits for a retry", snapshot.id)
        return True

    def _gone(self, context, instance_uuid, error=None):
        """Whether Nova deleted the server a try failed on.

        Asked when the inventory says ``DELETED`` or the agent found no
        domain (which a migration also explains): Nova decides, and a
        gone server goes through the deleted-server path at once rather
        than have its snapshot retried.
        """
        if self.server_gone is None:
            return False
        if error is not None and not _template(
            exception.InstanceNotRunningHere
        ).fullmatch(str(error)):
            return False
        return self.server_gone(context, instance_uuid)

    def retry_due(self, context):
        """Periodic task: cast the snapshots whose retry is due.

        Returns the ids of the snapshots taken up.
        """
        with db_api.context_manager.writer.using(context):
            due = db_api.snapshot_claim_retries(
                context, self.now(), CONF.conductor.claim_batch_size
            )
        if not due:
            return []
        instances = {
            row.uuid: row
            for row in db_api.instance_list_by_uuids(
                context, {snapshot.instance_uuid for snapshot in due}
            )
        }
        held = db_api.instance_uuids_held(context, list(instances))
        for snapshot in due:
            instance = instances.get(snapshot.instance_uuid)
            if instance is None or instance.deleted_at is not None:
                self.fail(context, snapshot.id, "the instance was deleted")
                continue
            if instance.nova_status == inventory.DELETED and self._gone(
                context, instance.uuid
            ):
                self.fail(context, snapshot.id, SERVER_DELETED)
                continue
            self.dispatch(
                context,
                snapshot.id,
                instance.uuid,
                instance.host,
                snapshot.snapshot_index,
                busy=(
                    "a restore holds the server"
                    if instance.uuid in held
                    else nova_state.busy_reason(instance)
                ),
                attempts=snapshot.attempts,
            )
        return [snapshot.id for snapshot in due]
