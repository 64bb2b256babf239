"""Nova's versioned notifications: the inventory between syncs, and
getting out of the way of Nova's delete, rebuild and shelve-offload.

The conductors consume Nova's ``versioned_notifications`` topic (on
exchange ``nova``) from a pool of their own (``[conductor]
notification_pool``): each notification reaches one conductor, and Nova's
other consumers (a billing service, say) still get their copies.

Timing matters for three events. Nova sends ``instance.delete.start``,
``instance.rebuild.start`` and ``instance.shelve_offload.start`` before
its compute driver destroys the instance's disks; with RBD, the driver's
``rbd remove`` of an image that still has snapshots fails, is retried for
about a minute and then given up, leaking the image. So on those events
the conductor at once calls the agent's ``release_instance`` (a call,
served at once, on the agent's own thread for it), which takes our
snapshots off Nova's images (or, on rebuild and shelve-offload by
default, moves the images carrying them out of Nova's sight), and
Nova's first removal succeeds. A delete notification that is missed or
comes late is covered by the inventory sync (see
doc/source/conductor.rst). ``instance.rebuild.start`` sent by another
compute host than the instance's announces an evacuation, which
releases nothing.

Every other ``instance.*`` notification only updates the inventory row
of a known instance, and only if it is newer than what the row holds
(notifications are handled on several threads and may be seen out of
order). ``instance.delete.end`` marks the instance deleted and tidies up
(:meth:`.inventory.InstanceCleanup.deleted`). So the recorded host
follows every move to the host its last event names (resize_finish,
resize_revert, rebuild for an evacuation, unshelve,
live_migration_post_dest), except ``instance.live_migration_post.*``,
which the source sends last with the host it had before
(:data:`STALE_SOURCE_EVENTS`); see doc/source/multihost.rst.
"""

import dataclasses
import datetime

import oslo_messaging as messaging
from oslo_log import log as logging

from snapmanager_nova import context as sm_context
from snapmanager_nova.conductor import inventory
from snapmanager_nova.db import api as db_api
from snapmanager_nova.db import models

LOG = logging.getLogger(__name__)

# Nova starts removing the instance's disks right after these.
RELEASE_EVENTS = {
    "instance.delete.start": "delete",
    "instance.rebuild.start": "rebuild",
    "instance.shelve_offload.start": "shelve-offload",
}
DELETED_EVENT = "instance.delete.end"
# Nova announces an evacuation with this event too, from the destination
# host's compute service while the payload's ``host`` (the instance's)
# is still the source: the disks Nova is about to reuse there must not be
# touched. Only a rebuild published by the instance's own host is one.
REBUILD_EVENT = "instance.rebuild.start"
# Sent by a live migration's source host after the destination has
# taken the server over, from the source's own copy of the instance: its
# ``host`` and ``task_state`` are those from before the move (nova/
# compute/manager.py ``_post_live_migration``), and its timestamp is
# later than the destination's ``instance.live_migration_post_dest.end``
# that recorded the new host. Taking it would send the next snapshot to
# the host the server just left; the destination's events, and the
# sync, say where it is.
STALE_SOURCE_EVENTS = (
    "instance.live_migration_post.start",
    "instance.live_migration_post.end",
)
NOVA_COMPUTE = "nova-compute"

# Nova's vm_state (in notifications) -> its API status (in the sync). A
# task in progress is recorded as ``task_state``, which is what decides
# whether a server is busy.
_STATUS_BY_VM_STATE = {
    "active": "ACTIVE",
    "building": "BUILD",
    "stopped": "SHUTOFF",
    "paused": "PAUSED",
    "suspended": "SUSPENDED",
    "rescued": "RESCUE",
    "resized": "VERIFY_RESIZE",
    "soft-delete": "SOFT_DELETED",
    "deleted": inventory.DELETED,
    "error": "ERROR",
    "shelved": "SHELVED",
    "shelved_offloaded": "SHELVED_OFFLOADED",
}


@dataclasses.dataclass(frozen=True)
class Action:
    """What one notification asks of the conductor."""

    state: inventory.ServerState
    # Nova is about to remove the disks: "delete", "rebuild"...
    release: str | None = None
    # Nova has finished deleting the instance.
    deleted: bool = False
    # Nova evacuates the instance (announced as a rebuild): nothing of
    # ours is touched.
    evacuation: bool = False


def _data(obj):
    """The fields of a serialized Nova versioned object."""
    if isinstance(obj, dict) and "nova_object.data" in obj:
        return obj["nova_object.data"]
    return obj or {}


