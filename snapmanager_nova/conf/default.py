"""Options of the [DEFAULT] group shared by every Snapmanager process."""

import socket

from oslo_config import cfg

default_opts = [
    cfg.StrOpt(
        "host",
        default=socket.gethostname(),
        sample_default="<current_hostname>",
        help="Name of this node. For snapmanager-compute it must equal the "
        "`host` that nova-compute on the same machine reports, because the "
        "conductor addresses the agent by the host Nova records for an "
        "instance.",
    ),
    cfg.StrOpt(
        "state_path",
        default="/var/lib/snapmanager",
        help="Top-level directory for Snapmanager's own state on this node.",
    ),
    cfg.IntOpt(
        "report_interval",
        default=10,
        min=1,
        help="Seconds between two heartbeats of a service; the conductor "
        "considers a service down after `[conductor] service_down_time`.",
    ),
]


def register_opts(conf):
    conf.register_opts(default_opts)


def list_opts():
    return {"DEFAULT": default_opts}
