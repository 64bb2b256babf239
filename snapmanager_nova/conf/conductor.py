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
        help="Most due schedules one conductor claims in one transaction; "
        "a pass claims batch after batch until nothing is due or "
        "`claim_time_slice` is used up, and several conductors share "
        "what is due.",
    ),
    cfg.IntOpt(
        "claim_time_slice",
        default=50,
        min=0,
        help="Seconds one pass of the schedule clock goes on claiming "
        "batches of due schedules (and casting their snapshots) while "
        "more are due; what is left waits for the next pass. Thousands "
        'of servers due at the same minute ("daily at 02:00") are '
        "then all started within that minute, not one batch per "
        "`tick_interval`. 0 claims one batch per pass.",
    ),
    cfg.BoolOpt(
        "batch_casts",
        default=True,
        help="Send the snapshots one pass casts to a host in one message "
        "(compute RPC 1.1), the agent reporting their outcomes in "
        "batches (conductor RPC 1.2). Turn off while compute agents of "
        "the previous release (RPC 1.0, which refuse that message) still "
        "run; upgrade the conductors first.",
    ),
    cfg.IntOpt(
        "cast_batch_size",
        default=100,
        min=1,
        help="Most snapshots in one message to a compute agent when "
        "`batch_casts` is on.",
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
    # The Nova inventory and its notification listener.
    cfg.IntOpt(
        "inventory_sync_interval",
        default=300,
        min=10,
        help="Seconds between two syncs of the Nova inventory: the servers "
        "of all projects changed since the last sync (`changes-since`), "
        "or all of them the first time. Nova's versioned notifications "
        "keep the inventory current in between.",
    ),
    cfg.BoolOpt(
        "listen_notifications",
        default=True,
        help="Consume Nova's versioned notifications (see `[nova] "
        "notification_*`). Without them Nova's delete, rebuild and "
        "shelve-offload of an instance with RBD snapshots wait about a "
        "minute and leak the instance's images until the next inventory "
        "sync cleans up.",
    ),
    cfg.StrOpt(
        "notification_pool",
        default="snapmanager-nova-notifications",
        help="Name of the pool the conductors consume Nova's "
        "notifications from. All conductors share it, so each "
        "notification is handled once; other consumers of Nova's "
        "notifications keep their own pools and miss nothing. RabbitMQ "
        "names the pool's queue after it, so it must differ from every "
        "RPC topic on the bus (`snapmanager-conductor` among them).",
    ),
    cfg.BoolOpt(
        "keep_on_rebuild",
        default=True,
        help="Keep a server's RBD snapshots when Nova rebuilds or "
        "shelve-offloads it: the images carrying them are renamed out of "
        "Nova's sight before Nova removes the server's disks, and the "
        "snapshots stay listed and deletable until retention removes "
        "them. False removes them, as a delete does for a server that "
        "does not keep its snapshots after delete. An evacuation, which "
        "Nova announces as a rebuild, is never released either way.",
    ),
    # Restore orchestration.
    cfg.IntOpt(
        "restore_poll_interval",
        default=2,
        min=1,
        help="Seconds between two passes over restores waiting for a "
        "conductor (new ones, and those of conductors that are down).",
    ),
    cfg.IntOpt(
        "nova_action_timeout",
        default=300,
        min=10,
        help="Seconds a restore waits for Nova to stop or start the "
        "server before it fails (leaving the server stopped and locked).",
    ),
    cfg.IntOpt(
        "restore_agent_timeout",
        default=3600,
        min=1,
        help="Seconds a restore waits, from the moment its agent was asked, "
        "for the compute agent to report that the disks are restored "
        "before it fails (leaving the server stopped and locked, for the "
        "tenant to retry or abandon the restore). Measured by the "
        "database's clock.",
    ),
    # Retention, retries and reconciliation (doc/source/retention.rst).
    cfg.IntOpt(
        "retry_base_delay",
        default=30,
        min=1,
        help="Seconds before the first retry of a snapshot that failed for "
        "a transient reason (agent down, server busy in Nova, a libvirt or "
        "Ceph call that timed out). Each further retry waits twice as "
        "long, up to `retry_max_delay`; the actual wait is drawn between "
        "half of that and all of it (jitter), so snapshots that failed "
        "together are not retried together.",
    ),
    cfg.IntOpt(
        "retry_max_delay",
        default=900,
        min=1,
        help="Longest wait, in seconds, between two tries of one snapshot.",
    ),
    cfg.IntOpt(
        "reconcile_interval",
        default=300,
        min=10,
        help="Seconds between two passes of reconciliation (snapshots "
        "stuck in `creating` or `deleting` past `operation_timeout`, and "
        "snapshots in storage that no database row knows) and of the "
        "roll-off of snapshots no schedule governs.",
    ),
    cfg.IntOpt(
        "reconcile_batch_size",
        default=200,
        min=1,
        help="Most instances one reconciliation pass asks their agent "
        "about for snapshots in storage that no row knows; the next "
        "pass goes on where it stopped, so a pass costs the same however "
        "many instances have snapshots, and every instance is looked at "
        "once per round of passes.",
    ),
    cfg.IntOpt(
        "unscheduled_max_age",
        default=30,
        min=0,
        help="Days a snapshot no live schedule governs is kept: one taken "
        "on demand, one whose schedule was deleted, one of a server Nova "
        "deleted that keeps its snapshots (`keep_after_delete`). The "
        "newest available snapshot of a server that still exists is kept "
        "whatever its age. 0 keeps them until they are deleted by hand.",
    ),
    # The operators' policy file (doc/source/policy_file.rst).
    cfg.IntOpt(
        "policy_file_interval",
        default=60,
        min=1,
        help="Seconds between two checks of `policy_file` for changes, and "
        "between two passes applying it to the servers Snapmanager knows "
        "(a server named in it may appear at any time).",
    ),
]


def register_opts(conf):
    conf.register_group(conductor_group)
    conf.register_opts(conductor_opts, group=conductor_group)


def list_opts():
    return {conductor_group: conductor_opts}
