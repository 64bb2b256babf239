"""The conductor's RPC endpoint: agents' results into the database.

Every handler is idempotent. oslo.messaging delivers a cast at most once,
but an agent may report the same outcome again after a restart, and a
snapshot may have been moved on meanwhile (deleted by an operator, timed
out by reconciliation): a result that no longer fits the row's status is
logged and dropped, never allowed to overwrite a later state.
"""

import oslo_messaging as messaging
from oslo_log import log as logging

from snapmanager_nova import exception
from snapmanager_nova.conductor import rpcapi
from snapmanager_nova.conductor import snapshot_operations
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models

LOG = logging.getLogger(__name__)

_MAX_ERROR = snapshot_operations.MAX_ERROR


def _backend_of(result):
    backend = result.get("backend")
    found = {"backend": backend} if backend else {}
    # Where a file-backed snapshot is stored (its holder); RBD ones live
    # in the cluster and record none.
    if backend == "file" and result.get("host"):
        found["host"] = result["host"]
    return found


def _created_fields(result):
    """The snapshot's fields an agent's result of a snapshot made sets."""
    fields = {
        "disks": result["disks"],
        "quiesced": result["quiesced"],
        # Agents report which of their backends took it: restore and
        # delete must go to the same one.
        **_backend_of(result),
        # The reason of an earlier, retried try is history now.
        "error": None,
    }
    if result.get("size_bytes") is not None:
        # None: measured later, and recorded then (the size may even
        # come first: it must not be overwritten).
        fields["size_bytes"] = result["size_bytes"]
    return fields


