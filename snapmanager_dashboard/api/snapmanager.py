"""Snapmanager's REST API for the dashboard's views, as the signed-in user.

The only module that builds a client. It is
:class:`snapmanager_nova.apiclient.Client` on a keystoneauth session
carrying the user's Keystone token, pointed at the catalog's
``snapmanager`` endpoint that Horizon's own ``url_for`` picks (so
``OPENSTACK_ENDPOINT_TYPE``, ``SECONDARY_ENDPOINT_TYPE`` and the user's
region apply as to every other service), with Horizon's TLS settings
(``OPENSTACK_SSL_CACERT``, ``OPENSTACK_SSL_NO_VERIFY``). The API version
it speaks is the shared client's ``API_VERSION``: one place for both
plugins.

Views call the flat ``<resource>_<verb>(request, ...)`` functions; they
return :class:`~openstack_dashboard.api.base.APIDictWrapper` objects (the
API's JSON, read as attributes) and raise :class:`APIError`, whose text
is the API's own message.
"""

import functools

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from horizon.utils import memoized
from keystoneauth1 import exceptions as ksa_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
from openstack_dashboard.api import base

from snapmanager_dashboard import constants
from snapmanager_nova import apiclient

API_VERSION = apiclient.API_VERSION
APIError = apiclient.APIError
# A request the API does not answer in this time fails with a message
# instead of holding the page (and a Horizon worker) for ever.
TIMEOUT = 60
USER_AGENT = "snapmanager-dashboard"


UNREACHABLE = _(
    "The snapshot service cannot be reached at the moment; try again later."
)


def _api_call(function):
    """Raise every failure to get an answer as :class:`APIError` too.

    The client turns the API's error answers into APIError with the
    API's message; an answer that never came (connection refused, a
    timeout) is keystoneauth's error, which no view expects: it would
    be a 500 page. Its text names hosts and ports, so the user gets a
    plain one instead.
    """

    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (
            ksa_exceptions.ConnectionError,
            ksa_exceptions.RetriableConnectionFailure,
        ):
            raise APIError(503, str(UNREACHABLE)) from None

    return wrapped


class Policy(base.APIDictWrapper):
    """A server's snapshot policy, or a project's default one."""

    @property
    def id(self):
        return self._apidict.get("server_id") or self._apidict["project_id"]


class Snapshot(base.APIDictWrapper):
    pass


class Operation(base.APIDictWrapper):
    pass


def is_enabled(request):
    """Whether the user's catalog has a Snapmanager endpoint in their
    region."""
    return base.is_service_enabled(request, constants.SERVICE_TYPE)


def _verify():
    cacert = getattr(settings, "OPENSTACK_SSL_CACERT", None)
    if cacert:
        return cacert
    return not getattr(settings, "OPENSTACK_SSL_NO_VERIFY", False)


@memoized.memoized
def snapmanagerclient(request):
    """The client of the request's user (one per request)."""
    endpoint = base.url_for(request, constants.SERVICE_TYPE)
    session = ks_session.Session(
        auth=token_endpoint.Token(endpoint, request.user.token.id),
        verify=_verify(),
        timeout=TIMEOUT,
        user_agent=USER_AGENT,
    )
    return apiclient.Client(session, endpoint_override=endpoint)


# A server's policy


@_api_call
def policy_get(request, server_id):
    """The server's policy, or None when snapshots are off for it."""
    found = snapmanagerclient(request).find_policy(server_id)
    return None if found is None else Policy(found)


@_api_call
def policy_set(request, server_id, schedules, keep_after_delete):
    body = {"schedules": schedules, "keep_after_delete": keep_after_delete}
    return Policy(snapmanagerclient(request).set_policy(server_id, body))


@_api_call
def policy_delete(request, server_id):
    snapmanagerclient(request).unset_policy(server_id)


@_api_call
def policy_list(request):
    """The policies of the user's project's servers."""
    return [Policy(p) for p in snapmanagerclient(request).list_policies()]


# The project's default policy


@_api_call
def default_policy_get(request):
    found = snapmanagerclient(request).find_default_policy(
        request.user.project_id
    )
    return None if found is None else Policy(found)


@_api_call
def default_policy_set(request, schedules):
    answer = snapmanagerclient(request).set_default_policy(
        request.user.project_id, {"schedules": schedules}
    )
    return Policy(answer)


@_api_call
def default_policy_delete(request):
    snapmanagerclient(request).unset_default_policy(request.user.project_id)


# Snapshots and operations


@_api_call
def snapshot_list(request, server_id=None, status=None):
    """Oldest first, without deleted ones unless ``status`` asks."""
    snapshots = snapmanagerclient(request).list_snapshots(
        server_id=server_id, status=status
    )
    return [Snapshot(s) for s in snapshots]


@_api_call
def snapshot_get(request, snapshot_id):
    return Snapshot(snapmanagerclient(request).show_snapshot(snapshot_id))


@_api_call
def snapshot_create(request, server_id, quiesce=None):
    """Take a snapshot now: ``(snapshot, operation)``."""
    snapshot, operation = snapmanagerclient(request).create_snapshot(
        server_id, quiesce=quiesce
    )
    return Snapshot(snapshot), Operation(operation)


@_api_call
def snapshot_delete(request, snapshot_id):
    snapmanagerclient(request).delete_snapshot(snapshot_id)


@_api_call
def snapshot_restore(request, snapshot_id):
    """Restore the snapshot's server from it: the restore operation."""
    operation = snapmanagerclient(request).restore_snapshot(snapshot_id)
    return Operation(operation)


@_api_call
def operation_get(request, operation_id):
    return Operation(snapmanagerclient(request).show_operation(operation_id))


@_api_call
def operation_retry(request, operation_id):
    """Restore again after a failed restore: the new operation."""
    return Operation(snapmanagerclient(request).retry_operation(operation_id))


@_api_call
def operation_abandon(request, operation_id):
    """Give a failed restore's server back: the operation doing it."""
    answer = snapmanagerclient(request).abandon_operation(operation_id)
    return Operation(answer)
