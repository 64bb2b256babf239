"""oslo.messaging plumbing shared by the conductor and the compute agents.

One RPC transport per process, built from ``[DEFAULT] transport_url``.
Request contexts travel with every message so the receiving side logs and
acts with the caller's request id and identity.
"""

import oslo_messaging as messaging

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import context as sm_context

CONF = sm_conf.CONF

# Snapmanager's RPC topics live on an exchange of their own, apart from
# Nova's, whatever else shares the RabbitMQ.
messaging.set_transport_defaults(control_exchange="snapmanager")

_TRANSPORT = None


class RequestContextSerializer(messaging.NoOpSerializer):
    """Carry a RequestContext across RPC as a plain dict."""

    def serialize_context(self, context):
        return context.to_dict()

    def deserialize_context(self, context):
        return sm_context.RequestContext.from_dict(context)


def get_transport():
    """The process's RPC transport, created on first use."""
    global _TRANSPORT
    if _TRANSPORT is None:
        _TRANSPORT = messaging.get_rpc_transport(CONF)
    return _TRANSPORT


def cleanup():
    """Close the transport (tests and service shutdown)."""
    global _TRANSPORT
    if _TRANSPORT is not None:
        _TRANSPORT.cleanup()
    _TRANSPORT = None


def get_client(target, version_cap=None):
    return messaging.get_rpc_client(
        get_transport(),
        target,
        version_cap=version_cap,
        serializer=RequestContextSerializer(),
    )


def get_server(target, endpoints):
    return messaging.get_rpc_server(
        get_transport(),
        target,
        endpoints,
        serializer=RequestContextSerializer(),
    )
