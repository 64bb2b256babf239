"""Schema of a project's quota set, as an admin sets it."""

# A limit is a count or GiB; -1 is unlimited. The ceiling keeps it in
# the column's range with room to spare.
_LIMIT = {"type": "integer", "minimum": -1, "maximum": 2**31 - 1}

UPDATE = {
    "type": "object",
    "properties": {
        "quota_set": {
            "type": "object",
            "properties": {
                "snapshots": _LIMIT,
                "snapshot_gigabytes": _LIMIT,
            },
            "additionalProperties": False,
            "minProperties": 1,
        },
    },
    "required": ["quota_set"],
    "additionalProperties": False,
}
