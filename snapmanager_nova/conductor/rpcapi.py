"""Client side of the conductor's RPC API, used by the compute agents.

Agents never touch the database: every result they produce reaches it
through these casts, and the conductor is the only writer. Casts (not
calls) so that an agent's worker never waits on the conductor; the
conductor's handlers are idempotent, so a result recorded twice is
harmless.

API version history:

* 1.0 - Initial version.
* 1.1 - agent_started: an agent says which backends it serves once it
  serves RPC. A 1.0 conductor refuses it (logged, nothing else lost), so
  only that message asks for 1.1.
* 1.2 - snapshots_reported: the outcomes of snapshots that came in one
  create_snapshots cast (compute RPC 1.1), in batches: created, failed,
  and sizes measured after the snapshot was reported. Only an agent
  answering a create_snapshots cast sends it, so a conductor that
  batches is the one asked.
"""

import oslo_messaging as messaging

from snapmanager_nova import rpc

TOPIC = "snapmanager-conductor"


class ConductorAPI:
    RPC_API_VERSION = "1.2"

    def __init__(self):
        target = messaging.Target(topic=TOPIC, version=self.RPC_API_VERSION)
        self.client = rpc.get_client(target)

    def _cast(self, context, method, version="1.0", **kwargs):
        self.client.prepare(version=version).cast(context, method, **kwargs)

    def agent_started(self, context, host, backends):
        """The agent on ``host`` serves RPC, with ``backends``: work on
        them may go to it, and what waited for it is tried again."""
        self._cast(
            context,
            "agent_started",
            version="1.1",
            host=host,
            backends=backends,
        )

    def service_heartbeat(self, context, binary, host, topic):
        self._cast(
            context, "service_heartbeat", binary=binary, host=host, topic=topic
        )

    def instance_progress(self, context, instance_uuid, committed, index):
        """Record the instance's ``committed`` flag; ``index`` is the
        snapshot being taken (committed=False) or just committed into the
        root disk (committed=True, becoming ``root_index``)."""
        self._cast(
            context,
            "instance_progress",
            instance_uuid=instance_uuid,
            committed=committed,
            index=index,
        )

    def snapshot_created(self, context, snapshot_id, result):
        self._cast(
            context, "snapshot_created", snapshot_id=snapshot_id, result=result
        )

    def snapshots_reported(self, context, reports):
        """``reports``: dicts with ``snapshot_id`` and one of ``result``
        (as snapshot_created's), ``error`` (as snapshot_failed's) or
        ``size_bytes`` (measured after the snapshot was reported)."""
        self._cast(
            context, "snapshots_reported", version="1.2", reports=reports
        )

    def snapshot_failed(self, context, snapshot_id, error):
        self._cast(
            context, "snapshot_failed", snapshot_id=snapshot_id, error=error
        )

    def snapshot_deleted(self, context, snapshot_id, freed_bytes):
        self._cast(
            context,
            "snapshot_deleted",
            snapshot_id=snapshot_id,
            freed_bytes=freed_bytes,
        )

    def operation_progress(self, context, operation_id, progress, step):
        self._cast(
            context,
            "operation_progress",
            operation_id=operation_id,
            progress=progress,
            step=step,
        )

    def operation_finished(self, context, operation_id, error=None):
        self._cast(
            context,
            "operation_finished",
            operation_id=operation_id,
            error=error,
        )

    def recovery_report(self, context, host, actions):
        """``actions``: RecoveryAction dicts from an agent's start."""
        self._cast(context, "recovery_report", host=host, actions=actions)
