"""Schema pieces shared by several resources."""

UUID = {
    "type": "string",
    "pattern": (
        "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
        "[0-9a-fA-F]{12}$"
    ),
    "description": "a UUID",
}

# Query values are strings; the handler turns the limit into a number and
# checks it against [api] max_limit, which is configuration, not schema.
LIMIT = {
    "type": "string",
    "pattern": "^[0-9]{1,9}$",
    "description": "a whole number",
}

PAGINATION = {"limit": LIMIT, "marker": UUID}


def query_schema(**properties):
    """A query-string schema: only the named parameters, all optional."""
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
