"""The qcow2 backend against the raw libvirt and qemu-img calls.

A case is one Nova-like instance (tests/functional/compute/nova_like)
with one disk or four, running under TCG with the guest in its
firmware, whose guest wrote some data to every disk first. Each
repetition snapshots the running domain with the agent
(``Qcow2Backend.snapshot``) and with the raw calls; then, the domain
shut off, each snapshot is restored and finally deleted, by both.

The raw calls do what the mode is made of, with none of the agent's
checks, store, manifests, privsep or bounded calls:

``external`` snapshot
    ``snapshotCreateXML`` (disk-only, atomic, no metadata) putting an
    overlay on every disk; ``qemu-img convert`` of each frozen Nova file
    into a delta over Nova's base; an active, shallow ``blockCommit``
    per disk, the wait until each is ready, the pivots; removal of the
    overlay files.
``backup`` snapshot
    ``backupBegin`` of a push backup of every disk, and the wait for the
    job to end.
restore
    a copy of the stored delta beside Nova's file and ``qemu-img rebase
    -u`` onto Nova's base (``external``), or a ``qemu-img convert`` of
    the full backup over Nova's base (``backup``); then one rename over
    each of Nova's files.
delete
    removal of the stored files.

The raw calls poll libvirt's jobs as often as the agent does, so the
ratio shows the agent's own work rather than a different interval.

Pause: the agent's ``pause_seconds`` (overlay to pivot in ``external``,
freeze to thaw in ``backup``, which never freezes here: the guest has no
qemu-guest-agent); for the raw calls, from ``snapshotCreateXML`` to the
last pivot. XML window: how long a second libvirt connection, sampling
the domain's live XML all the while a snapshot runs (the agent's and the
raw calls' alike), saw a disk source other than Nova's file, which is
what Nova would find if it looked then (hard reboot, migration).
"""

import contextlib
import dataclasses
import functools
import os
import shutil
import threading
import time

import libvirt

from benchmarks.compute import report
from snapmanager_nova import conf as sm_conf
from snapmanager_nova.compute.backends import backup
from snapmanager_nova.compute.backends import overlay
from snapmanager_nova.compute.backends import qcow2
from tests.functional.compute import nova_like

CONF = sm_conf.CONF
MiB = nova_like.MiB

EXTERNAL = qcow2.MODE_EXTERNAL
BACKUP = qcow2.MODE_BACKUP

# What the guest writes over its disks before the snapshots (nova_like
# puts its own 64 KiB at 64 KiB; this overwrites and extends it).
GUEST_WRITE = "write -P 0x5a 64k {mib}M"
# A raw job that has not finished by then is stuck: fail the run.
RAW_DEADLINE = 120
# The files of the raw calls beside Nova's, never named like ours.
RAW_OVERLAY = ".bench-overlay"
RAW_RESTORE = ".bench-restore"
UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
)


@dataclasses.dataclass(frozen=True)
class SnapshotSample:
    """One snapshot's wall time, pause and XML window, in seconds."""

    seconds: float
    pause: float | None  # None: this side has no such window
    xml_window: float


class XmlWatcher:
    """How long the domain's live XML names disk files not Nova's.

    A thread with its own libvirt connection reads the XML as fast as
    libvirtd answers; the interval before a wrong sample counts as
    wrong, so the resolution is one round trip (``elapsed / samples``).
    """

    def __init__(self, uri, instance):
        self._conn = libvirt.open(uri)
        self._dom = self._conn.lookupByUUIDString(instance.uuid)
        self._expected = instance.nova_sources()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._error = None
        self.wrong = 0.0
        self.samples = 0
        self.elapsed = 0.0

    def _sources(self):
        return {
            disk.target: disk.source
            for disk in overlay.domain_disks(self._dom.XMLDesc(0))
            if disk.target in self._expected
        }

    def _watch(self):
        started = last = time.perf_counter()
        try:
            while not self._done.is_set():
                wrong = self._sources() != self._expected
                now = time.perf_counter()
                if wrong:
                    self.wrong += now - last
                last = now
                self.samples += 1
        except libvirt.libvirtError as exc:
            # A window measured up to here would be too short: say so.
            self._error = exc
        self.elapsed = last - started

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, traceback):
        self._done.set()
        self._thread.join()
        self._conn.close()
        if self._error is not None and exc is None:
            raise RuntimeError(
                f"the XML could not be sampled: {self._error}"
            ) from self._error


