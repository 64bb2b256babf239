"""Options of the [notifications] group: Snapmanager's own notifications.

Snapmanager announces its snapshots, restores and policy changes as
versioned notifications in Nova's form (doc/source/notifications.rst).
They go out through oslo.messaging's notifier, so its
``[oslo_messaging_notifications]`` options (``driver``,
``transport_url``) apply as for any OpenStack service.
"""

from oslo_config import cfg

GROUP_NAME = "notifications"


def _group():
    # A new group object for every ConfigOpts: oslo.config keeps an
    # option's override in the group object, so a shared one would carry
    # one ConfigOpts' overrides into another (see conf/nova.py).
    return cfg.OptGroup(
        GROUP_NAME,
        title="Notification options",
        help="Snapmanager's versioned notifications (`snapmanager.snapshot."
        "create.start` and the like, in Nova's form) sent by "
        "snapmanager-api and snapmanager-conductor. They are sent with "
        "oslo.messaging's `[oslo_messaging_notifications] driver` on its "
        "`transport_url` (unset: `[DEFAULT] transport_url`); with that "
        "driver unset, `messagingv2`.",
    )


notifications_opts = [
    cfg.BoolOpt(
        "enabled",
        default=True,
        help="Send Snapmanager's versioned notifications. False sends "
        "none, whatever `[oslo_messaging_notifications] driver` says.",
    ),
    cfg.ListOpt(
        "versioned_notifications_topics",
        default=["versioned_notifications"],
        help="Topics the versioned notifications are sent on, on the "
        "`snapmanager` exchange. A consumer listening on Nova's exchange "
        "does not see them; consumers of both listen on both exchanges.",
    ),
]


def register_opts(conf):
    group = _group()
    conf.register_group(group)
    conf.register_opts(notifications_opts, group=group)


def list_opts():
    return {_group(): notifications_opts}
