"""Options of the [compute] group: the agent beside nova-compute."""

from oslo_config import cfg

compute_group = cfg.OptGroup(
    "compute",
    title="Compute agent options",
    help="Options of snapmanager-compute, which runs on every nova-compute "
    "host and performs the libvirt and Ceph RBD operations.",
)

compute_opts = [
    cfg.StrOpt(
        "libvirt_uri",
        default="qemu:///system",
        help="libvirt connection URI; the same hypervisor nova-compute uses.",
    ),
    cfg.StrOpt(
        "instances_path",
        default="/var/lib/nova/instances",
        help="Nova's `[DEFAULT] instances_path` on this host, where "
        "file-backed disks live as `<uuid>/disk` over `_base/<hash>`.",
    ),
    cfg.StrOpt(
        "snapshot_store_path",
        default="$state_path/snapshots",
        help="Where snapshots of file-backed disks are stored, per instance "
        "and per snapshot. Must not be inside `instances_path`: Nova owns "
        "that tree.",
    ),
    cfg.ListOpt(
        "skip_disks",
        default=["disk.config", "disk.swap"],
        help="Disk file names (file-backed) or image name suffixes (RBD, "
        "after `<uuid>_`) that are never snapshotted.",
    ),
    cfg.ListOpt(
        "backends",
        default=["file", "rbd"],
        item_type=cfg.types.String(choices=["file", "rbd"]),
        help="Storage backends this agent serves: `file` for qcow2 disks "
        "under instances_path, `rbd` for Ceph RBD disks (needs the [rbd] "
        "options and Ceph's client bindings). A host without Ceph lists "
        "`file` only; Ceph is not contacted until an RBD instance needs "
        "it.",
    ),
    cfg.IntOpt(
        "workers",
        default=4,
        min=1,
        help="Most snapshot, restore or delete operations this agent runs at "
        "once; an RBD snapshot holds one only while its disks are found "
        "(see `snapshot_workers`). Operations on one instance are always "
        "serialized.",
    ),
    cfg.IntOpt(
        "snapshot_workers",
        default=16,
        min=1,
        help="Most RBD snapshots this agent takes at once, beside "
        "`workers`: a worker finds the instance's disks, and the "
        "snapshot itself, which only waits on Ceph (a snapshot id from "
        "the monitor, a few OSD writes), runs on one of these threads "
        "while the worker goes on to the next instance. Ceph's monitor "
        "hands out the ids of requests that arrive together in one map "
        "update, so a fan-out of scheduled snapshots finishes sooner, "
        "and costs the cluster less, with more of them in flight. "
        "Operations on one instance are still serialized.",
    ),
    cfg.IntOpt(
        "call_timeout",
        default=300,
        min=1,
        help="Seconds one libvirt or Ceph call may take before the operation "
        "fails with a timeout.",
    ),
    cfg.IntOpt(
        "copy_timeout",
        default=3600,
        min=1,
        help="Seconds one step that moves disk data may take: copying a "
        "disk layer into the snapshot store or back, a qemu-img convert or "
        "commit, waiting for a block commit or a backup job, an RBD "
        "rollback or the diff that sizes an RBD snapshot. These grow "
        "with the disk, unlike the calls bounded by `call_timeout`.",
    ),
    cfg.StrOpt(
        "file_snapshot_mode",
        default="incremental",
        choices=[
            (
                "incremental",
                "libvirt's backup API with a checkpoint: the first "
                "snapshot is a full copy, each next one stores only the "
                "clusters written since the previous one, as a chain.",
            ),
            (
                "external",
                "External disk-only snapshot, copy the frozen "
                "layer, then active block commit with pivot.",
            ),
            (
                "backup",
                "libvirt's backup API: a point-in-time copy pulled "
                "without any overlay on the live disk.",
            ),
        ],
        help="How file-backed (qcow2) disks are snapshotted. "
        "`incremental` (default) and `backup` never change the domain's "
        "disk: in `external` mode the domain runs on an overlay Nova does "
        "not know about while Nova's whole `disk` is copied (measured "
        "~340 ms for a 32 MiB disk, growing with the disk), and a hard "
        "reboot, resize or migration in that window loses the guest's "
        "writes. `backup` stores a full image per snapshot; `incremental` "
        "only what changed since the previous snapshot (a full copy when "
        "change tracking was lost, and for flat raw disks); `external` "
        "the instance's own layer. libvirt >= 7.2 with QEMU >= 4.2 has "
        "the backup API; Nova's minimum versions are above that. See "
        "doc/source/compute.rst.",
    ),
    # Snapshots of servers that moved (doc/source/multihost.rst).
    cfg.BoolOpt(
        "snapshot_store_shared",
        default=False,
        help="Whether `snapshot_store_path` is one store shared by every "
        "compute host (e.g. the same NFS export mounted at the same path "
        "on all of them). Then a file-backed snapshot can be restored "
        "wherever its server runs now without copying it. Otherwise it "
        "stays in the store of the host that took it, and a restore after "
        "the server moved first copies it over with "
        "`snapshot_transfer_transport`. The conductor reads this option "
        "too: set it alike everywhere.",
    ),
    cfg.StrOpt(
        "snapshot_transfer_transport",
        default="ssh",
        choices=[
            ("ssh", "scp over ssh, as Nova's `ssh` transport."),
            ("rsync", "rsync over ssh, as Nova's `rsync` transport."),
        ],
        help="How this agent fetches a file-backed snapshot from the store "
        "of the host holding it, when its server now runs here: the means "
        "Nova's `[libvirt] remote_filesystem_transport` uses between "
        "compute hosts for resize and cold migration, and the same "
        "prerequisites (the agent's user can ssh, without a password, to "
        "every other compute host as that host's agent user).",
    ),
    cfg.StrOpt(
        "snapshot_transfer_address",
        help="The address other compute hosts reach this host's store at "
        "(an ssh destination: a name or IP, optionally `user@`). Default: "
        "the agent's `host`, as Nova's migrations reach a host by name "
        "unless `[libvirt] live_migration_inbound_addr` says otherwise.",
    ),
    cfg.StrOpt(
        "snapshot_transfer_ssh_config",
        help="An ssh client configuration file (`ssh -F`) for the "
        "transfers, e.g. to name the port, key and known hosts of each "
        "host; default: the agent user's own ssh configuration.",
    ),
    cfg.IntOpt(
        "snapshot_transfer_timeout",
        default=3600,
        min=1,
        help="Seconds the copy of one snapshot between two hosts' stores "
        "may take; the transfer is killed after that and the restore "
        "fails, leaving the holder's copy intact. The conductor waits "
        "this long (plus a margin) for the answer.",
    ),
]


def register_opts(conf):
    conf.register_group(compute_group)
    conf.register_opts(compute_opts, group=compute_group)


def list_opts():
    return {compute_group: compute_opts}