class RawFiles:
    """The raw calls on one instance; snapshot ``n`` in ``<root>/<n>``."""

    def __init__(self, uri, instance, root, mode):
        self.uri = uri
        self.inst = instance
        self.root = root
        self.mode = mode
        self.targets = [
            disk.target
            for disk in overlay.domain_disks(instance.dom.XMLDesc(0))
        ]
        self.watched = []  # every XmlWatcher, for its sampling interval

    def _dir(self, index):
        return os.path.join(self.root, str(index))

    def snapshot(self, index):
        os.makedirs(self._dir(index))
        if self.mode == EXTERNAL:
            return self._external(index)
        return self._backup(index)

    def _external(self, index):
        inst, dom = self.inst, self.inst.dom
        overlays = {
            inst.target(name): inst.path(name) + RAW_OVERLAY
            for name in inst.disk_names
        }
        xml = overlay.snapshot_xml(overlays, self.targets)
        flags = (
            libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY
            | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
            | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA
        )
        with XmlWatcher(self.uri, inst) as watcher:
            started = time.perf_counter()
            dom.snapshotCreateXML(xml, flags)
            for name in inst.disk_names:
                # -U: QEMU holds the frozen file open as a backing layer.
                nova_like.run(
                    "qemu-img",
                    "convert",
                    "-U",
                    "-f",
                    "qcow2",
                    "-O",
                    "qcow2",
                    "-B",
                    inst.bases[name],
                    "-F",
                    "raw",
                    inst.path(name),
                    os.path.join(self._dir(index), name),
                )
            for target in overlays:
                dom.blockCommit(
                    target,
                    None,
                    None,
                    0,
                    libvirt.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE
                    | libvirt.VIR_DOMAIN_BLOCK_COMMIT_SHALLOW,
                )
            _wait_ready(dom, overlays)
            for target in overlays:
                _pivot(dom, target)
            pivoted = time.perf_counter()
            for path in overlays.values():
                os.unlink(path)
            finished = time.perf_counter()
        self.watched.append(watcher)
        _check_on_nova_files(inst, "raw")
        return SnapshotSample(
            finished - started, pivoted - started, watcher.wrong
        )

    def _backup(self, index):
        inst, dom = self.inst, self.inst.dom
        files = {
            inst.target(name): os.path.join(self._dir(index), name)
            for name in inst.disk_names
        }
        xml = backup.backup_xml(files, self.targets)
        with XmlWatcher(self.uri, inst) as watcher:
            started = time.perf_counter()
            dom.backupBegin(xml, None, 0)
            deadline = started + RAW_DEADLINE
            while dom.jobInfo()[0] != libvirt.VIR_DOMAIN_JOB_NONE:
                _check_deadline(deadline, "backup")
                time.sleep(backup.POLL_SECONDS)
            finished = time.perf_counter()
        stats = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        if stats.get("type") != libvirt.VIR_DOMAIN_JOB_COMPLETED:
            raise RuntimeError(f"the raw backup failed: {stats!r}")
        self.watched.append(watcher)
        _check_on_nova_files(inst, "raw")
        # Nothing is frozen (no guest agent) and the disks never move.
        return SnapshotSample(finished - started, None, watcher.wrong)

    def restore(self, index):
        inst = self.inst
        started = time.perf_counter()
        for name in inst.disk_names:
            stored = os.path.join(self._dir(index), name)
            temporary = inst.path(name) + RAW_RESTORE
            base = inst.bases[name]
            if self.mode == EXTERNAL:
                # A delta over Nova's base: copy it, and point it there.
                nova_like.run("cp", "--sparse=always", stored, temporary)
                nova_like.run(
                    "qemu-img",
                    "rebase",
                    "-u",
                    "-f",
                    "qcow2",
                    "-b",
                    base,
                    "-F",
                    "raw",
                    temporary,
                )
            else:
                # A full image: rewrite it as a delta over Nova's base.
                nova_like.run(
                    "qemu-img",
                    "convert",
                    "-q",
                    "-f",
                    "qcow2",
                    "-O",
                    "qcow2",
                    "-B",
                    base,
                    "-F",
                    "raw",
                    stored,
                    temporary,
                )
        for name in inst.disk_names:
            os.rename(inst.path(name) + RAW_RESTORE, inst.path(name))
        return time.perf_counter() - started

    def delete(self, index):
        started = time.perf_counter()
        shutil.rmtree(self._dir(index))
        return time.perf_counter() - started


def _check_deadline(deadline, what):
    if time.perf_counter() > deadline:
        raise RuntimeError(f"the raw {what} took over {RAW_DEADLINE} s")


