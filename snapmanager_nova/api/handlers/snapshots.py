"""Snapshots: listing and showing them, taking one now, deleting, restoring.

Taking a snapshot now and deleting one are recorded first (a snapshot in
``creating`` or ``deleting`` and an operation to follow it) and then cast
to the compute agent on the server's host; the agent reports back to the
conductor, which records the outcome. Restoring is recorded as a pending
operation: the conductor orchestrates it (lock and stop the server in
Nova, have the agent restore, start and unlock), and the operation shows
how far it got.

The snapshot's changes made here are announced here, after the commit
(``snapmanager.snapshot.create.start``, ``delete.start``, and the
``.error`` of a cast the bus refused); the agent's outcome is the
conductor's to announce.
"""

import functools

import oslo_messaging as messaging
from oslo_log import log as logging

from snapmanager_nova import exception
from snapmanager_nova import nova_state
from snapmanager_nova import quota
from snapmanager_nova.api import authz
from snapmanager_nova.api import context as api_context
from snapmanager_nova.api import microversion
from snapmanager_nova.api import pagination
from snapmanager_nova.api import responses
from snapmanager_nova.api import validation
from snapmanager_nova.api import views
from snapmanager_nova.api.handlers import common
from snapmanager_nova.api.schemas import snapshot as schemas
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models
from snapmanager_nova.notifications import notifier

LOG = logging.getLogger(__name__)

PREFIX = "snapmanager:snapshot:"
LIST = PREFIX + "list"
SHOW = PREFIX + "show"
CREATE = PREFIX + "create"
DELETE = PREFIX + "delete"
RESTORE = PREFIX + "restore"


# Listing shows the snapshots that exist or are on their way; deleted
# ones are history, shown when asked for by status.
_LISTED_BY_DEFAULT = [
    status
    for status in models.SNAPSHOT_STATUSES
    if status != models.SNAPSHOT_DELETED
]

_AGENTS = "Snapmanager's compute agents"
# No host name: tenants read it (api/views.py UNAVAILABLE_REASON).
_HOLDER_GONE = (
    "it is unavailable: the compute host storing it is no longer in service"
)


def _holders_gone(context, snapshots):
    """The recorded holders of ``snapshots`` that are out of service for
    good (db_api.snapshot_holders_gone), in one query."""
    return db_api.snapshot_holders_gone(
        context, {row.host for row in snapshots if row.host}
    )


def _server_names(context, snapshots):
    """Server id -> name, from the inventory, in one query."""
    return {
        instance.uuid: instance.name
        for instance in db_api.instance_list_by_uuids(
            context, {row.instance_uuid for row in snapshots}
        )
    }