def server_state(payload):
    """A :class:`.inventory.ServerState` from an InstancePayload."""
    data = _data(payload)
    vm_state = data.get("state")
    status = _STATUS_BY_VM_STATE.get(vm_state)
    if status is None and vm_state:
        status = vm_state.upper()
    return inventory.ServerState(
        uuid=data["uuid"],
        project_id=data.get("tenant_id"),
        host=data.get("host"),
        name=data.get("display_name"),
        nova_status=status,
        task_state=data.get("task_state"),
        locked=bool(data.get("locked")),
        locked_reason=data.get("locked_reason"),
        # Nova boots a server without an image only from a volume.
        boot_from_volume=not data.get("image_uuid"),
    )


def publisher_host(publisher_id):
    """The host of a ``nova-compute:<host>`` publisher, else None."""
    service, _, host = (publisher_id or "").partition(":")
    return host if service == NOVA_COMPUTE and host else None


def classify(event_type, payload, publisher_id=None):
    """The :class:`Action` for a notification, or None to ignore it.

    ``instance.rebuild.start`` is a rebuild only when the compute host
    that sent it is the instance's host; otherwise (an evacuation, or a
    sender that cannot be told) nothing is released: a rebuild missed
    this way costs Nova's retries, a release during an evacuation would
    cost the server its disk or its snapshots.
    """
    if not event_type.startswith("instance.") or (
        event_type in STALE_SOURCE_EVENTS
    ):
        return None
    if not _data(payload).get("uuid"):
        return None
    state = server_state(payload)
    release = RELEASE_EVENTS.get(event_type)
    evacuation = False
    if event_type == REBUILD_EVENT and (
        state.host is None or publisher_host(publisher_id) != state.host
    ):
        release, evacuation = None, True
    return Action(
        state=state,
        release=release,
        deleted=event_type == DELETED_EVENT,
        evacuation=evacuation,
    )


def parse_timestamp(value, default):
    """oslo.messaging's ``timestamp`` metadata: naive UTC, as text."""
    if not value:
        return default
    try:
        when = datetime.datetime.fromisoformat(str(value))
    except ValueError:
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when


class NotificationHandler:
    """Acts on :class:`Action`s for the instances Snapmanager knows."""

    def __init__(self, cleanup, sync):
        """``cleanup``: :class:`.inventory.InstanceCleanup`; ``sync``:
        :class:`.inventory.InventorySync` (its ``record``)."""
        self.cleanup = cleanup
        self.sync = sync

    def handle(self, context, action, observed_at):
        uuid = action.state.uuid
        known = db_api.instance_list_by_uuids(context, [uuid])
        if not known:
            return False
        instance = known[0]
        if action.evacuation:
            LOG.info(
                "Nova rebuilds %s away from its host %s (an evacuation): "
                "its snapshots are left as they are",
                uuid,
                action.state.host,
            )
        if action.release and instance.deleted_at is None:
            # First, before anything else: Nova is about to remove the
            # disks.
            self.cleanup.release(context, instance, action.release)
        if action.deleted:
            self.sync.record(context, instance, action.state, observed_at)
        else:
            db_api.instance_update_inventory(
                context, uuid, action.state.values(), observed_at
            )
        return True


class NotificationEndpoint:
    """The oslo.messaging endpoint for Nova's versioned notifications."""

    filter_rule = messaging.NotificationFilter(event_type=r"^instance\.")

    def __init__(self, handler, now=models.utcnow):
        self.handler = handler
        self.now = now

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        action = classify(event_type, payload, publisher_id)
        if action is None:
            return messaging.NotificationResult.HANDLED
        observed_at = parse_timestamp(metadata.get("timestamp"), self.now())
        context = sm_context.get_admin_context()
        try:
            self.handler.handle(context, action, observed_at)
        except Exception:
            # The sync catches up with whatever was missed here; a
            # requeued notification would come back too late to help.
            LOG.exception(
                "Handling %s of %s failed", event_type, action.state.uuid
            )
        return messaging.NotificationResult.HANDLED

    # Nova sends instance.*.error at ERROR priority; the state in its
    # payload is as good as any.
    error = info


def get_listener(conf, handler):
    """A notification listener on Nova's versioned notifications.

    Its transport is ``[nova] notification_transport_url``, or
    Snapmanager's own ``transport_url`` when that is unset.
    """
    transport = messaging.get_notification_transport(
        conf, url=conf.nova.notification_transport_url
    )
    target = messaging.Target(
        topic=conf.nova.notification_topic,
        exchange=conf.nova.notification_exchange,
    )
    return messaging.get_notification_listener(
        transport,
        [target],
        [NotificationEndpoint(handler)],
        pool=conf.conductor.notification_pool,
    )
