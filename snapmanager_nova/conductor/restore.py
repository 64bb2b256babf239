"""Restore orchestration: lock, stop, restore, start, unlock.

The API records a restore as a ``pending`` operation. A conductor claims
it (:func:`db.api.operation_claim_restores`: new ones, its own after a
restart, and those of conductors whose heartbeat is older than
``[conductor] service_down_time``) and runs its steps, recording each
in the operation (``step`` and ``progress``) *before* doing it:

==================  ========  ===============================================
step                progress  what, and why it is safe to do again
==================  ========  ===============================================
locking server      5         lock in Nova with a reason naming the operation
                              and snapshot (a lock of ours is re-locked)
copying snapshot    10        a file-backed snapshot held by another host
                              than the server's (it moved) is copied to the
                              server's host, which becomes its holder
                              (:mod:`.holders`); the running server waits
                              for it locked, not stopped
stopping server     15        stop unless SHUTOFF, wait for SHUTOFF
restoring disks     30-80     cast the restore to the agent on the server's
                              host; the agent reports back through the
                              conductor's RPC API, which moves on
starting server     85        start unless ACTIVE, wait for ACTIVE
unlocking server    95        unlock if the lock is still ours
==================  ========  ===============================================

A conductor killed at any step resumes at the recorded one: every step
checks Nova first and does only what is left. The one step not repeated
is the cast: a second restore queued behind a first that has already
reported could still be running when the server is started. An
operation waiting at ``restoring disks`` waits for the agent's report,
whichever conductor receives it, for ``[conductor]
restore_agent_timeout`` seconds since the step began (``step_started_at``,
by the database's clock), and fails after that.

From its request until it succeeds a restore holds its server
(``held_instance_uuid``, unique): no second restore, no scheduled
snapshot, and its snapshot is deleted by nobody. On failure the
operation is ``failed`` with the error, still holding the server, and a
server that was locked for it stays locked (stopped, if it got that far)
with the error in the lock reason: never half-restored and running. The
tenant decides, knowing what failed: a retry is a new restore taking the
hold over; an abandonment is an operation of type ``abandon`` taking it
over, whose one step unlocks the server (if the lock is still ours) and
leaves it as it is.

The conductor that takes a new restore up announces it
(``snapmanager.snapshot.restore.start``), and the one that records its
outcome announces that (``restore.end`` or ``restore.error``, with the
error); a restore resumed after a restart is not announced again.
"""

import dataclasses
import datetime
import threading

from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as sdk_exc
from oslo_log import log as logging

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova import nova
from snapmanager_nova import nova_state
from snapmanager_nova.conductor import holders
from snapmanager_nova.conductor import inventory
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from snapmanager_nova.notifications import notifier

CONF = sm_conf.CONF
LOG = logging.getLogger(__name__)

# Longest error text kept in an operation row.
_MAX_ERROR = 2000
# Restores one conductor claims per pass.
_CLAIM_BATCH = 20


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    progress: int


LOCK = Step("locking server", 5)
TRANSFER = Step("copying snapshot", 10)
STOP = Step("stopping server", 15)
RESTORE = Step("restoring disks", 30)
START = Step("starting server", 85)
UNLOCK = Step("unlocking server", 95)
STEPS = (LOCK, TRANSFER, STOP, RESTORE, START, UNLOCK)
_BY_NAME = {step.name: step for step in STEPS}
# The agent's own progress (0-100) is shown within this range.
_AGENT_RANGE = (RESTORE.progress, 80)


class RestoreFailed(exception.SnapmanagerException):
    msg_fmt = "%(reason)s"


def step_named(name):
    """The step an operation recorded; None (not started) is the first."""
    if name is None:
        return LOCK
    try:
        return _BY_NAME[name]
    except KeyError:
        raise RestoreFailed(
            reason=f"unknown restore step {name!r} recorded"
        ) from None


def next_step(step):
    """The step after ``step``; None after the last."""
    position = STEPS.index(step)
    return STEPS[position + 1] if position + 1 < len(STEPS) else None


def agent_progress(percent):
    """The operation's progress for the agent's ``percent`` of its part."""
    low, high = _AGENT_RANGE
    percent = min(max(int(percent), 0), 100)
    return low + (high - low) * percent // 100


def lock_reason(operation):
    return (
        f"{nova_state.LOCK_REASON_PREFIX}restore {operation.id} of "
        f"snapshot {operation.snapshot_id} in progress"
    )