class ConductorManager:
    target = messaging.Target(version=rpcapi.ConductorAPI.RPC_API_VERSION)

    def __init__(
        self, restores=None, retention=None, dispatcher=None, releases=None
    ):
        """``restores``: the :class:`.restore.RestoreOrchestrator` that
        takes the agents' reports on restores (None: recorded as is).
        ``retention``: the :class:`.retention.Retention` applied after
        each success; ``dispatcher``: the :class:`.retries.
        SnapshotDispatcher` that retries transient failures (None: no
        retention, no retries). ``releases``: the :class:`.release.
        DeletedServerRelease` told when an agent starts (None: not told).
        """
        self.restores = restores
        self.retention = retention
        self.dispatcher = dispatcher
        self.releases = releases

    def service_heartbeat(self, context, binary, host, topic):
        db_api.service_heartbeat(context, binary, host, topic=topic)

    def agent_started(self, context, host, backends):
        if self.releases is not None:
            self.releases.agent_started(context, host, backends)

    def instance_progress(self, context, instance_uuid, committed, index):
        try:
            db_api.instance_set_progress(
                context,
                instance_uuid,
                committed,
                root_index=index if committed else None,
            )
        except exception.NotFound:
            LOG.warning(
                "Progress for unknown instance %s dropped", instance_uuid
            )

    def snapshot_created(self, context, snapshot_id, result):
        created = self._record_created(context, {snapshot_id: result})
        if created and self.retention is not None:
            self.retention.after_successes(context, created)

    def snapshots_reported(self, context, reports):
        """Outcomes of snapshots an agent got in one ``create_snapshots``
        cast (RPC 1.2), in the order the agent had them: each recorded as
        its own report would be, and retention applied once per instance
        and schedule of the batch, after the newest of its snapshots.

        The successes and the sizes are each recorded in one transaction,
        and retention reads what it needs in one: a fan-out of snapshots
        costs a few statements per batch and one UPDATE per snapshot.
        """
        results = {}
        sizes = {}
        for report in reports:
            snapshot_id = report["snapshot_id"]
            if "result" in report:
                results[snapshot_id] = report["result"]
            elif "error" in report:
                self.snapshot_failed(context, snapshot_id, report["error"])
            elif "size_bytes" in report:
                sizes[snapshot_id] = report["size_bytes"]
        created = self._record_created(context, results)
        # A size may come in the same batch as its result, after it.
        db_api.snapshots_set_sizes(context, sizes)
        if self.retention is not None and created:
            newest = {
                (row.instance_uuid, row.schedule_id): row for row in created
            }
            self.retention.after_successes(context, list(newest.values()))

    def _record_created(self, context, results):
        """Record snapshots made ({snapshot id: the agent's result}); the
        rows moved to available, in the order of ``results`` (a result
        that no longer fits its row is logged and dropped)."""
        if not results:
            return []
        created, dropped = db_api.snapshots_update_status(
            context,
            {
                snapshot_id: _created_fields(result)
                for snapshot_id, result in results.items()
            },
            models.SNAPSHOT_AVAILABLE,
        )
        for snapshot_id, status in dropped.items():
            LOG.warning(
                "Result for snapshot %s dropped: %s",
                snapshot_id,
                "it is gone" if status is None else f"it is {status}",
            )
        snapshot_operations.finish_all(
            context, created, models.SNAPSHOT_CREATING
        )
        return created

    def snapshot_failed(self, context, snapshot_id, error):
        """A snapshot could not be made, or could not be deleted."""
        if self.dispatcher is not None and self.dispatcher.retry_failure(
            context, snapshot_id, error
        ):
            return
        # Creating or deleting: which of the two failed, for its event.
        previous = self._status_of(context, snapshot_id)
        snapshot = self._set_status(
            context,
            snapshot_id,
            models.SNAPSHOT_ERROR,
            error=str(error)[:_MAX_ERROR],
        )
        if snapshot is not None:
            snapshot_operations.finish(context, snapshot, previous, error)

    def snapshot_deleted(self, context, snapshot_id, freed_bytes):
        LOG.info(
            "Snapshot %s deleted, %d bytes freed", snapshot_id, freed_bytes
        )
        snapshot = self._set_status(
            context, snapshot_id, models.SNAPSHOT_DELETED
        )
        if snapshot is not None:
            snapshot_operations.finish(
                context,
                snapshot,
                models.SNAPSHOT_DELETING,
                freed_bytes=freed_bytes,
            )
            if self.releases is not None:
                self.releases.deletion_confirmed(context, snapshot)

    def operation_progress(self, context, operation_id, progress, step):
        if self.restores is not None and self.restores.agent_progress(
            context, operation_id, progress, step
        ):
            return
        self._update_operation(
            context,
            operation_id,
            {
                "state": models.OPERATION_RUNNING,
                "progress": progress,
                "step": step,
            },
        )

    def operation_finished(self, context, operation_id, error=None):
        # A restore goes on after the agent's part: the orchestrator
        # starts and unlocks the server, or records the failure.
        if self.restores is not None and self.restores.agent_finished(
            context, operation_id, error
        ):
            return
        if error is None:
            values = {"state": models.OPERATION_SUCCEEDED, "step": "done"}
        else:
            values = {
                "state": models.OPERATION_FAILED,
                "error": str(error)[:_MAX_ERROR],
            }
        self._update_operation(context, operation_id, values)

    def recovery_report(self, context, host, actions):
        """An agent restarted and finished or undid half-done work.

        A snapshot whose taking was interrupted is never counted unless
        its copy had completed (the action carries the result then): if
        its row still says ``creating`` it becomes ``available`` with that
        result, or ``error`` with what the agent did about it, and a later
        run takes a new one.
        """
        for action in actions:
            uuid, index = action["instance_uuid"], action["snapshot_index"]
            LOG.warning(
                "Agent on %s recovered instance %s snapshot index %s: %s %s",
                host,
                uuid,
                index,
                action["action"],
                action.get("detail", ""),
            )
            interrupted = db_api.snapshot_list(
                context,
                instance_uuid=uuid,
                status=models.SNAPSHOT_CREATING,
            )
            for snapshot in interrupted:
                if snapshot.snapshot_index != index:
                    continue
                if "result" in action:
                    self.snapshot_created(
                        context, snapshot.id, action["result"]
                    )
                else:
                    self.snapshot_failed(
                        context,
                        snapshot.id,
                        f"agent on {host} restarted while taking it; "
                        f"recovery: {action['action']}",
                    )
            self.instance_progress(context, uuid, True, index)

    def _status_of(self, context, snapshot_id):
        try:
            return db_api.snapshot_get(context, snapshot_id).status
        except exception.NotFound:
            return None

    def _set_status(self, context, snapshot_id, status, **fields):
        """The updated row, or None if the result was dropped."""
        try:
            return db_api.snapshot_update_status(
                context, snapshot_id, status, **fields
            )
        except (exception.InvalidStatusTransition, exception.NotFound) as exc:
            LOG.warning("Result for snapshot %s dropped: %s", snapshot_id, exc)
            return None

    def _update_operation(self, context, operation_id, values):
        try:
            db_api.operation_update(context, operation_id, values)
        except (exception.InvalidStatusTransition, exception.NotFound) as exc:
            LOG.warning(
                "Update of operation %s dropped: %s", operation_id, exc
            )
