"""The RBD backend against the raw librbd calls.

A case is one Nova-like RBD instance (tests/functional/compute/
rbd_helpers) with one image or four in the test cluster's pool, whose
"guest" data was written through librbd before its domain started under
TCG (the guest sits in its firmware). Each repetition snapshots the
running domain with the agent (``RbdBackend.snapshot``) and with the raw
calls; then, the domain shut off, each snapshot is restored and finally
deleted, by both. Before every restore, each side first rewrites the
start of every image (untimed), so that a rollback has data to undo.

The raw calls take the same path as the agent, through their own Ceph
connection, with none of the agent's crash intent, state reads, size
accounting or bounded calls:

one image, or a frozen guest
    ``create_snap`` on each image in turn, ``rollback_to_snap`` on each,
    ``remove_snap`` on each;
several images of a guest that cannot be frozen (no qemu-guest-agent,
as here)
    a group snapshot: each image joins a group, the group's
    ``create_snap``, each image leaves again (a member image would make
    Nova's delete fail); the group's ``rollback_to_snap`` and
    ``remove_snap``.

Pause: the agent's ``pause_seconds``, from freeze to thaw, which is 0
here as the guest cannot be frozen. That is not all a guest feels, so
a writer of the benchmark's own plays the guest's I/O (the guests here
sit in their firmware and write nothing): its own Ceph client, every
image open, 4 KiB writes to each in turn without pause, so that it owns
every image's exclusive lock as a writing QEMU does. Guest stall: the
longest of its writes during each snapshot, agent's and raw; and how
often it found it had lost an image's lock at its next write (a lock
taken away from the guest and given back).
"""

import contextlib
import functools
import statistics
import threading
import time

import rados
import rbd

from benchmarks import common
from benchmarks.compute import report
from snapmanager_nova.compute.backends import rbd_images
from tests.functional.compute import rbd_helpers

MiB = rbd_helpers.MiB
# What each side rewrites on every image before a restore.
CHANGE_MIB = 4
RAW_PREFIX = "bench-raw-"


class RawRbd:
    """The raw calls on one instance's images; snapshots ``bench-raw-n``."""

    def __init__(self, ioctx, images, group_name=None):
        self.ioctx = ioctx
        self.images = images
        self.group_name = group_name  # None: one snapshot per image

    @staticmethod
    def snap(index):
        return f"{RAW_PREFIX}{index}"

    def create_group(self):
        if self.group_name:
            rbd.RBD().group_create(self.ioctx, self.group_name)

    def remove_group(self):
        # With the group go its snapshots, which would keep the images.
        if self.group_name in rbd.RBD().group_list(self.ioctx):
            rbd.RBD().group_remove(self.ioctx, self.group_name)

    def snapshot(self, index):
        seconds, _ = report.timed(self._snapshot, self.snap(index))
        return seconds

    def _snapshot(self, name):
        if self.group_name:
            group = rbd.Group(self.ioctx, self.group_name)
            for image in self.images:
                group.add_image(self.ioctx, image)
            group.create_snap(name)
            for image in self.images:
                group.remove_image(self.ioctx, image)
            return
        for image_name in self.images:
            with rbd.Image(self.ioctx, image_name) as image:
                image.create_snap(name)

    def restore(self, index):
        _change(self.ioctx, self.images, index)
        seconds, _ = report.timed(self._restore, self.snap(index))
        return seconds

    def _restore(self, name):
        if self.group_name:
            rbd.Group(self.ioctx, self.group_name).rollback_to_snap(name)
            return
        for image_name in self.images:
            with rbd.Image(self.ioctx, image_name) as image:
                image.rollback_to_snap(name)

    def delete(self, index):
        seconds, _ = report.timed(self._delete, self.snap(index))
        return seconds

    def _delete(self, name):
        if self.group_name:
            rbd.Group(self.ioctx, self.group_name).remove_snap(name)
            return
        for image_name in self.images:
            with rbd.Image(self.ioctx, image_name) as image:
                image.remove_snap(name)


class _AgentRbd:
    """The agent's side of a case."""

    def __init__(self, ioctx, layout, backend, dom, kind):
        self.ioctx = ioctx
        self.layout = layout
        self.instance = layout.instance()
        self.backend = backend
        self.dom = dom
        self.kind = kind
        self.results = {}  # index: SnapshotResult

    def snapshot(self, index):
        seconds, result = report.timed(
            self.backend.snapshot, self.instance, self.dom, index, "prefer"
        )
        # The comparison is only fair against the raw calls of the same
        # kind: check the agent took the snapshot this case expects.
        kinds = {disk.get("kind") for disk in result.disks}
        if kinds != {self.kind}:
            raise AssertionError(
                f"agent took {kinds} snapshots, the case expects {self.kind}"
            )
        self.results[index] = result
        return seconds, result.pause_seconds

    def restore(self, index):
        _change(self.ioctx, self.layout.images, index)
        return report.agent_restore(
            self.backend,
            self.instance,
            self.dom,
            index,
            self.results[index],
        )

    def delete(self, index):
        return report.agent_delete(
            self.backend, self.layout.uuid, index, self.results[index]
        )


