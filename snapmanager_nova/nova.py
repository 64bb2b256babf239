"""Snapmanager's connection to Nova's compute API.

The API (who owns a server, where it runs) and the conductor (the
inventory, locks, stop and start for a restore) both reach Nova through
openstacksdk with Snapmanager's service credentials from ``[nova]``,
loaded the keystoneauth way: the auth plugin, session and adapter
options of that group. Never with a tenant's token: what Nova answers
decides what a tenant may do, and only an admin sees every project's
servers and their ``OS-EXT-SRV-ATTR:host``.
"""

import threading

from keystoneauth1 import loading as ks_loading
from openstack import connection
from openstack import exceptions as sdk_exc

from snapmanager_nova import exception
from snapmanager_nova.conf import nova as nova_conf

# The compute API microversion from which a lock carries a reason.
LOCKED_REASON_MICROVERSION = "2.73"
# Nova's limit on a lock reason's length.
MAX_LOCKED_REASON = 255


class NovaNotConfigured(exception.SnapmanagerException):
    msg_fmt = (
        "[nova] sets no auth_type: Snapmanager has no credentials to "
        "reach Nova with"
    )


def connect(conf):
    """A new openstacksdk Connection with the ``[nova]`` credentials."""
    group = nova_conf.GROUP_NAME
    auth = ks_loading.load_auth_from_conf_options(conf, group)
    if auth is None:
        raise NovaNotConfigured()
    session = ks_loading.load_session_from_conf_options(conf, group, auth=auth)
    # openstacksdk reads the adapter options (endpoint, interfaces,
    # region) from the conf group named after the service's project:
    # [nova] for compute.
    return connection.Connection(
        session=session,
        oslo_conf=conf,
        service_types={nova_conf.DEFAULT_SERVICE_TYPE},
    )


class LazyCompute:
    """Nova's compute proxy, connected on first use, shared by threads.

    Connecting late lets a service start (and answer its healthcheck)
    while Keystone or Nova are still coming up.
    """

    def __init__(self, conf):
        self._conf = conf
        self._connection = None
        self._lock = threading.Lock()

    @property
    def configured(self):
        """Whether ``[nova]`` names credentials at all."""
        return bool(self._conf[nova_conf.GROUP_NAME].auth_type)

    def get(self):
        with self._lock:
            if self._connection is None:
                self._connection = connect(self._conf)
            return self._connection.compute


def lock_server(compute, server_id, reason):
    """Lock the server in Nova with ``reason`` (at most 255 characters).

    Asked at microversion 2.73 explicitly: an older one would drop the
    reason, and the reason is how a lock of Snapmanager's is told apart
    from a tenant's or an operator's. Locking a server that is already
    locked replaces the reason when the caller is not the server's owner
    (Snapmanager's service user never is).
    """
    response = compute.post(
        f"/servers/{server_id}/action",
        json={"lock": {"locked_reason": reason[:MAX_LOCKED_REASON]}},
        microversion=LOCKED_REASON_MICROVERSION,
    )
    sdk_exc.raise_from_response(response)
