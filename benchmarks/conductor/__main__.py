"""``python -m benchmarks.conductor``: see benchmarks/README.md."""

import argparse
import contextlib
import os
import pathlib
import sys
import time

import sqlalchemy as sa

from benchmarks import common
from benchmarks.compute import report
from benchmarks.conductor import fanout
from benchmarks.conductor import planning

PLANNING = "planning"
FANOUT = "fanout"
PARTS = (PLANNING, FANOUT)
INSTANCES = (1000, 10000, 100000)
QUICK_INSTANCES = (1000, 10000)
FANOUT_SIZES = (10, 100, 1000)
QUICK_FANOUT_SIZES = (10, 100)
REPEAT = 10
QUICK_REPEAT = 3


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.conductor",
        description="Time the schedule clock's planning against the number "
        "of instances, and the RBD snapshot fan-out of N instances "
        "against a sequential librbd loop.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a shorter run: up to 10,000 instances, fan-out of 10 and "
        f"100, {QUICK_REPEAT} ticks per case",
    )
    parser.add_argument(
        "--part",
        choices=PARTS,
        action="append",
        help="measure only this part (repeatable; default: both)",
    )
    parser.add_argument(
        "--instances",
        type=int,
        action="append",
        metavar="N",
        help="planning: a database size, a multiple of 100 (repeatable; "
        "default 1,000, 10,000 and 100,000)",
    )
    parser.add_argument(
        "--fanout",
        type=int,
        action="append",
        metavar="N",
        help="fan-out: a number of instances (repeatable; default 10, "
        "100 and 1,000)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help=f"planning: timed ticks per case after a warm-up round "
        f"(default {REPEAT}, {QUICK_REPEAT} with --quick)",
    )
    parser.add_argument(
        "--fanout-repeat",
        type=int,
        metavar="N",
        default=1,
        help="fan-out: runs of each size, the medians reported (default 1)",
    )
    parser.add_argument(
        "--window",
        type=int,
        metavar="N",
        default=planning.WINDOW_DUE,
        help="planning: schedules due at once in the busy window, at the "
        f"largest size (default {planning.WINDOW_DUE:,}; 0: no window)",
    )
    parser.add_argument(
        "--profile",
        type=pathlib.Path,
        metavar="DIR",
        help="fan-out: run the services under a sampling profiler "
        "(benchmarks/conductor/sampler.py) and write where their CPU "
        "went to DIR/<service>.txt",
    )
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.fanout_repeat < 1:
        parser.error("--fanout-repeat must be at least 1")
    for size in args.instances or ():
        if size < 200 or size % planning.PROJECT_SIZE:
            parser.error("--instances: a multiple of 100, at least 200")
    if any(size < 1 for size in args.fanout or ()):
        parser.error("--fanout must be at least 1")
    return args


def _header(mariadb, ceph):
    engine = sa.create_engine(mariadb["url"], poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT VERSION()")).scalar_one()
    finally:
        engine.dispose()
    line = f"{os.cpu_count()} CPUs; MariaDB {version}"
    if ceph is not None:
        line += f"; Ceph: one {ceph.get('objectstore', '')} OSD"
    return [line]


def main(argv=None):
    args = parse_args(argv)
    parts = args.part or PARTS
    repeat = args.repeat or (QUICK_REPEAT if args.quick else REPEAT)
    instances = sorted(
        args.instances or (QUICK_INSTANCES if args.quick else INSTANCES)
    )
    fanout_sizes = sorted(
        args.fanout or (QUICK_FANOUT_SIZES if args.quick else FANOUT_SIZES)
    )
    started = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            mariadb = stack.enter_context(common.component("mariadb"))
            if FANOUT in parts:
                rabbitmq, libvirt_info, ceph = (
                    stack.enter_context(common.component(name))
                    for name in ("rabbitmq", "libvirt", "ceph")
                )
            else:
                ceph = None
            report.show(_header(mariadb, ceph))
            if PLANNING in parts:
                for table in planning.run(
                    mariadb, instances, repeat, window=args.window
                ):
                    report.show(table)
            if FANOUT in parts:
                report.show(
                    fanout.run(
                        mariadb,
                        rabbitmq,
                        libvirt_info,
                        ceph,
                        fanout_sizes,
                        profile=args.profile,
                        repeat=args.fanout_repeat,
                    )
                )
    except (
        common.TestEnvError,
        planning.ChildFailed,
        fanout.FanoutError,
    ) as exc:
        sys.exit(f"benchmark failed: {exc}")
    print(f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