class GuestWriter:
    """A guest's I/O on the images, from a Ceph client of its own."""

    BLOCK = 4096

    def __init__(self, ceph, images):
        self._cluster = rados.Rados(
            conffile=ceph["conf"], rados_id=ceph["user"]
        )
        self._cluster.connect(timeout=30)
        self._ioctx = self._cluster.open_ioctx(ceph["pool"])
        self._images = [rbd.Image(self._ioctx, name) for name in images]
        self._data = rbd_helpers.pattern("guest-io", self.BLOCK)
        self._stop = threading.Event()
        self._watching = False
        self.longest = 0.0
        self.lost = 0
        self.idle = []  # latencies outside the windows
        for image in self._images:
            image.write(self._data, 0)  # takes the lock, as QEMU does
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        offset = 0
        while not self._stop.is_set():
            offset = (offset + self.BLOCK) % MiB
            for image in self._images:
                owner = image.is_exclusive_lock_owner()
                started = time.perf_counter()
                image.write(self._data, offset)
                seconds = time.perf_counter() - started
                if self._watching:
                    self.lost += 0 if owner else 1
                    self.longest = max(self.longest, seconds)
                elif len(self.idle) < 100000:
                    self.idle.append(seconds)

    @contextlib.contextmanager
    def window(self):
        """Watch the writes during the block; yields a dict that holds
        "stall" (seconds) and "lost" (lock losses) after it."""
        seen = {}
        self.longest, self.lost = 0.0, 0
        self._watching = True
        try:
            yield seen
        finally:
            self._watching = False
            seen.update(stall=self.longest, lost=self.lost)

    def close(self):
        self._stop.set()
        self._thread.join(timeout=60)
        for image in self._images:
            image.close()
        self._ioctx.close()
        self._cluster.shutdown()


def _watched(writer, func):
    """(func(), stall seconds, lock losses) with ``writer`` watching."""
    with writer.window() as seen:
        result = func()
    return result, seen["stall"], seen["lost"]


def _change(ioctx, images, index):
    data = rbd_helpers.pattern(f"change-{index}", CHANGE_MIB * MiB)
    for image in images:
        rbd_helpers.write(ioctx, image, 0, data)


def run(env, backend, disk_names, options):
    """Measure one disk count; return its :class:`report.Case`."""
    written = options.written_mib * MiB
    layout = rbd_helpers.make_layout(
        env.ioctx,
        env.ceph,
        env.secret_uuid,
        env.domain_name(),
        disk_names=disk_names,
        size=max(rbd_helpers.DISK_SIZE, written + MiB),
    )
    # A running guest without an agent: the agent takes a group snapshot
    # of several disks, plain snapshots of one.
    several = len(disk_names) > 1
    kind = rbd_images.KIND_GROUP if several else rbd_images.KIND_USER
    raw = RawRbd(
        env.ioctx,
        layout.images,
        f"{RAW_PREFIX}{layout.uuid}" if several else None,
    )
    count = len(disk_names)
    case = report.Case(
        f"rbd, {count} disk{'s' if count > 1 else ''} ({kind} snapshot)"
    )
    try:
        raw.create_group()
        data = rbd_helpers.pattern("guest", written)
        for image in layout.images:
            rbd_helpers.write(env.ioctx, image, 0, data)
        lost = {"agent": 0, "raw": 0}
        with rbd_helpers.defined(env.conn, layout) as dom:
            dom.create()
            agent = _AgentRbd(env.ioctx, layout, backend, dom, kind)
            writer = GuestWriter(env.ceph, layout.images)
            try:
                # The first index is a warm-up: the agent's first snapshot
                # opens its pool and, for several disks, creates the group.
                indexes = list(range(1, options.repeat + 2))
                for repetition, index in enumerate(indexes):
                    mine, theirs = report.in_turn(
                        repetition,
                        functools.partial(
                            _watched,
                            writer,
                            functools.partial(agent.snapshot, index),
                        ),
                        functools.partial(
                            _watched,
                            writer,
                            functools.partial(raw.snapshot, index),
                        ),
                    )
                    if repetition:
                        (seconds, pause), stall, agent_lost = mine
                        raw_seconds, raw_stall, raw_lost = theirs
                        case.add(report.SNAPSHOT, seconds, raw_seconds)
                        case.add(report.PAUSE, pause)
                        case.add(report.STALL, stall, raw_stall)
                        lost["agent"] += agent_lost
                        lost["raw"] += raw_lost
            finally:
                writer.close()
            dom.destroy()
            report.restore_and_delete(case, agent, raw, indexes)
        case.notes.append(
            f"{options.written_mib} MiB written per image before the "
            f"snapshots, {CHANGE_MIB} MiB rewritten before each restore"
        )
        idle = statistics.median(writer.idle) if writer.idle else 0.0
        case.notes.append(
            f"guest stall: longest 4 KiB write of the guest's client "
            f"during a snapshot (median write otherwise "
            f"{report.ms(idle)} ms); the guest lost an image's "
            f"exclusive lock {lost['agent']} times in "
            f"{options.repeat} agent snapshots, {lost['raw']} in raw ones"
        )
        return case
    finally:
        try:
            raw.remove_group()
        finally:
            common.remove_rbd_instance(env.ioctx, layout.uuid)