def _wait_ready(dom, targets):
    deadline = time.perf_counter() + RAW_DEADLINE
    waiting = set(targets)
    while waiting:
        for target in sorted(waiting):
            info = dom.blockJobInfo(target, 0)
            if not info:
                raise RuntimeError(f"the commit of {target} ended early")
            if info["cur"] == info["end"]:
                waiting.discard(target)
        if waiting:
            _check_deadline(deadline, "block commit")
            time.sleep(overlay.POLL_SECONDS)


def _pivot(dom, target):
    # QEMU may still call the job not ready when its counters are equal.
    deadline = time.perf_counter() + RAW_DEADLINE
    while True:
        try:
            dom.blockJobAbort(target, libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT)
            return
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_BLOCK_COPY_ACTIVE:
                raise
        _check_deadline(deadline, "pivot")
        time.sleep(overlay.POLL_SECONDS)


class _AgentFiles:
    """The agent's side of a case."""

    def __init__(self, uri, instance, backend):
        self.uri = uri
        self.inst = instance
        self.backend = backend
        self.results = {}  # index: SnapshotResult
        self.watched = []

    def snapshot(self, index):
        described = self.inst.describe()
        with XmlWatcher(self.uri, self.inst) as watcher:
            seconds, result = report.timed(
                self.backend.snapshot,
                described,
                self.inst.dom,
                index,
                "prefer",
            )
        self.watched.append(watcher)
        _check_on_nova_files(self.inst, "agent's")
        self.results[index] = result
        return SnapshotSample(seconds, result.pause_seconds, watcher.wrong)

    def restore(self, index):
        return report.agent_restore(
            self.backend,
            self.inst.describe(),
            self.inst.dom,
            index,
            self.results[index],
        )

    def delete(self, index):
        return report.agent_delete(
            self.backend, self.inst.uuid, index, self.results[index]
        )


def _check_on_nova_files(instance, who):
    """Both sides must leave the domain (live and persistent) on Nova's
    files, or the next measurement would not measure the same thing."""
    expected = instance.nova_sources()
    for flags in (0, libvirt.VIR_DOMAIN_XML_INACTIVE):
        if instance.sources(flags) != expected:
            raise RuntimeError(
                f"after the {who} snapshot the domain names "
                f"{instance.sources(flags)}, not {expected}"
            )


def run(env, backend, mode, disk_names, options):
    """Measure one mode and disk count; return its :class:`report.Case`."""
    CONF.set_override("file_snapshot_mode", mode, group="compute")
    base_size = max(nova_like.BASE_SIZE, options.base_mib * MiB)
    inst = nova_like.make_instance(
        env.conn,
        env.domain_name(),
        env.instances,
        env.qemu_log_dir,
        disk_names=disk_names,
        running=True,
        base_data=f"{options.base_mib}M",
        base_size=base_size,
        disk_size=base_size + (options.written_mib + 1) * MiB,
    )
    count = len(disk_names)
    case = report.Case(f"qcow2 {mode}, {count} disk{'s' if count > 1 else ''}")
    raw_root = os.path.join(env.scratch, inst.uuid)
    try:
        raw = RawFiles(env.uri, inst, raw_root, mode)
        agent = _AgentFiles(env.uri, inst, backend)
        for name in disk_names:
            inst.hmp_io(name, GUEST_WRITE.format(mib=options.written_mib))
        # The first index is a warm-up: the agent copies Nova's bases into
        # its store then, once for all the snapshots of the image.
        indexes = list(range(1, options.repeat + 2))
        for repetition, index in enumerate(indexes):
            mine, theirs = report.in_turn(
                repetition,
                functools.partial(agent.snapshot, index),
                functools.partial(raw.snapshot, index),
            )
            if repetition:
                case.add(report.SNAPSHOT, mine.seconds, theirs.seconds)
                case.add(report.PAUSE, mine.pause, theirs.pause)
                case.add(report.XML_WINDOW, mine.xml_window, theirs.xml_window)
        inst.dom.destroy()
        report.restore_and_delete(case, agent, raw, indexes)
        watchers = agent.watched + raw.watched
        interval = sum(w.elapsed for w in watchers) / max(
            1, sum(w.samples for w in watchers)
        )
        case.notes.append(
            f"XML sampled every {interval * 1000:.1f} ms; "
            f"{options.base_mib} MiB base data, guest wrote "
            f"{options.written_mib} MiB per disk"
        )
        return case
    finally:
        try:
            with contextlib.suppress(libvirt.libvirtError):
                if inst.dom.isActive():
                    inst.dom.destroy()
            inst.dom.undefineFlags(UNDEFINE_FLAGS)
        finally:
            shutil.rmtree(inst.directory, ignore_errors=True)
            shutil.rmtree(raw_root, ignore_errors=True)
            CONF.clear_override("file_snapshot_mode", group="compute")
