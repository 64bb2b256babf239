"""Test doubles of what the API talks to: Nova, and the compute agents."""

import dataclasses
import uuid

from snapmanager_nova import exception
from snapmanager_nova.api import nova

DEMO = "demo"
OTHER = "other"
ADMIN_PROJECT = "admin"
# A well-formed id nothing has.
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"

# Identities as noauth reads them from the headers. As with Keystone's
# implied roles, a member is also a reader.
READER = {"X-Project-Id": DEMO, "X-User-Id": "reader", "X-Roles": "reader"}
MEMBER = {
    "X-Project-Id": DEMO,
    "X-User-Id": "member",
    "X-Roles": "reader,member",
}
OTHER_MEMBER = {
    "X-Project-Id": OTHER,
    "X-User-Id": "stranger",
    "X-Roles": "reader,member",
}
ADMIN = {
    "X-Project-Id": ADMIN_PROJECT,
    "X-User-Id": "admin",
    "X-Roles": "reader,member,admin",
}
NO_ROLES = {"X-Project-Id": DEMO, "X-User-Id": "nobody", "X-Roles": ""}
ANONYMOUS = {}


class FakeNovaServers(nova.NovaServers):
    """Servers kept in a dict; ``unavailable`` makes every lookup fail."""

    def __init__(self):
        self.servers = {}
        self.unavailable = False
        self.lookups = []

    def add(
        self,
        project_id=DEMO,
        host="compute-1",
        status="ACTIVE",
        task_state=None,
    ):
        server = nova.Server(
            id=str(uuid.uuid4()),
            project_id=project_id,
            host=host,
            status=status,
            name=f"vm-{len(self.servers)}",
            task_state=task_state,
        )
        self.servers[server.id] = server
        return server

    def replace(self, server, **changes):
        self.servers[server.id] = dataclasses.replace(server, **changes)

    def delete(self, server):
        del self.servers[server.id]

    def get(self, context, server_id):
        self.lookups.append(server_id)
        if self.unavailable:
            raise exception.ServiceUnavailable(
                service="Nova's compute API", reason="test says so"
            )
        try:
            return self.servers[server_id]
        except KeyError:
            raise exception.ServerNotFound(server_id=server_id) from None


class RecordingComputeAPI:
    """Records the casts the API makes; ``fail_with`` makes them raise."""

    def __init__(self):
        self.casts = []
        self.fail_with = None

    def _record(self, method, **kwargs):
        if self.fail_with is not None:
            raise self.fail_with
        self.casts.append((method, kwargs))

    def create_snapshot(
        self, context, host, instance_uuid, snapshot_id, index, quiesce
    ):
        self._record(
            "create_snapshot",
            host=host,
            instance_uuid=instance_uuid,
            snapshot_id=snapshot_id,
            index=index,
            quiesce=quiesce,
        )

    def delete_snapshot(
        self, context, host, snapshot_id, instance_uuid, backend, index, disks
    ):
        self._record(
            "delete_snapshot",
            host=host,
            snapshot_id=snapshot_id,
            instance_uuid=instance_uuid,
            backend=backend,
            index=index,
            disks=disks,
        )
