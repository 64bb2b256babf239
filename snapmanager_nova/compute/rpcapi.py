"""Client side of the compute agents' RPC API, used by the conductor.

Each agent listens on topic ``snapmanager-compute`` with its ``host`` as
server name, the host Nova records for the instance; the conductor
addresses the agent of the instance's host. Work is cast: the agent
reports the outcome back through the conductor's API. Only questions
(``list_snapshots``) are calls.

API version history:

* 1.0 - Initial version.
* 1.1 - create_snapshots: many snapshots for one host in one cast, the
  outcomes reported back in batches (conductor RPC 1.2). A 1.0 agent
  refuses it: ``[conductor] batch_casts`` off keeps single casts while
  agents of the previous release run.
* 1.2 - ``describe_snapshot_files``, ``fetch_snapshot`` and
  ``drop_snapshot_copy``: a file-backed snapshot restored on the host
  its server moved to is copied there from its holder's store (calls).
"""

import oslo_messaging as messaging

from snapmanager_nova import rpc

TOPIC = "snapmanager-compute"


class ComputeAPI:
    RPC_API_VERSION = "1.2"

    def __init__(self):
        target = messaging.Target(topic=TOPIC, version=self.RPC_API_VERSION)
        self.client = rpc.get_client(target)

    def create_snapshot(
        self, context, host, instance_uuid, snapshot_id, index, quiesce
    ):
        self.client.prepare(server=host, version="1.0").cast(
            context,
            "create_snapshot",
            instance_uuid=instance_uuid,
            snapshot_id=snapshot_id,
            index=index,
            quiesce=quiesce,
        )

    def create_snapshots(self, context, host, snapshots):
        """``snapshots``: dicts of create_snapshot's arguments
        (instance_uuid, snapshot_id, index, quiesce), all on ``host``."""
        self.client.prepare(server=host, version="1.1").cast(
            context, "create_snapshots", snapshots=snapshots
        )

    def restore_snapshot(
        self, context, host, operation_id, instance_uuid, backend, index, disks
    ):
        self.client.prepare(server=host, version="1.0").cast(
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
        self.client.prepare(server=host, version="1.0").cast(
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
        return self.client.prepare(
            server=host, version="1.0", timeout=timeout
        ).call(
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
        return self.client.prepare(server=host, version="1.0").call(
            context,
            "release_instance",
            instance_uuid=instance_uuid,
            backend=backend,
            keep=keep,
        )

    # A snapshot whose server moved (1.2)

    def describe_snapshot_files(self, context, host, instance_uuid, index):
        """What the holder ``host`` says another host must fetch of
        file-backed snapshot ``index``, and where from."""
        return self.client.prepare(server=host, version="1.2").call(
            context,
            "describe_snapshot_files",
            instance_uuid=instance_uuid,
            index=index,
        )

    def fetch_snapshot(
        self, context, host, instance_uuid, index, source, timeout
    ):
        """Have ``host`` copy the snapshot into its store from ``source``
        (:meth:`describe_snapshot_files`); a call waiting ``timeout``
        seconds, as long as the copy may take there."""
        return self.client.prepare(
            server=host, version="1.2", timeout=timeout
        ).call(
            context,
            "fetch_snapshot",
            instance_uuid=instance_uuid,
            index=index,
            source=source,
        )

    def drop_snapshot_copy(self, context, host, instance_uuid, index, disks):
        """Delete ``host``'s copy of a snapshot another host now holds."""
        return self.client.prepare(server=host, version="1.2").call(
            context,
            "drop_snapshot_copy",
            instance_uuid=instance_uuid,
            index=index,
            disks=disks,
        )
