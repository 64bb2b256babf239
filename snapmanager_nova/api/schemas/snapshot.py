"""Schemas of snapshots, and of the actions on them."""

from snapmanager_nova.api.schemas import common
from snapmanager_nova.db import models

# The compute agent's quiesce policies (compute/guest.py, documented
# there). Spelt out rather than imported: that module needs libvirt,
# which an API host has no use for. A unit test keeps the two equal.
QUIESCE_POLICIES = ("prefer", "require", "skip")
DEFAULT_QUIESCE = "prefer"

CREATE = {
    "type": "object",
    "properties": {
        "quiesce": {"type": "string", "enum": list(QUIESCE_POLICIES)},
    },
    "additionalProperties": False,
}

RESTORE = {"type": "object", "properties": {}, "additionalProperties": False}

ACTION = {
    "type": "object",
    "properties": {"restore": RESTORE},
    "required": ["restore"],
    "additionalProperties": False,
}

# The tenant's way out of a failed restore (POST /v1/operations/{id}/
# action): exactly one of these, checked by the handler so the message
# can say so.
OPERATION_ACTIONS = ("retry", "abandon")
OPERATION_ACTION = {
    "type": "object",
    "properties": {name: RESTORE for name in OPERATION_ACTIONS},
    "additionalProperties": False,
}

_STATUS = {"type": "string", "enum": list(models.SNAPSHOT_STATUSES)}

LIST_QUERY = common.query_schema(
    server_id=common.UUID, status=_STATUS, **common.PAGINATION
)

SERVER_LIST_QUERY = common.query_schema(status=_STATUS, **common.PAGINATION)
