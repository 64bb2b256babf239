"""Incremental file snapshots against full ones, on a chain of 14.

One Nova-like instance with a D GiB ``disk`` whose guest data fills it
(written offline before the domain starts). Before each of 14 snapshots
the guest writes W MiB (through QEMU's monitor, as the guest's own
writes go); then, in one run and on the same disk state:

``incremental``
    the agent's snapshot in ``incremental`` mode (the first one is the
    full copy a chain starts with; the table shows the 13 others);
``backup``
    the agent's snapshot in ``backup`` mode (deleted again, untimed,
    before the next incremental one, which would otherwise start a new
    chain);
``convert``
    a raw ``qemu-img convert -U`` of Nova's whole ``disk`` (and its
    base) into a file: the floor of any full copy.

Per snapshot: bytes stored (allocated on disk), bytes read by the
process that reads the disk (QEMU's ``rchar`` for both agent modes, the
backup job runs in QEMU; ``qemu-img``'s own for the raw copy) and wall
time. Then, the domain shut off: restore from the newest and from the
oldest snapshot of the chain, against the restore of a ``backup`` mode
snapshot; delete from the middle of the chain (a merge into its child),
against the delete of a ``backup`` mode snapshot. Each of those starts
after an (untimed) ``sync``, so that none pays for the write-back of
the snapshots taken before it.
"""

import os
import shutil
import subprocess
import time

from benchmarks.compute import file_cases
from snapmanager_nova import conf as sm_conf
from snapmanager_nova.compute.backends import qcow2
from snapmanager_nova.compute.backends import store as store_mod
from tests.functional.compute import nova_like

CONF = sm_conf.CONF
MiB = nova_like.MiB
GiB = 1024 * MiB
CHAIN = 14
BACKUP_INDEX = 1000


class RecordWatcher(file_cases.XmlWatcher):
    """How long libvirt had a checkpoint record on the domain.

    Nova's undefine fails while there is one: the incremental mode keeps
    it from the parent's redefinition to the job's start.
    """

    def __init__(self, uri, instance):
        super().__init__(uri, instance)
        self._expected = []

    def _sources(self):
        return self._dom.listAllCheckpoints(0)


def qemu_pid(name):
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as stream:
                    if f"guest={name},".encode() in stream.read():
                        return int(entry)
            except OSError:
                continue
    raise RuntimeError(f"no QEMU process for domain {name}")


def rchar(pid):
    with open(f"/proc/{pid}/io", encoding="ascii") as stream:
        for line in stream:
            key, value = line.split(":")
            if key == "rchar":
                return int(value)
    raise RuntimeError(f"no rchar for {pid}")


def measured(pid, func, *args):
    """(result, seconds, bytes ``pid`` read) of one call."""
    before = rchar(pid)
    started = time.monotonic()
    result = func(*args)
    return result, time.monotonic() - started, rchar(pid) - before


def raw_convert(disk, target):
    """(seconds, bytes read) of ``qemu-img convert`` of the whole disk."""
    started = time.monotonic()
    argv = "qemu-img convert -U -f qcow2 -O qcow2".split()
    child = subprocess.Popen([*argv, disk, target])
    # Read the child's counters while it is a zombie, before reaping.
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    read = rchar(child.pid)
    if child.wait() != 0:
        raise RuntimeError("qemu-img convert failed")
    return time.monotonic() - started, read


def _set_mode(mode):
    CONF.set_override("file_snapshot_mode", mode, group="compute")


def run(env, backend, options):
    """Lines of the report for one chain."""
    disk_size = options.disk_gib * GiB
    written = options.changed_mib * MiB
    inst = nova_like.make_instance(
        env.conn,
        env.domain_name(),
        env.instances,
        env.qemu_log_dir,
        running=False,
        config_drive=False,
        disk_size=disk_size,
        base_size=options.base_mib * MiB,
        base_data=f"{options.base_mib}M",
    )
    try:
        return _run(env, backend, options, inst, disk_size, written)
    finally:
        CONF.clear_override("file_snapshot_mode", group="compute")
        if inst.dom.isActive():
            inst.dom.destroy()
        inst.dom.undefine()
        # Not through deletes: each would merge into the next.
        shutil.rmtree(backend.store.instance_dir(inst.uuid), True)
        backend.store.collect_bases()


