"""A small client of Snapmanager's REST API v1 (doc/source/api.rst).

It is a keystoneauth Adapter on a session its user already has (the
``openstack`` command's, or one Horizon builds from the user's token),
so authentication, TLS options, debug logging and the request ids are
keystoneauth's. Every method returns the API's JSON as dicts; an error
answer becomes :class:`APIError` carrying the API's own message.

It depends on keystoneauth only: the OSC plugin (osc/v1/client.py) and
the Horizon plugin (snapmanager_dashboard/api/) both use it, and a
Horizon host has no osc_lib.
"""

import urllib.parse

from keystoneauth1 import adapter
from keystoneauth1 import exceptions as ksa_exceptions

SERVICE_TYPE = "snapmanager"
VERSION_PREFIX = "/v1"
# The API microversion this client speaks, sent with every request as
# ``OpenStack-API-Version: snapmanager 1.0``. Raise it only together
# with the code that uses what the new version adds: a newer API keeps
# answering 1.0 requests the way 1.0 did.
API_VERSION = "1.0"
# The snapshot view lists and show ask for: status ``unavailable`` with
# its reason, and ``host`` for administrators (doc/source/multihost.rst).
SNAPSHOT_VIEW_VERSION = "1.4"


class APIError(Exception):
    """The API refused a request; ``str()`` is the API's message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def _message_of(exc):
    """The ``error.message`` of the API's (or keystonemiddleware's) JSON
    error body; keystoneauth's own text when there is none (a proxy's
    HTML page, a connection cut)."""
    try:
        message = exc.response.json()["error"]["message"]
    except (AttributeError, ValueError, KeyError, TypeError):
        return str(exc)
    return message if isinstance(message, str) else str(exc)


def versioned_endpoint(endpoint):
    """The v1 base URL for a catalog or override URL.

    Operators register either the API's root (``http://host:8799``) or
    its v1 URL; both mean the same service, so ``/v1`` is added only when
    it is not already the last path segment.
    """
    base = endpoint.rstrip("/")
    if urllib.parse.urlsplit(base).path.endswith(VERSION_PREFIX):
        return base
    return base + VERSION_PREFIX


class NoEndpoint(Exception):
    """The catalog has no Snapmanager endpoint for the client's interface
    and region."""


class Client:
    # What an error answer is raised as; a user of the client may raise
    # its own subclass of APIError (the OSC plugin's is a CommandError).
    error_class = APIError

    def __init__(
        self,
        session,
        interface=None,
        region_name=None,
        endpoint_override=None,
    ):
        self._adapter = adapter.Adapter(
            session,
            service_type=SERVICE_TYPE,
            interface=interface,
            region_name=region_name,
            endpoint_override=endpoint_override,
            default_microversion=API_VERSION,
        )
        self._base_url = None

    @property
    def base_url(self):
        # Looked up on first use: building the client must not
        # authenticate (``openstack --help`` builds every client).
        if self._base_url is None:
            endpoint = self._adapter.get_endpoint()
            if not endpoint:
                raise self._no_endpoint()
            self._base_url = versioned_endpoint(endpoint)
        return self._base_url

    def _no_endpoint(self):
        return NoEndpoint(
            f"No '{SERVICE_TYPE}' endpoint in the service catalog"
        )

    def _request(self, method, path, body=None, params=None, version=None):
        kwargs = {}
        if body is not None:
            kwargs["json"] = body
        if version is not None:
            # A route newer than API_VERSION asks for the version that
            # added it; the rest of the client stays at API_VERSION.
            kwargs["microversion"] = version
        try:
            response = self._adapter.request(
                self.base_url + path,
                method,
                params=params,
                **kwargs,
            )
        except ksa_exceptions.HttpError as exc:
            raise self.error_class(exc.http_status, _message_of(exc)) from None
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _pages(
        self, path, key, marker_field, params, limit, marker, version=None
    ):
        """The items of a paged list.

        With ``limit``, the one page the caller asked for. Without it,
        every page: the API marks a page that came back full with a
        ``next`` link, and the next page starts after its last item.
        """
        params = {k: v for k, v in params.items() if v is not None}
        if limit is not None:
            params["limit"] = limit
        if marker is not None:
            params["marker"] = marker
        items = []
        while True:
            page = self._request("GET", path, params=params, version=version)
            items.extend(page[key])
            more = any(
                link.get("rel") == "next" for link in page[f"{key}_links"]
            )
            if limit is not None or not more or not page[key]:
                return items
            params["marker"] = page[key][-1][marker_field]

    # A server's policy

    def show_policy(self, server_id):
        path = f"/servers/{server_id}/snapshot-policy"
        return self._request("GET", path)["snapshot_policy"]

    def find_policy(self, server_id):
        """The server's policy, or None if it has none."""
        try:
            return self.show_policy(server_id)
        except APIError as exc:
            if exc.code == 404:
                return None
            raise

    def set_policy(self, server_id, body):
        path = f"/servers/{server_id}/snapshot-policy"
        return self._request("PUT", path, body)["snapshot_policy"]

    def unset_policy(self, server_id):
        self._request("DELETE", f"/servers/{server_id}/snapshot-policy")

    def list_policies(self, all_projects=False, limit=None, marker=None):
        params = {"all_projects": "1" if all_projects else None}
        return self._pages(
            "/snapshot-policies",
            "snapshot_policies",
            "server_id",
            params,
            limit,
            marker,
        )

    # A project's default policy

    def show_default_policy(self, project_id):
        path = f"/projects/{project_id}/default-snapshot-policy"
        return self._request("GET", path)["default_snapshot_policy"]

    def find_default_policy(self, project_id):
        try:
            return self.show_default_policy(project_id)
        except APIError as exc:
            if exc.code == 404:
                return None
            raise

    def set_default_policy(self, project_id, body):
        path = f"/projects/{project_id}/default-snapshot-policy"
        return self._request("PUT", path, body)["default_snapshot_policy"]

    def unset_default_policy(self, project_id):
        path = f"/projects/{project_id}/default-snapshot-policy"
        self._request("DELETE", path)

    # Snapshots

    def list_snapshots(
        self, server_id=None, status=None, limit=None, marker=None
    ):
        path = "/snapshots"
        if server_id is not None:
            path = f"/servers/{server_id}/snapshots"
        # 1.4: a snapshot whose host is gone shows ``unavailable``.
        return self._pages(
            path,
            "snapshots",
            "id",
            {"status": status},
            limit,
            marker,
            version=SNAPSHOT_VIEW_VERSION,
        )

    def show_snapshot(self, snapshot_id):
        return self._request(
            "GET", f"/snapshots/{snapshot_id}", version=SNAPSHOT_VIEW_VERSION
        )["snapshot"]

    def create_snapshot(self, server_id, quiesce=None):
        """Take a snapshot now: ``(snapshot, operation)``."""
        body = {"quiesce": quiesce} if quiesce else {}
        path = f"/servers/{server_id}/snapshots"
        answer = self._request("POST", path, body)
        return answer["snapshot"], answer["operation"]

    def delete_snapshot(self, snapshot_id):
        """Delete a snapshot: ``(snapshot, operation)``."""
        answer = self._request("DELETE", f"/snapshots/{snapshot_id}")
        return answer["snapshot"], answer["operation"]

    def restore_snapshot(self, snapshot_id):
        """Restore the server from a snapshot: the operation."""
        path = f"/snapshots/{snapshot_id}/action"
        return self._request("POST", path, {"restore": {}})["operation"]

    def show_operation(self, operation_id):
        path = f"/operations/{operation_id}"
        return self._request("GET", path)["operation"]

    def retry_operation(self, operation_id):
        """Restore again after a failed restore: the new operation."""
        return self._operation_action(operation_id, "retry")

    def abandon_operation(self, operation_id):
        """Give up a failed restore (Snapmanager unlocks the server): the
        operation that does it."""
        return self._operation_action(operation_id, "abandon")

    def _operation_action(self, operation_id, action):
        # API microversion 1.3 (doc/source/api.rst).
        path = f"/operations/{operation_id}/action"
        return self._request("POST", path, {action: {}}, version="1.3")[
            "operation"
        ]

    # The freshness check (admin; API microversion 1.2)

    def list_stale_servers(
        self, project_id=None, grace=None, limit=None, marker=None
    ):
        params = {"project_id": project_id, "grace": grace}
        return self._pages(
            "/stale-servers",
            "stale_servers",
            "server_id",
            params,
            limit,
            marker,
            version="1.2",
        )

    # Quota sets (API microversion 1.1)

    def show_quotas(self, project_id):
        path = f"/quota-sets/{project_id}"
        return self._request("GET", path, version="1.1")["quota_set"]

    def set_quotas(self, project_id, limits):
        """Override some of the project's limits (admin): the quota set."""
        path = f"/quota-sets/{project_id}"
        body = {"quota_set": limits}
        return self._request("PUT", path, body, version="1.1")["quota_set"]

    def delete_quotas(self, project_id):
        """Drop the project's overrides (admin)."""
        self._request("DELETE", f"/quota-sets/{project_id}", version="1.1")
