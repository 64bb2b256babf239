"""Command line: python3 tools/minicloud up|down|status [options]."""

import argparse
import json
import pathlib
import sys

if __package__ in (None, ""):
    # Run as `python3 tools/minicloud`: make the package importable.
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
    from minicloud import cloud
else:
    from . import cloud


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="minicloud",
        description="A real Keystone, Placement, Glance and Nova on "
        "127.0.0.1 for Snapmanager's end-to-end tests and quickstart.",
    )
    parser.add_argument(
        "--dir",
        help="the mini-cloud's private directory (default: %s)"
        % cloud.default_dir(),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="install what is missing and start")
    up.add_argument(
        "--rbd",
        action="store_true",
        help="Nova's disks on the test Ceph (images_type=rbd) instead of "
        "file-backed qcow2",
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
        help="compute hosts: 2 adds a second nova-compute with its own "
        "libvirtd on this machine (see README); default: as running, "
        "one on a new cloud",
    )
    down = sub.add_parser("down", help="stop what `up` started")
    down.add_argument(
        "--purge",
        action="store_true",
        help="also remove the databases, Nova's guests and the directory",
    )
    status = sub.add_parser("status", help="what runs and where it logs")
    status.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    mini = cloud.MiniCloud(args.dir)
    try:
        if args.command == "up":
            info = mini.up(
                rbd=args.rbd, kvm=args.kvm, debug=args.debug, hosts=args.hosts
            )
            print(
                "\nThe mini-cloud is up (%s disks, %s) on %s.\n"
                "  source %s   # then: openstack server list\n"
                "  clouds: %s (password %r) in %s\n"
                "  logs:   %s\n"
                "  stop:   python3 tools/minicloud down [--purge]"
                % (
                    info["mode"],
                    info["virt_type"],
                    ", ".join(h["name"] for h in info["hosts"]),
                    info["openrc"]["demo"],
                    ", ".join(info["openrc"]),
                    info["password"],
                    info["clouds_yaml"],
                    pathlib.Path(info["logs"]["nova-api"]).parent,
                )
            )
        elif args.command == "down":
            mini.down(purge=args.purge)
        else:
            status = mini.status()
            if args.json:
                print(json.dumps(status, indent=2))
            elif status["mode"] is None:
                print("%s: not set up (run `up`)" % status["dir"])
            else:
                print(
                    "%s (%s disks, %s, host %s)"
                    % (
                        status["dir"],
                        status["mode"],
                        status["virt_type"],
                        status["host"],
                    )
                )
                for name, proc in status["processes"].items():
                    print(
                        "  %-15s %-8s %-8s %s"
                        % (
                            name,
                            "running" if proc["running"] else "stopped",
                            proc["pid"] or "-",
                            proc["log"],
                        )
                    )
    except cloud.MiniCloudError as exc:
        print("minicloud: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
