"""Client side of the compute agents' RPC API, used by the conductor.

Each agent listens on topic ``snapmanager-compute`` with its ``host`` as
server name, the host Nova records for the instance; the conductor
addresses the agent of the instance's host. Work is cast: the agent
reports the outcome back through the conductor's API. Only questions
(``list_snapshots``) are calls.

API version history:

* 1.0 - Initial version.
"""

import oslo_messaging as messaging

from snapmanager_nova import rpc

TOPIC = "snapmanager-compute"


class ComputeAPI:
    RPC_API_VERSION = "1.0"

    def __init__(self):
        target = messaging.Target(topic=TOPIC, version=self.RPC_API_VERSION)
        self.client = rpc.get_client(target)

    def create_snapshot(
        self, context, host, instance_uuid, snapshot_id, index, quiesce
    ):
        self.client.prepare(server=host).cast(
            context,
            "create_snapshot",
            instance_uuid=instance_uuid,
            snapshot_id=snapshot_id,
            index=index,
            quiesce=quiesce,
        )

    def restore_snapshot(
        self, context, host, operation_id, instance_uuid, backend, index, disks
    ):
        self.client.prepare(server=host).cast(
            context,
            "restore_snapshot",
            operation_id=operation_id,
            instance_uuid=instance_uuid,
            backend=backend,
            index=index,
            disks=disks,
        )

    def delete_snapshot(
        self, context, host, snapshot_id, instance_uuid, backend, index, disks
    ):
        self.client.prepare(server=host).cast(
            context,
            "delete_snapshot",
            snapshot_id=snapshot_id,
            instance_uuid=instance_uuid,
            backend=backend,
            index=index,
            disks=disks,
        )

    def list_snapshots(
        self, context, host, instance_uuid, backend, timeout=60
    ):
        """Snapshot indexes present in storage (for reconciliation)."""
        return self.client.prepare(server=host, timeout=timeout).call(
            context,
            "list_snapshots",
            instance_uuid=instance_uuid,
            backend=backend,
        )

    def release_instance(self, context, host, instance_uuid, backend, keep):
        """Make Nova's removal of the instance's disks succeed at once.

        A call: returns (the snapshot indexes removed or kept) only when
        Nova may go ahead.
        """
        return self.client.prepare(server=host).call(
            context,
            "release_instance",
            instance_uuid=instance_uuid,
            backend=backend,
            keep=keep,
        )
