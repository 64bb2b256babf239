"""Options of the [conductor] group: the schedule clock and orchestration."""

from oslo_config import cfg

conductor_group = cfg.OptGroup(
    "conductor",
    title="Conductor options",
    help="Options of snapmanager-conductor: the schedule clock, retention, "
    "the Nova inventory and restore orchestration.",
)

conductor_opts = [
    cfg.IntOpt(
        "tick_interval",
        default=30,
        min=1,
        help="Seconds between two passes of the schedule clock over due "
        "schedules.",
    ),
    cfg.IntOpt(
        "claim_batch_size",
        default=200,
        min=1,
        help="Most due schedules one conductor claims in one pass; several "
        "conductors share the rest.",
    ),
    cfg.IntOpt(
        "operation_timeout",
        default=3600,
        min=60,
        help="Seconds after which a snapshot still `creating` or `deleting` "
        "is reconciled against what the compute agent reports exists.",
    ),
    cfg.IntOpt(
        "max_retries",
        default=3,
        min=0,
        help="Times a transient failure of one snapshot is retried, with "
        "exponential backoff and jitter, before it is marked `error`.",
    ),
    cfg.StrOpt(
        "policy_file",
        help="Optional YAML file of operator-declared snapshot policies "
        "(server name, UUID or project mapped to schedule specs). Reloaded "
        "when it changes.",
    ),
    cfg.IntOpt(
        "service_down_time",
        default=60,
        min=1,
        help="Seconds since a service's last heartbeat after which it is "
        "considered down.",
    ),
]


def register_opts(conf):
    conf.register_group(conductor_group)
    conf.register_opts(conductor_opts, group=conductor_group)


def list_opts():
    return {conductor_group: conductor_opts}
