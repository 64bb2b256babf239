"""Options of the [nova] group: how Snapmanager reaches Nova.

The API asks Nova's compute API who owns a server and where it runs
before it lets a tenant touch the server's snapshots; the conductor
keeps its inventory of servers from it and locks, stops and starts a
server for a restore. Both do so with service credentials of their own
(keystoneauth's auth, session and adapter options), never with a
tenant's token: the answer decides what the tenant may do, so the tenant
must not be the one asking. The conductor also listens to Nova's
versioned notifications (the ``notification_*`` options).
"""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

GROUP_NAME = "nova"
DEFAULT_SERVICE_TYPE = "compute"


def _group():
    # A new group object for every ConfigOpts: oslo.config keeps a
    # group's options in the group object, and keystoneauth adds the
    # chosen auth plugin's options when it loads the plugin. Shared, one
    # ConfigOpts' plugin options (auth_url, required) would show up in
    # every other, the process's global CONF included.
    return cfg.OptGroup(
        GROUP_NAME,
        title="Nova API options",
        help="How snapmanager-api and snapmanager-conductor reach Nova's "
        "compute API to look up servers' project, host and status, and to "
        "lock, stop and start a server being restored. The credentials are "
        "Snapmanager's service user; it needs a role that Nova's policy "
        "allows to see every project's servers and their "
        "`OS-EXT-SRV-ATTR:host` and to lock, stop and start them (admin by "
        "default). Set `auth_type` and that keystoneauth plugin's options "
        "here, e.g. for `password`: auth_url, username, password, "
        "user_domain_name, project_name, project_domain_name.",
    )


notification_opts = [
    cfg.StrOpt(
        "notification_transport_url",
        secret=True,
        help="oslo.messaging URL of the bus Nova sends its versioned "
        "notifications to. Unset: Snapmanager's own `[DEFAULT] "
        "transport_url`, since Nova usually shares the RabbitMQ.",
    ),
    cfg.StrOpt(
        "notification_topic",
        default="versioned_notifications",
        help="Topic of Nova's versioned notifications (Nova's "
        "`[notifications] versioned_notifications_topics`).",
    ),
    cfg.StrOpt(
        "notification_exchange",
        default="nova",
        help="Exchange Nova's notifications are sent to (Nova's "
        "`control_exchange`).",
    ),
]


def _adapter_opts():
    opts = ks_loading.get_adapter_conf_options(include_deprecated=False)
    # Nova's public and internal endpoints serve the same API; prefer the
    # internal one, as services talking to services normally do.
    cfg.set_defaults(
        opts,
        service_type=DEFAULT_SERVICE_TYPE,
        valid_interfaces=["internal", "public"],
    )
    return opts


def register_opts(conf):
    nova_group = _group()
    conf.register_group(nova_group)
    ks_loading.register_session_conf_options(conf, GROUP_NAME)
    ks_loading.register_auth_conf_options(conf, GROUP_NAME)
    conf.register_opts(_adapter_opts(), group=nova_group)
    conf.register_opts(notification_opts, group=nova_group)


def list_opts():
    # Only what register_opts registers: the chosen plugin's own options
    # are registered by keystoneauth when it loads the plugin, and which
    # plugin that is only the deployment knows (the group's help names
    # the usual ones).
    return {
        _group(): (
            ks_loading.get_session_conf_options()
            + ks_loading.get_auth_common_conf_options()
            + _adapter_opts()
            + notification_opts
        )
    }
