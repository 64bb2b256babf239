"""Helpers the resource handlers share."""

from snapmanager_nova import exception
from snapmanager_nova import nova_state
from snapmanager_nova.api import responses
from snapmanager_nova.api import views
from snapmanager_nova.db import api as db_api


def server_project(nova, context, server_id):
    """The project that owns ``server_id``.

    Nova's record decides. A server Nova no longer has may still have a
    policy row and snapshots kept after its deletion; then Snapmanager's
    own record of the server (written from Nova's while it existed)
    decides.

    :raises ServerNotFound: neither Nova nor Snapmanager know the server.
    """
    try:
        return nova.get(context, server_id).project_id
    except exception.ServerNotFound:
        try:
            return db_api.instance_get(context, server_id).project_id
        except exception.InstanceNotFound:
            raise exception.ServerNotFound(server_id=server_id) from None


def check_restorable(nova, context, server_id):
    """Refuse, before anything is recorded or locked, a restore (or its
    retry) of a server Nova could not stop and start around it.

    :raises ServerNotReady: Nova no longer has the server, or shows it
        in a state a restore cannot start from
        (:func:`snapmanager_nova.nova_state.restore_refusal`).
    """
    try:
        server = nova.get(context, server_id)
    except exception.ServerNotFound:
        raise exception.ServerNotReady(
            server_id=server_id,
            action="restored",
            reason="Nova no longer has it, and a restore works in place",
        ) from None
    refusal = nova_state.restore_refusal(
        server.status, server.host, server.task_state
    )
    if refusal is not None:
        raise exception.ServerNotReady(
            server_id=server_id, action="restored", reason=refusal
        )


def operation_accepted(req, operation, body=None):
    """The 202 answer to a request that started ``operation``, with
    ``Location`` where a client polls it."""
    return responses.json_response(
        202,
        dict(body or {}, operation=views.operation(operation)),
        headers={
            "Location": f"{req.application_url}/v1/operations/{operation.id}"
        },
    )
