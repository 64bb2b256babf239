"""Sending Snapmanager's versioned notifications.

One notifier per process, built from the configuration on first use
(as :mod:`snapmanager_nova.rpc` builds the RPC transport):
oslo.messaging's notification transport (``[oslo_messaging_notifications]
transport_url``, else ``[DEFAULT] transport_url``), its ``driver``
(``messagingv2`` when unset), and the topics of ``[notifications]
versioned_notifications_topics``. With ``[notifications] enabled =
false`` there is no notifier and nothing is built or sent; nor when no
transport URL is configured at all (an API run without a message bus),
where oslo.messaging would try ``rabbit://localhost`` forever.

Each event is sent by the code that makes the change it announces, once
the change is committed, and names that code's service in its publisher
id (``snapmanager-api:<host>`` or ``snapmanager-conductor:<host>``, as
Nova's ``nova-compute:<host>``). A notification that cannot be sent is
logged and dropped: it never fails the work it describes.
"""

import threading

import oslo_messaging as messaging
from oslo_config import cfg
from oslo_log import log as logging

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import rpc
from snapmanager_nova.notifications import payloads

CONF = sm_conf.CONF
LOG = logging.getLogger(__name__)

# The services that send, as Nova's NotificationSource names its own.
API = "snapmanager-api"
CONDUCTOR = "snapmanager-conductor"
# The driver when [oslo_messaging_notifications] driver is unset.
DEFAULT_DRIVER = "messagingv2"

_NOTIFIER = None
_BUILT = False
_GUARD = threading.Lock()


def build(conf):
    """A notifier for ``conf``, or None when notifications are off."""
    if not conf.notifications.enabled:
        return None
    # Registers [oslo_messaging_notifications] on conf.
    transport = messaging.get_notification_transport(conf)
    if not (
        _configured(conf, "transport_url", "oslo_messaging_notifications")
        or _configured(conf, "transport_url")
    ):
        transport.cleanup()
        LOG.warning(
            "[notifications] enabled, but no transport_url is set in "
            "[oslo_messaging_notifications] or [DEFAULT]: no notifications "
            "are sent"
        )
        return None
    driver = (
        None if conf.oslo_messaging_notifications.driver else DEFAULT_DRIVER
    )
    return messaging.Notifier(
        transport,
        driver=driver,
        topics=conf.notifications.versioned_notifications_topics,
        serializer=rpc.RequestContextSerializer(),
    )


def _configured(conf, name, group=None):
    """Whether the option has a value other than its default (oslo.messaging
    defaults ``[DEFAULT] transport_url`` to ``rabbit://``: localhost)."""
    location = conf.get_location(name, group)
    return (
        location is not None
        and location.location is not cfg.Locations.opt_default
        and bool(conf[group][name] if group else conf[name])
    )


def get_notifier():
    """The process's notifier (None when off), built on first use."""
    global _NOTIFIER, _BUILT
    with _GUARD:
        if not _BUILT:
            _NOTIFIER = build(CONF)
            _BUILT = True
        return _NOTIFIER


def enabled():
    return get_notifier() is not None


def cleanup():
    """Forget the notifier and close its transport (tests, shutdown); the
    next notification builds it again from the configuration."""
    global _NOTIFIER, _BUILT
    with _GUARD:
        if _NOTIFIER is not None:
            _NOTIFIER.transport.cleanup()
        _NOTIFIER = None
        _BUILT = False


def send(context, source, event_type, build, *args):
    """Send ``event_type`` (None: nothing) with the payload ``build(*args)``,
    built only when notifications are on. Errors are logged, never
    raised."""
    notifier = get_notifier()
    if notifier is None or event_type is None:
        return
    try:
        payload = build(*args)
        prepared = notifier.prepare(publisher_id=f"{source}:{CONF.host}")
        if payloads.is_error(event_type):
            prepared.error(context, event_type, payload)
        else:
            prepared.info(context, event_type, payload)
    except Exception:
        LOG.exception("Notification %s could not be sent", event_type)


# The events. Callers hand over rows as committed.


def snapshot_changed(
    context,
    snapshot,
    previous,
    source=CONDUCTOR,
    operation_id=None,
    freed_bytes=None,
):
    """``snapshot`` moved from status ``previous`` (None: just recorded)
    to its current one: send that change's ``snapmanager.snapshot.*``
    event, if it has one."""
    send(
        context,
        source,
        payloads.snapshot_event(previous, snapshot.status),
        payloads.snapshot,
        snapshot,
        operation_id,
        freed_bytes,
    )


def restore(context, phase, operation, snapshot=None):
    """``snapmanager.snapshot.restore.<phase>`` (start, end, error)."""
    send(
        context,
        CONDUCTOR,
        payloads.restore_event(phase),
        payloads.restore,
        operation,
        snapshot,
    )


def policy_changed(
    context, action, server_id, project_id, instance=None, schedules=()
):
    """``snapmanager.snapshot_policy.<action>`` (update, delete): the
    server's policy as it is after the change."""
    send(
        context,
        API,
        payloads.policy_event(action),
        payloads.policy,
        server_id,
        project_id,
        instance,
        schedules,
    )


def default_policy_changed(context, action, project_id, schedules=()):
    """``snapmanager.default_snapshot_policy.<action>``: the project's
    default policy as it is after the change."""
    send(
        context,
        API,
        payloads.policy_event(action, default=True),
        payloads.default_policy,
        project_id,
        schedules,
    )
