"""Schema of the freshness check's query string."""

from snapmanager_nova.api.schemas import common

LIST_QUERY = common.query_schema(
    project_id=common.PROJECT_ID,
    grace={
        "type": "string",
        "pattern": "^[0-9]{1,9}$",
        "description": "a whole number of seconds",
    },
    **common.PAGINATION,
)
