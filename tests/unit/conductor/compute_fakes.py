"""A stand-in for the compute agents' RPC API, for the conductor's unit
tests: it records casts and answers ``list_snapshots`` from a dict. The
real agents are in the functional tests."""

import collections

import oslo_messaging as messaging

from snapmanager_nova.conductor import retries
from snapmanager_nova.db import api as db_api


class FakeComputeAPI:
    def __init__(self, backends=("file", "rbd")):
        self.backends = backends
        self.casts = []
        # (instance_uuid, backend) -> indexes in storage
        self.stored = collections.defaultdict(set)
        self.refuse_casts = False
        self.silent_hosts = set()
        self.listed = []

    def _cast(self, *call):
        if self.refuse_casts:
            raise messaging.MessagingException("the bus is down")
        self.casts.append(call)

    def create_snapshot(
        self, context, host, instance_uuid, snapshot_id, index, quiesce
    ):
        self._cast("create", host, instance_uuid, snapshot_id, index)

    def delete_snapshot(
        self, context, host, snapshot_id, instance_uuid, backend, index, disks
    ):
        self._cast("delete", host, instance_uuid, snapshot_id, index)

    def list_snapshots(
        self, context, host, instance_uuid, backend, timeout=60
    ):
        self.listed.append(instance_uuid)
        if host in self.silent_hosts:
            raise messaging.MessagingTimeout("no answer")
        if backend not in self.backends:
            raise messaging.RemoteError(
                "Invalid", f"backend: {backend!r} is not enabled"
            )
        return sorted(self.stored[(instance_uuid, backend)])

    def of(self, kind):
        return [call[1:] for call in self.casts if call[0] == kind]


def agent_up(ctx, host="compute-1"):
    db_api.service_heartbeat(ctx, retries.COMPUTE_BINARY, host)
