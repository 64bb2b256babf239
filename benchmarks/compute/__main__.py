"""``python -m benchmarks.compute``: see benchmarks/README.md."""

import argparse
import os
import sys
import time

import libvirt

from benchmarks.compute import chain_cases
from benchmarks.compute import env as env_mod
from benchmarks.compute import file_cases
from benchmarks.compute import rbd_cases
from benchmarks.compute import report
from snapmanager_nova.compute import rbd_client
from snapmanager_nova.compute.backends import qcow2
from snapmanager_nova.compute.backends import rbd as rbd_backend

EXTERNAL = "qcow2-external"
BACKUP = "qcow2-backup"
RBD = "rbd"
CHAIN = "qcow2-chain"
BACKENDS = (EXTERNAL, BACKUP, RBD, CHAIN)
# Nova's names: the root disk, and ephemeral disks from block device
# mappings.
DISK_SETS = (("disk",), ("disk", "disk.eph0", "disk.eph1", "disk.eph2"))
REPEAT = 30
QUICK_REPEAT = 3


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compute",
        description="Time the compute agent's snapshot, restore and delete "
        "against the raw libvirt, qemu-img and librbd calls, for one disk "
        "and four.",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help=f"timed repetitions of every operation, after one warm-up "
        f"(default {REPEAT}, {QUICK_REPEAT} with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run to check that everything works",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        action="append",
        help="measure only this one (repeatable; default: all)",
    )
    parser.add_argument(
        "--base-mib",
        type=int,
        default=8,
        metavar="M",
        help="image data in each qcow2 disk's base (default 8)",
    )
    parser.add_argument(
        "--written-mib",
        type=int,
        default=16,
        metavar="W",
        help="data the guest wrote to each disk before the snapshots "
        "(default 16)",
    )
    parser.add_argument(
        "--disk-gib",
        type=int,
        default=1,
        metavar="D",
        help="qcow2-chain: size of the disk, all of it guest data (default 1)",
    )
    parser.add_argument(
        "--changed-mib",
        type=int,
        default=16,
        metavar="W",
        help="qcow2-chain: data the guest writes before each of the 14 "
        "snapshots (default 16)",
    )
    args = parser.parse_args(argv)
    if args.disk_gib < 1 or args.changed_mib < 1:
        parser.error("--disk-gib and --changed-mib must be at least 1")
    if args.changed_mib * 16 > args.disk_gib * 1024:
        parser.error("--changed-mib must be at most 1/16 of the disk")
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def _version(number):
    major, rest = divmod(number, 1000000)
    return f"{major}.{rest // 1000}.{rest % 1000}"


def _quiet_libvirt(_ctx, _error):
    # libvirt-python prints every error to stderr, the expected ones too
    # (a guest agent that is not there); the errors raised still count.
    pass


def main(argv=None):
    args = parse_args(argv)
    options = env_mod.Options(
        repeat=args.repeat or (QUICK_REPEAT if args.quick else REPEAT),
        base_mib=args.base_mib,
        written_mib=args.written_mib,
        disk_gib=args.disk_gib,
        changed_mib=args.changed_mib,
    )
    backends = args.backend or BACKENDS
    libvirt.registerErrorHandler(_quiet_libvirt, None)
    started = time.monotonic()
    try:
        with env_mod.prepared(with_ceph=RBD in backends) as env:
            report.show(
                [
                    f"{os.cpu_count()} CPUs; libvirt "
                    f"{_version(env.conn.getLibVersion())}, QEMU "
                    f"{_version(env.conn.getVersion())} (TCG; the guests "
                    "sit in their firmware, no qemu-guest-agent)",
                    f"{options.repeat} repetitions after a warm-up; "
                    "milliseconds; ratio = agent median / raw median",
                ]
            )
            _run(env, backends, options)
    except env_mod.TestEnvError as exc:
        sys.exit(str(exc))
    print(f"total {time.monotonic() - started:.0f} s")


def _run(env, backends, options):
    file_backend = qcow2.Qcow2Backend(connect=lambda: env.conn)
    for name, mode in (
        (EXTERNAL, qcow2.MODE_EXTERNAL),
        (BACKUP, qcow2.MODE_BACKUP),
    ):
        if name in backends:
            for disk_names in DISK_SETS:
                case = file_cases.run(
                    env, file_backend, mode, disk_names, options
                )
                report.show(case.table())
    if CHAIN in backends:
        report.show(chain_cases.run(env, file_backend, options))
    if RBD in backends:
        client = rbd_client.RbdClient()
        try:
            backend = rbd_backend.RbdBackend(
                client=client, connect=lambda: libvirt.open(env.uri)
            )
            for disk_names in DISK_SETS:
                report.show(
                    rbd_cases.run(env, backend, disk_names, options).table()
                )
        finally:
            client.shutdown()


if __name__ == "__main__":
    main()
