"""Helpers the resource handlers share."""

from snapmanager_nova import exception
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
