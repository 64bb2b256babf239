"""Schemas of snapshot policies: a server's, and a project's default."""

from snapmanager_nova.api.schemas import common

# A policy is for a handful of schedules (a daily, a weekly, a monthly);
# the cap keeps one request from queueing unbounded work on the clock.
MAX_SCHEDULES = 20

_COUNT = {"type": ["integer", "null"]}

RETENTION = {
    "type": "object",
    "properties": {
        "keep_count": _COUNT,
        "keep_last": _COUNT,
        "hourly": _COUNT,
        "daily": _COUNT,
        "weekly": _COUNT,
        "monthly": _COUNT,
        "yearly": _COUNT,
        "max_age": {"type": ["integer", "string", "null"], "maxLength": 32},
    },
    "additionalProperties": False,
}

SCHEDULE = {
    "type": "object",
    "properties": {
        "spec": {"type": "string", "maxLength": 255},
        "timezone": {"type": "string", "maxLength": 64},
        "retention": RETENTION,
        "enabled": {"type": "boolean"},
    },
    "required": ["spec"],
    "additionalProperties": False,
}

SERVER_POLICY = {
    "type": "object",
    "properties": {
        # Empty is allowed: snapshots on, taken by the project's default
        # schedules.
        "schedules": {
            "type": "array",
            "items": SCHEDULE,
            "maxItems": MAX_SCHEDULES,
        },
        "keep_after_delete": {"type": "boolean"},
    },
    "required": ["schedules"],
    "additionalProperties": False,
}

PROJECT_DEFAULT = {
    "type": "object",
    "properties": {
        # A default without schedules would be no default: DELETE it.
        "schedules": {
            "type": "array",
            "items": SCHEDULE,
            "minItems": 1,
            "maxItems": MAX_SCHEDULES,
        },
    },
    "required": ["schedules"],
    "additionalProperties": False,
}

LIST_QUERY = common.query_schema(
    all_projects={
        "type": "string",
        "enum": ["0", "1", "false", "true"],
    },
    **common.PAGINATION,
)
