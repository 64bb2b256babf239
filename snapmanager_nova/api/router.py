"""The API's routes, and the WSGI application that dispatches them.

The tables below are the whole surface of the API: the OpenAPI test
checks ``doc/api/openapi.yaml`` against them in both directions. A path
that exists with another method answers 405 with ``Allow``; a path that
does not exist answers 404, both as JSON errors.

Each route names the query parameters it takes, as a schema; the router
validates the query string against it (a route without one takes none),
so no handler can forget to refuse a parameter it does not know.
"""

import dataclasses
import re

import webob.dec

from snapmanager_nova import exception
from snapmanager_nova.api import errors
from snapmanager_nova.api import validation
from snapmanager_nova.api.schemas import common
from snapmanager_nova.api.schemas import snapshot
from snapmanager_nova.api.schemas import snapshot_policy
from snapmanager_nova.api.schemas import stale_server

# (method, path template, controller name, controller method, query
# schema or None). A handler with a query schema gets the validated
# parameters as ``query``.
PUBLIC_ROUTES = [
    ("GET", "/", "root", "versions", None),
    ("GET", "/healthcheck", "root", "healthcheck", None),
    ("HEAD", "/healthcheck", "root", "healthcheck", None),
]

V1_PREFIX = "/v1/"

V1_ROUTES = [
    (
        "GET",
        "/v1/servers/{server_id}/snapshot-policy",
        "snapshot_policies",
        "show",
        None,
    ),
    (
        "PUT",
        "/v1/servers/{server_id}/snapshot-policy",
        "snapshot_policies",
        "update",
        None,
    ),
    (
        "DELETE",
        "/v1/servers/{server_id}/snapshot-policy",
        "snapshot_policies",
        "delete",
        None,
    ),
    (
        "GET",
        "/v1/snapshot-policies",
        "snapshot_policies",
        "index",
        snapshot_policy.LIST_QUERY,
    ),
    (
        "GET",
        "/v1/projects/{project_id}/default-snapshot-policy",
        "project_defaults",
        "show",
        None,
    ),
    (
        "PUT",
        "/v1/projects/{project_id}/default-snapshot-policy",
        "project_defaults",
        "update",
        None,
    ),
    (
        "DELETE",
        "/v1/projects/{project_id}/default-snapshot-policy",
        "project_defaults",
        "delete",
        None,
    ),
    ("GET", "/v1/snapshots", "snapshots", "index", snapshot.LIST_QUERY),
    (
        "GET",
        "/v1/servers/{server_id}/snapshots",
        "snapshots",
        "server_index",
        snapshot.SERVER_LIST_QUERY,
    ),
    ("POST", "/v1/servers/{server_id}/snapshots", "snapshots", "create", None),
    ("GET", "/v1/snapshots/{snapshot_id}", "snapshots", "show", None),
    ("DELETE", "/v1/snapshots/{snapshot_id}", "snapshots", "delete", None),
    (
        "POST",
        "/v1/snapshots/{snapshot_id}/action",
        "snapshots",
        "action",
        None,
    ),
    ("GET", "/v1/operations/{operation_id}", "operations", "show", None),
    (
        "POST",
        "/v1/operations/{operation_id}/action",
        "operations",
        "action",
        None,
    ),
    (
        "GET",
        "/v1/stale-servers",
        "stale_servers",
        "index",
        stale_server.LIST_QUERY,
    ),
    # From microversion 1.1 (handlers/quota_sets.py).
    ("GET", "/v1/quota-sets/{project_id}", "quota_sets", "show", None),
    ("PUT", "/v1/quota-sets/{project_id}", "quota_sets", "update", None),
    ("DELETE", "/v1/quota-sets/{project_id}", "quota_sets", "delete", None),
]

_PARAMETER = re.compile(r"\{(\w+)\}")

# What each path parameter must look like, checked before any handler
# runs, and what answers one that does not: an id that cannot be one is
# answered as an unknown one (404, as Nova answers a server id that is
# not a UUID); a malformed project id is 400, naming it. Either way it
# never reaches the database, which refuses to compare some characters
# (beyond the BMP) with an error of its own.
PATH_PARAMETERS = {
    "server_id": (
        common.UUID,
        lambda value: exception.ServerNotFound(server_id=value),
    ),
    "snapshot_id": (
        common.UUID,
        lambda value: exception.SnapshotNotFound(snapshot_id=value),
    ),
    "operation_id": (
        common.UUID,
        lambda value: exception.OperationNotFound(operation_id=value),
    ),
    "project_id": (common.PROJECT_ID, None),
}


def check_path_parameters(path_params):
    for name, value in path_params.items():
        # Every route's parameters are in the table (a unit test says
        # so); one that is not is left to its handler.
        schema, not_found = PATH_PARAMETERS.get(name, (None, None))
        if schema is None:
            continue
        try:
            validation.validate(schema, value, root=name)
        except exception.InvalidField:
            if not_found is None:
                raise
            raise not_found(value) from None


def compile_template(template):
    """``/v1/snapshots/{snapshot_id}`` as an anchored regular expression.

    A parameter is one path segment; it is percent-decoded already
    (``PATH_INFO``) and checked by :func:`check_path_parameters`.
    """
    pattern = ""
    position = 0
    for match in _PARAMETER.finditer(template):
        pattern += re.escape(template[position : match.start()])
        pattern += f"(?P<{match.group(1)}>[^/]+)"
        position = match.end()
    pattern += re.escape(template[position:])
    return re.compile(f"^{pattern}$")


_NO_QUERY = {"type": "object", "additionalProperties": False}


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    template: str
    regex: re.Pattern
    handler: object
    query_schema: dict | None

    def dispatch(self, req, path_params):
        check_path_parameters(path_params)
        if self.query_schema is None:
            validation.query(req, _NO_QUERY)
            return self.handler(req, **path_params)
        query = validation.query(req, self.query_schema)
        return self.handler(req, query=query, **path_params)


class Router:
    """Dispatch a request to the handler of its method and path.

    :param table: rows of ``(method, template, controller, method name,
        query schema)``.
    :param controllers: controller objects by name.
    """

    def __init__(self, table, controllers):
        self.routes = [
            Route(
                method,
                template,
                compile_template(template),
                getattr(controllers[controller], action),
                query_schema,
            )
            for method, template, controller, action, query_schema in table
        ]

    @webob.dec.wsgify
    def __call__(self, req):
        path = req.path_info
        allowed = []
        for route in self.routes:
            match = route.regex.match(path)
            if match is None:
                continue
            if route.method == req.method:
                return route.dispatch(req, match.groupdict())
            allowed.append(route.method)
        if allowed:
            raise errors.HTTPError(
                405,
                f"Method {req.method} is not allowed on {path}.",
                headers={"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise errors.HTTPError(404, f"No resource at {path}.")
