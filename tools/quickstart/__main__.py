"""Command line: python3 tools/quickstart up|status|down [options]."""

import argparse
import json
import pathlib
import sys

if __package__ in (None, ""):
    # Run as `python3 tools/quickstart`: make the package importable.
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
    from quickstart import demo
    from quickstart import horizon
    from quickstart import stack
    from quickstart._tools import minicloud
else:
    from . import demo
    from . import horizon
    from . import stack
    from ._tools import minicloud

TRY_IT = """
Snapmanager is up on the mini-cloud ({mode} disks, host {host}).
  API:     {api_url} (catalog service type {service_type})
  config:  {conf}
  logs:    {log_dir}

{server} ({server_id}), a server of the tenant
demo, has a snapshot policy that takes a snapshot every minute and keeps
the last three. Try, as demo:

  source {openrc}
  openstack --os-cloud demo server snapshot list {server}
  watch -n 10 openstack --os-cloud demo server snapshot list {server}

Give it a real policy (this replaces the one-a-minute demo policy):

  openstack --os-cloud demo server snapshot-policy set \\
      --daily 02:00 --timezone Europe/Berlin --keep 7 {server}
  openstack --os-cloud demo server snapshot-policy show {server}

Restore the server from a snapshot (the ID from `snapshot list`); it is
locked and stopped, its disk restored, then started and unlocked:

  openstack --os-cloud demo server snapshot restore <id> --wait

demo-reader may only look; the tenant other does not see the server:

  openstack --os-cloud demo-reader server snapshot list {server}
  openstack --os-cloud other server snapshot list {server}

The same in Horizon: open {horizon_url} and log in as
{horizon_user} (password {horizon_password}); Project > Compute >
Instances has a "Snapshot policy" action and a Snapshots tab, and
Project > Compute > Snapshot Policies lists every server's policy.

  status: python3 tools/quickstart status
  stop:   python3 tools/quickstart down [--purge]"""


def _up(args, cloud, snapmanager):
    # Before the switch: the old mode's compute host removes its disks.
    demo.retire(snapmanager, cloud.status(), "rbd" if args.rbd else "file")
    info = cloud.up(
        rbd=args.rbd, kvm=args.kvm, debug=args.debug, hosts=args.hosts
    )
    snapmanager.install()
    env = cloud.foundation(args.rbd)
    stack_info = snapmanager.up(info, env, debug=args.debug)
    server_id = demo.ensure(snapmanager, info)
    dashboard = horizon.Horizon(args.dir).up(info)
    print(
        TRY_IT.format(
            server=demo.SERVER_NAME,
            server_id=server_id,
            horizon_url=dashboard["login_url"],
            horizon_user=dashboard["user"],
            horizon_password=dashboard["password"],
            log_dir=pathlib.Path(stack_info["logs"]["snapmanager-api"]).parent,
            **stack_info,
        )
    )


def _status(args, cloud, snapmanager):
    status = {
        "minicloud": cloud.status(),
        "snapmanager": snapmanager.status(),
        "horizon": horizon.Horizon(args.dir).status(),
    }
    if args.json:
        print(json.dumps(status, indent=2))
        return
    if status["minicloud"]["mode"] is None:
        print("%s: not set up (run `up`)" % status["minicloud"]["dir"])
        return
    print(
        "mini-cloud in %s (%s disks, host %s), Snapmanager's API on %s"
        % (
            status["minicloud"]["dir"],
            status["minicloud"]["mode"],
            status["minicloud"]["host"],
            status["snapmanager"]["api_url"],
        )
    )
    for part in ("minicloud", "snapmanager", "horizon"):
        for name, proc in status[part]["processes"].items():
            print(
                "  %-22s %-8s %-8s %s"
                % (
                    name,
                    "running" if proc["running"] else "stopped",
                    proc["pid"] or "-",
                    proc["log"],
                )
            )


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="quickstart",
        description="Snapmanager's API, conductor and compute agent on "
        "the mini-cloud (a real Keystone, Glance, Placement and Nova on "
        "127.0.0.1), with a demo server.",
    )
    parser.add_argument(
        "--dir",
        help="the mini-cloud's directory (default: %s); Snapmanager's "
        "files are in its snapmanager/" % minicloud.default_dir(),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser(
        "up", help="install what is missing, start everything, make the demo"
    )
    up.add_argument(
        "--rbd",
        action="store_true",
        help="Nova's disks on the test Ceph instead of file-backed qcow2",
    )
    up.add_argument(
        "--kvm",
        action="store_true",
        help="use KVM when /dev/kvm is usable (default: QEMU TCG)",
    )
    up.add_argument(
        "--debug", action="store_true", help="debug logging everywhere"
    )
    up.add_argument(
        "--hosts",
        type=int,
        choices=(1, 2),
        help="compute hosts of the mini-cloud: 2 adds a second "
        "nova-compute, libvirtd and snapmanager-compute on this machine "
        "(tools/minicloud/README.md); default: as running, one on a new "
        "cloud",
    )
    down = sub.add_parser(
        "down", help="stop Snapmanager's services and the mini-cloud"
    )
    down.add_argument(
        "--purge",
        action="store_true",
        help="also remove the databases, the guests and the directory",
    )
    status = sub.add_parser("status", help="what runs and where it logs")
    status.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    cloud = minicloud.MiniCloud(args.dir)
    snapmanager = stack.Stack(args.dir)
    try:
        if args.command == "up":
            _up(args, cloud, snapmanager)
        elif args.command == "down":
            horizon.Horizon(args.dir).down(purge=args.purge)
            snapmanager.down(purge=args.purge)
            cloud.down(purge=args.purge)
        else:
            _status(args, cloud, snapmanager)
    except minicloud.MiniCloudError as exc:
        print("quickstart: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