def failed_lock_reason(operation, error):
    reason = (
        f"{nova_state.LOCK_REASON_PREFIX}restore {operation.id} of "
        f"snapshot {operation.snapshot_id} failed: {error}"
    )
    return reason[: nova.MAX_LOCKED_REASON]


def is_our_lock(server):
    return bool(server.is_locked) and (server.locked_reason or "").startswith(
        nova_state.LOCK_REASON_PREFIX
    )


class RestoreOrchestrator:
    """Runs restores; one thread per restore being worked on.

    ``poll`` is the periodic task; ``agent_progress`` and
    ``agent_finished`` are called by the conductor's RPC endpoint with
    the agent's reports.
    """

    def __init__(
        self, compute, compute_api, host, binary, now=models.utcnow, spawn=None
    ):
        """``compute``: :class:`snapmanager_nova.nova.LazyCompute`;
        ``compute_api``: the agents' RPC client; ``host`` and ``binary``:
        this conductor's, as its heartbeats record them; ``spawn(func,
        *args)`` runs a restore's steps (default: on a new thread)."""
        self.compute = compute
        self.compute_api = compute_api
        self.host = host
        self.binary = binary
        self.now = now
        self._spawn = spawn or _on_new_thread
        self.transfer = holders.Transfer(compute_api)
        # Restores a thread of this process is working on right now.
        self._active = set()
        self._guard = threading.Lock()

    # Claiming

    def poll(self, context):
        """Claim restores and start (or resume) them; return their ids."""
        alive_since = self.now() - datetime.timedelta(
            seconds=CONF.conductor.service_down_time
        )
        started = []
        for operation in db_api.operation_claim_restores(
            context, self.host, self.binary, alive_since, _CLAIM_BATCH
        ):
            if operation.step == RESTORE.name:
                self._check_agent_timeout(context, operation)
            elif self._start(context, operation.id):
                started.append(operation.id)
        return started

    def _start(self, context, operation_id):
        with self._guard:
            if operation_id in self._active:
                return False
            self._active.add(operation_id)
        self._spawn(self._run_and_forget, context, operation_id)
        return True

    def _run_and_forget(self, context, operation_id):
        try:
            self.run(context, operation_id)
        except Exception:
            LOG.exception("Restore %s stopped unexpectedly", operation_id)
        finally:
            with self._guard:
                self._active.discard(operation_id)

    def _check_agent_timeout(self, context, operation):
        timeout = CONF.conductor.restore_agent_timeout
        # Since the agent was asked, by the database's clock: each pass
        # re-claims the restore, so nothing a pass writes may restart it.
        waited = db_api.operation_step_age(context, operation.id)
        if waited is not None and waited.total_seconds() < timeout:
            return
        self._fail(
            context,
            operation,
            RESTORE,
            f"the compute agent did not report within {timeout} s",
        )

    # The steps

    def run(self, context, operation_id):
        """Run the operation from its recorded step, in this thread,
        until it waits for the agent or is finished."""
        operation = db_api.operation_get(context, operation_id)
        if operation.state not in (
            models.OPERATION_PENDING,
            models.OPERATION_RUNNING,
        ):
            return
        # Abandoning a failed restore is its last step alone.
        first = UNLOCK if operation.type == "abandon" else LOCK
        try:
            step = (
                first if operation.step is None else step_named(operation.step)
            )
        except RestoreFailed as exc:
            self._fail(context, operation, None, str(exc))
            return
        if operation.state == models.OPERATION_PENDING:
            if not self._advance(context, operation, operation.step, first):
                return
            self._notify(context, "start", operation.id)
        while step is not None:
            try:
                done = self._do(context, operation, step)
            except Exception as exc:
                if not isinstance(exc, exception.SnapmanagerException):
                    LOG.exception("Restore %s: %s failed", operation.id, step)
                self._fail(context, operation, step, _describe(exc))
                return
            if not done:
                return  # waiting for the agent
            following = next_step(step)
            if following is None:
                self._succeed(context, operation)
                return
            if not self._advance(context, operation, step.name, following):
                return
            if following is RESTORE:
                # Recorded first, then cast: see the module doc.
                try:
                    self._cast_restore(context, operation)
                except Exception as exc:
                    self._fail(context, operation, RESTORE, _describe(exc))
                return
            step = following

    def _do(self, context, operation, step):
        """Do ``step``; False when the step goes on elsewhere."""
        if step is LOCK:
            self._lock(context, operation)
        elif step is TRANSFER:
            self._transfer(context, operation)
        elif step is STOP:
            self._stop(operation)
        elif step is RESTORE:
            # Resumed at this step: the cast was made (it is recorded
            # before it is made, see the module doc); the agent's report
            # moves the restore on.
            return False
        elif step is START:
            self._start_server(operation)
        elif step is UNLOCK:
            self._unlock(operation)
        return True

    def _advance(self, context, operation, from_name, step):
        """Record that ``step`` begins; False if someone else moved on."""
        values = {
            "state": models.OPERATION_RUNNING,
            "step": step.name,
            "progress": step.progress,
        }
        if not db_api.operation_update_step(
            context, operation.id, from_name, values
        ):
            LOG.info("Restore %s moved on elsewhere; leaving it", operation.id)
            return False
        LOG.info("Restore %s: %s", operation.id, step.name)
        return True

    def _server(self, operation):
        return self.compute.get().get_server(operation.instance_uuid)

    def _lock(self, context, operation):
        snapshot = db_api.snapshot_get(context, operation.snapshot_id)
        if snapshot.status != models.SNAPSHOT_AVAILABLE:
            raise RestoreFailed(
                reason=f"snapshot {snapshot.id} is {snapshot.status}, "
                "not available"
            )
        server = self._server(operation)
        if server.is_locked and not is_our_lock(server):
            raise RestoreFailed(
                reason="the server is locked in Nova by someone else ("
                f"{server.locked_reason or 'no reason given'})"
            )
        reason = lock_reason(operation)
        if server.locked_reason == reason:
            return
        nova.lock_server(self.compute.get(), server.id, reason)
        if self._server(operation).locked_reason != reason:
            # Nova keeps an owner's earlier lock and its reason; our
            # service user must not be the server's owner.
            raise RestoreFailed(
                reason="Nova did not record Snapmanager's lock reason"
            )

    def _transfer(self, context, operation):
        snapshot = db_api.snapshot_get(context, operation.snapshot_id)
        instance = db_api.instance_get(context, operation.instance_uuid)
        server = self._server(operation)
        if not server.compute_host:
            raise RestoreFailed(reason="the server has no compute host")
        try:
            self.transfer.bring(
                context, snapshot, instance, server.compute_host
            )
        except holders.TransferFailed as exc:
            raise RestoreFailed(reason=str(exc)) from exc

    def _stop(self, operation):
        compute = self.compute.get()
        server = self._server(operation)
        if server.status == "SHUTOFF" and not server.task_state:
            return
        if not server.task_state:
            compute.stop_server(server)
        self._wait(server, "SHUTOFF")

    def _cast_restore(self, context, operation):
        snapshot = db_api.snapshot_get(context, operation.snapshot_id)
        # The hold keeps it available; the agent must still never be sent
        # one that is not, whatever changed it.
        if snapshot.status != models.SNAPSHOT_AVAILABLE:
            raise RestoreFailed(
                reason=f"snapshot {snapshot.id} is {snapshot.status}, "
                "not available"
            )
        backend = inventory.snapshot_backend(snapshot)
        if backend is None:
            raise RestoreFailed(
                reason=f"snapshot {snapshot.id} records no disks to restore"
            )
        server = self._server(operation)
        if not server.compute_host:
            raise RestoreFailed(reason="the server has no compute host")
        instance = db_api.instance_get(context, operation.instance_uuid)
        if holders.needs_transfer(snapshot, instance, server.compute_host):
            # Moved by an administrator since the copy (the lock stops
            # only its tenant): never sent to a host without the data.
            raise RestoreFailed(
                reason=f"the server moved to {server.compute_host} after "
                f"snapshot {snapshot.id} was copied for it; retry the "
                "restore"
            )
        self.compute_api.restore_snapshot(
            context,
            server.compute_host,
            operation.id,
            operation.instance_uuid,
            backend,
            snapshot.snapshot_index,
            snapshot.disks,
        )

    def _start_server(self, operation):
        compute = self.compute.get()
        server = self._server(operation)
        if server.status == "ACTIVE" and not server.task_state:
            return
        if not server.task_state:
            compute.start_server(server)
        self._wait(server, "ACTIVE")

    def _unlock(self, operation):
        try:
            server = self._server(operation)
        except sdk_exc.NotFoundException:
            # Deleted in Nova: no lock left to lift (abandoning the
            # restore of a server that is gone).
            return
        if is_our_lock(server):
            self.compute.get().unlock_server(server)

    def _wait(self, server, status):
        self.compute.get().wait_for_server(
            server,
            status=status,
            failures=["ERROR"],
            interval=1,
            wait=CONF.conductor.nova_action_timeout,
        )

    # Outcomes

    def _succeed(self, context, operation):
        if db_api.operation_update_step(
            context,
            operation.id,
            UNLOCK.name,
            {"state": models.OPERATION_SUCCEEDED, "step": "done"},
        ):
            LOG.info("Restore %s succeeded", operation.id)
            self._notify(context, "end", operation.id)

    def _fail(self, context, operation, step, error):
        """Record the failure; keep the server locked, saying why.

        A failure to take the lock leaves the lock alone: it is not ours
        (someone else's), or there is none.
        """
        error = str(error)[:_MAX_ERROR]
        expected = operation.step if step is None else step.name
        # Nova's lock says why first: whoever sees the operation failed
        # (a client's --wait) then finds the reason on the server too.
        if step is not LOCK and step is not None:
            try:
                nova.lock_server(
                    self.compute.get(),
                    operation.instance_uuid,
                    failed_lock_reason(operation, error),
                )
            except (
                sdk_exc.SDKException,
                ks_exc.ClientException,
                # Nova not configured or unreachable: the operation must
                # still be recorded as failed.
                exception.SnapmanagerException,
            ) as exc:
                LOG.error(
                    "Restore %s: cannot record the failure in the lock of "
                    "server %s: %s",
                    operation.id,
                    operation.instance_uuid,
                    exc,
                )
        if db_api.operation_update_step(
            context,
            operation.id,
            expected,
            {"state": models.OPERATION_FAILED, "error": error},
        ):
            LOG.error("Restore %s failed at %s: %s", operation.id, step, error)
            self._notify(context, "error", operation.id)

    def _notify(self, context, phase, operation_id):
        """Announce the restore as it now is (read back: the operation
        in hand is as it was when this conductor took it)."""
        if not notifier.enabled():
            return
        try:
            operation = db_api.operation_get(context, operation_id)
            snapshot = db_api.snapshot_get(context, operation.snapshot_id)
        except exception.NotFound as exc:
            LOG.warning("Restore %s not announced: %s", operation_id, exc)
            return
        if operation.type != "restore":
            return  # abandoning one restores nothing
        notifier.restore(context, phase, operation, snapshot)

    # The agent's reports (from the conductor's RPC endpoint)

    def _restore_operation(self, context, operation_id):
        try:
            operation = db_api.operation_get(context, operation_id)
        except exception.OperationNotFound:
            return None
        return operation if operation.type == "restore" else None

    def agent_progress(self, context, operation_id, progress, step):
        """Record the agent's progress; False if not a restore."""
        operation = self._restore_operation(context, operation_id)
        if operation is None:
            return False
        db_api.operation_update_step(
            context,
            operation_id,
            RESTORE.name,
            {"progress": agent_progress(progress)},
        )
        return True

    def agent_finished(self, context, operation_id, error=None):
        """The agent's part is done: go on (in a thread of our own), or
        fail. False if not a restore."""
        operation = self._restore_operation(context, operation_id)
        if operation is None:
            return False
        if operation.step != RESTORE.name:
            LOG.warning(
                "Restore %s: agent report at step %s dropped",
                operation_id,
                operation.step,
            )
            return True
        if error is not None:
            self._fail(
                context, operation, RESTORE, f"the agent failed: {error}"
            )
            return True
        # Whichever conductor gets the report carries on.
        if db_api.operation_update_step(
            context,
            operation_id,
            RESTORE.name,
            {
                "step": START.name,
                "progress": START.progress,
                "conductor_host": self.host,
            },
        ):
            self._start(context, operation_id)
        return True


def _on_new_thread(func, *args):
    threading.Thread(target=func, args=args, daemon=True).start()


def _describe(exc):
    if isinstance(exc, sdk_exc.ResourceTimeout):
        return f"Nova did not finish in time: {exc}"
    if isinstance(exc, sdk_exc.ResourceFailure):
        return f"Nova failed: {exc}"
    if isinstance(exc, sdk_exc.HttpException):
        return f"Nova refused: {exc}"
    return str(exc) or type(exc).__name__
