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
        "once. Operations on one instance are always serialized.",
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
        default="backup",
        choices=[
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
        help="How file-backed (qcow2) disks are snapshotted. `backup` is "
        "the default because it never changes the domain's disk: in "
        "`external` mode the domain runs on an overlay Nova does not know "
        "about while Nova's whole `disk` is copied (measured ~340 ms for a "
        "32 MiB disk, growing with the disk), and a hard reboot, resize or "
        "migration in that window loses the guest's writes. `backup` "
        "stores a full image per snapshot; `external` only the instance's "
        "own layer. libvirt >= 7.2 with QEMU >= 4.2 has the backup API; "
        "Nova's minimum versions are above that.",
    ),
]


def register_opts(conf):
    conf.register_group(compute_group)
    conf.register_opts(compute_opts, group=compute_group)


def list_opts():
    return {compute_group: compute_opts}
