"""Options of the [quota] group: per-project limits and rate limits.

The per-project quotas here are defaults: an administrator overrides
them for one project through the API (``PUT /v1/quota-sets/{project}``).
The other limits hold for every project alike. doc/source/quotas.rst
explains each one and how the API and the conductor apply them.
"""

from oslo_config import cfg

quota_group = cfg.OptGroup(
    "quota",
    title="Quotas and limits",
    help="How much each project may snapshot, and how often.",
)

quota_opts = [
    cfg.IntOpt(
        "snapshots",
        default=100,
        min=-1,
        help="Default number of snapshots a project may have (creating, "
        "available or deleting; failed and deleted ones do not count). "
        "-1 is unlimited.",
    ),
    cfg.IntOpt(
        "snapshot_gigabytes",
        default=-1,
        min=-1,
        help="Default GiB of snapshot storage a project may hold, by the "
        "sizes the compute agents report (a backend that reports none "
        "counts 0). A new snapshot is refused once the project holds "
        "its limit; its own size is known only when it is taken. -1 is "
        "unlimited.",
    ),
    cfg.IntOpt(
        "min_schedule_interval",
        default=3600,
        min=60,
        help="Shortest time, in seconds, a schedule may leave between two "
        "of its snapshots. A policy whose spec runs more often (for "
        "instance every minute by cron) is refused with 400.",
    ),
    cfg.IntOpt(
        "max_keep_count",
        default=1000,
        min=1,
        help="Largest count a retention rule (keep_count, keep_last, "
        "hourly, daily, weekly, monthly, yearly) or a NetApp style "
        "spec's count may ask to keep.",
    ),
    cfg.IntOpt(
        "on_demand_snapshots",
        default=10,
        min=0,
        help="How many snapshots may be taken on request of one server "
        "within `on_demand_period`; more get HTTP 429 with Retry-After. "
        "0 turns snapshots on request off.",
    ),
    cfg.IntOpt(
        "on_demand_period",
        default=3600,
        min=1,
        help="The period, in seconds, `on_demand_snapshots` counts over.",
    ),
]


def register_opts(conf):
    conf.register_group(quota_group)
    conf.register_opts(quota_opts, group=quota_group)


def list_opts():
    return {quota_group: quota_opts}