def _run(env, backend, options, inst, disk_size, written):
    # The guest's data, everywhere on the disk.
    chunk = 64 * MiB
    commands = []
    for offset in range(0, disk_size, chunk):
        commands += ["-c", f"write -P 0x5a {offset} {chunk}"]
    nova_like.run("qemu-io", "-f", "qcow2", *commands, inst.path())
    inst.dom.create()
    pid = qemu_pid(inst.name)
    rows = {"incremental": [], "backup": [], "convert": []}
    first = None
    records = []
    slots = disk_size // written
    for index in range(1, CHAIN + 1):
        offset = (index * 7 % slots) * written
        inst.hmp_io("disk", f"write -P {index} {offset} {written}")
        _set_mode(qcow2.MODE_INCREMENTAL)
        with RecordWatcher(env.uri, inst) as watcher:
            result, seconds, read = measured(
                pid,
                backend.snapshot,
                inst.describe(),
                inst.dom,
                index,
                "prefer",
            )
        if index == 1:
            first = (result.size_bytes, seconds, read)
        else:
            rows["incremental"].append((result.size_bytes, seconds, read))
            records.append(
                (watcher.wrong, watcher.elapsed / max(watcher.samples, 1))
            )
        _set_mode(qcow2.MODE_BACKUP)
        full, seconds, read = measured(
            pid,
            backend.snapshot,
            inst.describe(),
            inst.dom,
            BACKUP_INDEX + index,
            "prefer",
        )
        rows["backup"].append((full.size_bytes, seconds, read))
        backend.delete(inst.uuid, BACKUP_INDEX + index, [])
        target = os.path.join(env.scratch, "convert.qcow2")
        seconds, read = raw_convert(inst.path(), target)
        rows["convert"].append(
            (store_mod.allocated_bytes(target), seconds, read)
        )
        os.unlink(target)
    # Baselines for restore and delete: one full backup-mode snapshot.
    _set_mode(qcow2.MODE_BACKUP)
    backend.snapshot(inst.describe(), inst.dom, BACKUP_INDEX, "prefer")
    inst.dom.destroy()
    instance = inst.describe()
    restores = {}
    for label, index in (
        ("newest (14)", CHAIN),
        ("oldest (1)", 1),
        ("backup mode", BACKUP_INDEX),
    ):
        # Untimed: the dirty pages of the snapshots before are written
        # back now, not inside whichever restore comes first.
        os.sync()
        started = time.monotonic()
        backend.restore(instance, inst.dom, index, [])
        restores[label] = time.monotonic() - started
    middle = CHAIN // 2
    os.sync()
    started = time.monotonic()
    freed = backend.delete(inst.uuid, middle, [])
    delete_middle = (time.monotonic() - started, freed)
    os.sync()
    started = time.monotonic()
    freed = backend.delete(inst.uuid, BACKUP_INDEX, [])
    delete_backup = (time.monotonic() - started, freed)
    return _table(
        options,
        written,
        first,
        rows,
        restores,
        (delete_middle, delete_backup),
        records,
    )


def _median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _table(options, written, first, rows, restores, deletes, records):
    middle, backup = deletes
    cluster = 64 * 1024
    goal = -(-written // cluster) * cluster
    lines = [
        f"qcow2 incremental chain: {options.disk_gib} GiB disk, guest "
        f"wrote {options.changed_mib} MiB before each of {CHAIN} "
        "snapshots (medians over the snapshots)",
        f"{'per snapshot':<22}{'stored MiB':>11}{'read MiB':>10}"
        f"{'ms':>9}{'stored/W':>10}",
    ]

    def line(label, values):
        stored = _median([v[0] for v in values])
        read = _median([v[2] for v in values])
        seconds = _median([v[1] for v in values])
        lines.append(
            f"{label:<22}{stored / MiB:>11.1f}{read / MiB:>10.1f}"
            f"{seconds * 1000:>9.0f}{stored / goal:>10.2f}"
        )

    line("incremental (2-14)", rows["incremental"])
    line("incremental first", [first])
    line("backup mode", rows["backup"])
    line("qemu-img convert", rows["convert"])
    lines.append(f"{'restore':<22}{'ms':>9}")
    for label, seconds in restores.items():
        lines.append(f"  {label:<20}{seconds * 1000:>9.0f}")
    lines.append(f"{'delete':<22}{'ms':>9}{'freed MiB':>11}")
    lines.append(
        f"  {'middle (7, merged)':<20}{middle[0] * 1000:>9.0f}"
        f"{middle[1] / MiB:>11.1f}"
    )
    lines.append(
        f"  {'backup mode':<20}{backup[0] * 1000:>9.0f}"
        f"{backup[1] / MiB:>11.1f}"
    )
    lines.append(
        f"  W rounded to 64 KiB clusters: {goal / MiB:.1f} MiB; "
        "stored/W goal: <= 1.2"
    )
    lines.append(
        "  checkpoint record on the domain per incremental snapshot: "
        f"median {_median([r[0] for r in records]) * 1000:.1f} ms, "
        f"max {max(r[0] for r in records) * 1000:.1f} ms (sampled every "
        f"{_median([r[1] for r in records]) * 1000:.1f} ms); the XML never "
        "names another file (backup API)"
    )
    return lines
