"""Options of the [freshness] group: when a schedule's snapshot is late.

Read by snapmanager-api (``GET /v1/stale-servers``) and by
``snapmanager-manage freshness check``; doc/source/freshness.rst has the
rule they apply.
"""

from oslo_config import cfg

freshness_group = cfg.OptGroup(
    "freshness",
    title="Freshness check options",
    help="When the freshness check calls a server's snapshots stale.",
)

freshness_opts = [
    cfg.IntOpt(
        "grace",
        default=3600,
        min=0,
        help="Seconds a scheduled run has to produce an `available` "
        "snapshot before the server counts as stale, when the request "
        "(`grace`) or the command (`--grace`) does not say. A fixed time, "
        "not a fraction of the schedule's interval: what it must absorb "
        "(the clock's tick, thousands of servers due in the same minute, "
        "copying a file-backed disk, `[conductor] max_retries` retries "
        "with backoff) does not grow with the interval, and a fraction "
        "would be minutes for `every@1h` and days for `monthly`. Keep it "
        "below the shortest interval you want alarms for to be timely.",
    ),
]


def register_opts(conf):
    conf.register_group(freshness_group)
    conf.register_opts(freshness_opts, group=freshness_group)


def list_opts():
    return {freshness_group: freshness_opts}