class SnapshotController:
    def __init__(self, conf, nova, compute_api):
        self.conf = conf
        self.nova = nova
        # A callable giving the compute RPC client; called when a cast is
        # first needed, so the API starts without a message bus.
        self._compute_api_factory = compute_api
        self._compute_api = None

    @property
    def compute_api(self):
        if self._compute_api is None:
            self._compute_api = self._compute_api_factory()
        return self._compute_api

    def _get_snapshot(self, context, rule, snapshot_id):
        snapshot = db_api.snapshot_get(context, snapshot_id)
        authz.authorize(
            context,
            rule,
            snapshot.project_id,
            hide=exception.SnapshotNotFound(snapshot_id=snapshot_id),
        )
        return snapshot

    # Listing

    def index(self, req, query):
        context = api_context.get(req)
        server_id = query.get("server_id")
        if server_id is None:
            authz.authorize(context, LIST, context.project_id)
            return self._list(
                req, context, query, project_id=context.project_id
            )
        return self._server_list(req, context, query, server_id)

    def server_index(self, req, server_id, query):
        context = api_context.get(req)
        return self._server_list(req, context, query, server_id)

    def _server_list(self, req, context, query, server_id):
        project_id = common.server_project(self.nova, context, server_id)
        authz.authorize(
            context,
            LIST,
            project_id,
            hide=exception.ServerNotFound(server_id=server_id),
        )
        return self._list(req, context, query, instance_uuid=server_id)

    def _check_marker(self, context, marker, project_id, instance_uuid):
        # The marker must be an item of this very listing: a snapshot of
        # another project would otherwise answer whether it exists.
        try:
            snapshot = db_api.snapshot_get(context, marker)
        except exception.SnapshotNotFound:
            snapshot = None
        if snapshot is None or (
            (project_id is not None and snapshot.project_id != project_id)
            or (
                instance_uuid is not None
                and snapshot.instance_uuid != instance_uuid
            )
        ):
            raise exception.InvalidField(
                field="marker",
                reason=f"{marker!r} is not a snapshot of this listing",
            )

    def _list(self, req, context, query, project_id=None, instance_uuid=None):
        page_size = pagination.limit(query, self.conf.api.max_limit)
        marker = query.get("marker")
        if marker is not None:
            self._check_marker(context, marker, project_id, instance_uuid)
        snapshots = db_api.snapshot_list(
            context,
            instance_uuid=instance_uuid,
            project_id=project_id,
            status=query.get("status", _LISTED_BY_DEFAULT),
            limit=page_size,
            marker=marker,
        )
        names = _server_names(context, snapshots)
        gone = _holders_gone(context, snapshots)
        version = microversion.get(req)
        # Asked once per owning project, not once per row.
        detail = functools.cache(
            lambda project_id: authz.sees_error_detail(context, project_id)
        )
        return responses.json_response(
            200,
            {
                "snapshots": [
                    views.snapshot(
                        row,
                        names.get(row.instance_uuid),
                        error_detail=detail(row.project_id),
                        holder_gone=row.host in gone,
                        version=version,
                    )
                    for row in snapshots
                ],
                "snapshots_links": pagination.links(
                    req, query, snapshots, page_size, lambda row: row.id
                ),
            },
        )

    def show(self, req, snapshot_id):
        context = api_context.get(req)
        snapshot = self._get_snapshot(context, SHOW, snapshot_id)
        names = _server_names(context, [snapshot])
        return responses.json_response(
            200,
            {
                "snapshot": views.snapshot(
                    snapshot,
                    names.get(snapshot.instance_uuid),
                    error_detail=authz.sees_error_detail(
                        context, snapshot.project_id
                    ),
                    holder_gone=bool(_holders_gone(context, [snapshot])),
                    version=microversion.get(req),
                )
            },
        )

    # Taking a snapshot now

    def create(self, req, server_id):
        context = api_context.get(req)
        server = self.nova.get(context, server_id)
        authz.authorize(
            context,
            CREATE,
            server.project_id,
            hide=exception.ServerNotFound(server_id=server_id),
        )
        body = validation.json_body(req, schemas.CREATE, required=False)
        quiesce = (body or {}).get("quiesce", schemas.DEFAULT_QUIESCE)
        # Stopped and locked for a restore, or held by a failed one: a
        # snapshot now would race the agent's restore.
        holder = db_api.operation_holding(context, server_id)
        if holder is not None:
            raise exception.ServerHeld(
                server_id=server_id,
                type=holder.type,
                operation_id=holder.id,
                state=holder.state,
            )
        if (
            server.status not in nova_state.SNAPSHOTTABLE_STATUSES
            or not server.host
        ):
            raise exception.ServerNotReady(
                server_id=server_id,
                action="snapshotted",
                reason=f"it is {server.status}"
                + ("" if server.host else " and has no compute host"),
            )
        with db_api.context_manager.writer.using(context):
            instance = db_api.instance_create_or_update(
                context,
                server.id,
                {"project_id": server.project_id, "host": server.host},
            )
            # Refused ones write nothing: the transaction rolls back.
            quota.check_on_demand_rate(context, server.id, models.utcnow())
            quota.check_snapshot(context, server.project_id)
            index = db_api.instance_allocate_snapshot_index(context, server.id)
            snapshot = db_api.snapshot_create(
                context,
                {
                    "instance_uuid": server.id,
                    "snapshot_index": index,
                    "backend": instance.backend,
                },
            )
            operation = db_api.operation_create(
                context,
                {
                    "type": "snapshot",
                    "instance_uuid": server.id,
                    "snapshot_id": snapshot.id,
                },
            )
        notifier.snapshot_changed(
            context,
            snapshot,
            None,
            source=notifier.API,
            operation_id=operation.id,
        )
        # Cast after the commit, so the agent never works on rows that
        # are not there yet.
        self._cast_or_fail(
            context,
            snapshot,
            operation,
            lambda: self.compute_api.create_snapshot(
                context, server.host, server.id, snapshot.id, index, quiesce
            ),
        )
        return self._accepted(req, snapshot, operation)

    # Deleting

    def delete(self, req, snapshot_id):
        context = api_context.get(req)
        snapshot = self._get_snapshot(context, DELETE, snapshot_id)
        if snapshot.status not in (
            models.SNAPSHOT_AVAILABLE,
            models.SNAPSHOT_ERROR,
        ):
            raise exception.SnapshotNotDeletable(
                snapshot_id=snapshot_id,
                reason=f"it is {snapshot.status}; only available and "
                "error snapshots can be deleted",
            )
        # A file-backed snapshot's storage is in its holder's store,
        # wherever the server went since; any other is reached from the
        # host Snapmanager last recorded for the server (from Nova's
        # record, whenever a policy is set or a snapshot taken), which
        # also holds for a server Nova has since deleted.
        instance = db_api.instance_get(context, snapshot.instance_uuid)
        holder = snapshot.host or instance.host
        if not holder:
            raise exception.SnapshotNotDeletable(
                snapshot_id=snapshot_id,
                reason=f"no compute host is known for server {instance.uuid}",
            )
        if _holders_gone(context, [snapshot]):
            raise exception.SnapshotNotDeletable(
                snapshot_id=snapshot_id,
                reason=_HOLDER_GONE,
            )
        previous = snapshot.status
        with db_api.context_manager.writer.using(context):
            # Conditional: of two concurrent deletes one gets 409.
            snapshot = db_api.snapshot_update_status(
                context, snapshot_id, models.SNAPSHOT_DELETING
            )
            operation = db_api.operation_create(
                context,
                {
                    "type": "delete",
                    "instance_uuid": instance.uuid,
                    "snapshot_id": snapshot_id,
                },
            )
        notifier.snapshot_changed(
            context,
            snapshot,
            previous,
            source=notifier.API,
            operation_id=operation.id,
        )
        self._cast_or_fail(
            context,
            snapshot,
            operation,
            lambda: self.compute_api.delete_snapshot(
                context,
                holder,
                snapshot.id,
                instance.uuid,
                snapshot.backend,
                snapshot.snapshot_index,
                snapshot.disks,
            ),
        )
        return self._accepted(req, snapshot, operation)

    # Actions

    def action(self, req, snapshot_id):
        context = api_context.get(req)
        snapshot = self._get_snapshot(context, RESTORE, snapshot_id)
        validation.json_body(req, schemas.ACTION)
        return self._restore(req, context, snapshot)

    def _restore(self, req, context, snapshot):
        if snapshot.status != models.SNAPSHOT_AVAILABLE:
            raise exception.SnapshotNotRestorable(
                index=snapshot.snapshot_index,
                instance_uuid=snapshot.instance_uuid,
                reason=f"it is {snapshot.status}, not available",
            )
        if _holders_gone(context, [snapshot]):
            raise exception.SnapshotNotRestorable(
                index=snapshot.snapshot_index,
                instance_uuid=snapshot.instance_uuid,
                reason=_HOLDER_GONE,
            )
        server_id = snapshot.instance_uuid
        common.check_restorable(self.nova, context, server_id)
        # The restore's hold on the server is a unique key: of two
        # requests racing, the database lets one in (ServerHeld, 409).
        operation = db_api.operation_create(
            context,
            {
                "type": "restore",
                "instance_uuid": server_id,
                "snapshot_id": snapshot.id,
            },
        )
        return common.operation_accepted(req, operation)

    # Shared

    def _accepted(self, req, snapshot, operation):
        return common.operation_accepted(
            req, operation, {"snapshot": views.snapshot(snapshot)}
        )

    def _cast_or_fail(self, context, snapshot, operation, cast):
        """Cast to the agent; if the bus refuses, record the failure.

        The rows are already committed, so a cast that fails must not
        leave them claiming work is under way: the snapshot goes to
        ``error`` and the operation to ``failed``, with the reason, and
        the client gets 503.
        """
        try:
            cast()
        except messaging.MessagingException as exc:
            LOG.error(
                "Cannot cast to the agent for snapshot %s: %s",
                snapshot.id,
                exc,
            )
            reason = "the request could not be sent to the compute agent"
            # Written for tenants: the summary is the same text.
            failed = db_api.snapshot_update_status(
                context,
                snapshot.id,
                models.SNAPSHOT_ERROR,
                error=reason,
                error_summary=reason,
            )
            db_api.operation_update(
                context,
                operation.id,
                {
                    "state": models.OPERATION_FAILED,
                    "error": reason,
                    "error_summary": reason,
                },
            )
            notifier.snapshot_changed(
                context,
                failed,
                snapshot.status,
                source=notifier.API,
                operation_id=operation.id,
            )
            raise exception.ServiceUnavailable(
                service=_AGENTS, reason=reason
            ) from exc
