"""Options of the [rbd] group: Ceph access for RBD-backed instances."""

from oslo_config import cfg

rbd_group = cfg.OptGroup(
    "rbd",
    title="Ceph RBD options",
    help="How snapmanager-compute reaches the Ceph cluster holding Nova's "
    "RBD-backed disks. Mirror nova.conf's [libvirt] images_rbd_* options.",
)

rbd_opts = [
    cfg.StrOpt(
        "ceph_conf",
        default="/etc/ceph/ceph.conf",
        help="Path to the Ceph configuration file.",
    ),
    cfg.StrOpt(
        "rbd_user",
        help="Ceph client name (without `client.`); default is the one in "
        "ceph_conf.",
    ),
    cfg.StrOpt(
        "pool",
        default="vms",
        help="Pool of Nova's instance images (`[libvirt] images_rbd_pool`).",
    ),
    cfg.StrOpt(
        "snapshot_prefix",
        default="snapmanager-",
        help="Prefix of the RBD snapshot names Snapmanager creates; names "
        "end in the instance's snapshot index so they are unique.",
    ),
    cfg.IntOpt(
        "connect_timeout",
        default=30,
        min=1,
        help="Seconds to wait for the Ceph cluster when connecting.",
    ),
    cfg.IntOpt(
        "rados_op_timeout",
        default=60,
        min=0,
        help="Seconds librados waits for one monitor or OSD request before "
        "failing it (`rados_mon_op_timeout` and `rados_osd_op_timeout` of "
        "the agent's Ceph client); 0 waits for ever. Keep it below "
        "`[compute] call_timeout` so that a call abandoned at its deadline "
        "also ends inside librados instead of holding a thread.",
    ),
]


def register_opts(conf):
    conf.register_group(rbd_group)
    conf.register_opts(rbd_opts, group=rbd_group)


def list_opts():
    return {rbd_group: rbd_opts}
