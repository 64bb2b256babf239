"""Schema pieces shared by several resources."""

UUID = {
    "type": "string",
    "pattern": (
        "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
        "[0-9a-fA-F]{12}$"
    ),
    "description": "a UUID",
}

# A Keystone project id as the API accepts it in a path or a query:
# Keystone's are hex, and printable ASCII leaves room for other
# identity backends. Other characters could never match a stored id,
# and some (beyond the BMP) the database refuses to compare at all.
PROJECT_ID = {
    "type": "string",
    "pattern": "^[!-~]{1,255}$",
    "description": "a project id (1 to 255 printable ASCII characters)",
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
