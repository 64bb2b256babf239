"""Deadlines of the agent's calls into librbd and libvirt, on real Ceph
and libvirtd.

A hung libvirtd or Ceph is played by calls the test controls: a thread
of the bounded-call pool held by the test (the pool "fills"), a call
that returns only when the test lets it (``calls._test_call_returned``,
after the library did its work), or a connection or domain whose answer
waits for the test. Every wait here has a deadline.
"""

import concurrent.futures
import dataclasses
import threading

import pytest

from snapmanager_nova import conf as sm_conf
from snapmanager_nova import exception
from snapmanager_nova.compute import calls
from snapmanager_nova.compute import manager as compute_manager
from snapmanager_nova.compute.backends import rbd as rbd_mod
from tests.functional.compute import rbd_helpers as helpers

# The fixtures this module uses, from the shared helpers.
ceph_secret = helpers.ceph_secret
rbd_conf = helpers.rbd_conf
rbd_agent_client = helpers.rbd_agent_client
rbd_backend = helpers.rbd_backend
rbd_instance = helpers.rbd_instance

CONF = sm_conf.CONF
TWO_DISKS = ("disk", "disk.local")
# Longest a test waits for anything.
WAIT = 60


@pytest.fixture
def deadlines():
    """Set ``[compute] call_timeout`` and ``copy_timeout`` for one test."""
    before = {
        name: getattr(CONF.compute, name)
        for name in ("call_timeout", "copy_timeout")
    }

    def set_deadlines(call, copy):
        CONF.set_override("call_timeout", call, group="compute")
        CONF.set_override("copy_timeout", copy, group="compute")

    yield set_deadlines
    for name, value in before.items():
        CONF.set_override(name, value, group="compute")


@pytest.fixture
def one_call_thread(monkeypatch):
    """The bounded-call pool with one thread, so that the test can fill
    it; everything queued has run when the test ends."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    monkeypatch.setattr(calls, "_EXECUTOR", pool)
    # librbd's calls have a pool of their own: the same one thread.
    monkeypatch.setattr(calls, "_EXECUTORS", {calls.STORAGE: pool})
    yield pool
    pool.shutdown(wait=True)


def drained(pool):
    """Wait until every call queued on the one-thread pool so far has
    run or been dropped."""
    pool.submit(lambda: None).result(timeout=WAIT)


@pytest.fixture
def slow_calls(monkeypatch):
    """Make the calls whose operation starts with a given text return
    only when released (or after ``delay``); the library has done its
    work by then."""
    rules = []

    def hook(operation):
        for prefix, gate, delay in rules:
            if operation.startswith(prefix):
                gate.wait(delay)

    monkeypatch.setattr(calls, "_test_call_returned", hook)

    def slow(prefix, delay=WAIT):
        gate = threading.Event()
        rules.append((prefix, gate, delay))
        return gate

    yield slow
    for _, gate, _ in rules:
        gate.set()


def in_thread(func, *args):
    """Run ``func`` in a thread; (thread, outcome dict)."""
    outcome = {}

    def run():
        try:
            outcome["result"] = func(*args)
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


# A call queued past its deadline never starts


def test_a_rollback_queued_past_its_deadline_never_runs(
    rbd_backend,
    rbd_instance,
    ceph_client,
    one_call_thread,
    deadlines,
    monkeypatch,
):
    deadlines(call=3, copy=3)
    layout = rbd_instance()
    instance = layout.instance()
    dom = helpers.FakeDomain()
    helpers.write(ceph_client, layout.image(), 0, helpers.pattern("then"))
    result = rbd_backend.snapshot(instance, dom, 1, "skip")
    helpers.write(ceph_client, layout.image(), 0, helpers.pattern("now"))
    now = helpers.checksum(ceph_client, layout.image())
    hung = threading.Event()

    def fill_the_pool(stage):
        if stage == "rollback-starting":
            # Another operation's call holds the pool's only thread, as
            # calls into a hung libvirtd or Ceph fill it.
            one_call_thread.submit(hung.wait, WAIT)

    monkeypatch.setattr(rbd_mod, "_test_crash_point", fill_the_pool)
    with pytest.raises(exception.BackendTimeout):
        rbd_backend.restore(instance, dom, 1, result.disks)
    # The restore has failed (the conductor reports it so); then the
    # cluster answers again.
    hung.set()
    drained(one_call_thread)
    assert helpers.checksum(ceph_client, layout.image()) == now
    # The image the restore opened was closed all the same.
    assert helpers.watchers(ceph_client, layout.image()) == []


# A call that outlives its deadline leaves nothing behind


def test_an_image_opened_after_its_deadline_is_closed_again(
    rbd_backend,
    rbd_instance,
    ceph_client,
    one_call_thread,
    slow_calls,
    deadlines,
):
    deadlines(call=3, copy=3)
    layout = rbd_instance()
    # The snapshot's one call opens the image, snapshots it and closes
    # it; it returns after the operation gave up on it.
    gate = slow_calls(f"snapshot {layout.pool}/{layout.image()}@")
    with pytest.raises(exception.BackendTimeout):
        rbd_backend.snapshot(
            layout.instance(), helpers.FakeDomain(), 1, "skip"
        )
    gate.set()
    drained(one_call_thread)
    # No handle of ours stays open: it would keep a watch on the image,
    # and Nova's rbd remove fails on an image with watchers.
    assert helpers.watchers(ceph_client, layout.image()) == []
    assert rbd_backend.list_indexes(layout.uuid) == []


# Every libvirt call has a deadline


class _LookupWaits:
    """The real libvirt connection, whose domain lookups answer only
    when the test lets them (a libvirtd that hangs)."""

    def __init__(self, conn, gate):
        self._conn = conn
        self._gate = gate

    def lookupByUUIDString(self, uuid):
        self._gate.wait(WAIT)
        return self._conn.lookupByUUIDString(uuid)

    def __getattr__(self, name):
        return getattr(self._conn, name)


class _Reports:
    def __init__(self):
        self.calls = []

    def __getattr__(self, method):
        def record(context, *args):
            self.calls.append((method, args))

        return record


def test_the_domain_lookup_has_a_deadline(
    rbd_backend, rbd_instance, libvirt_conn, deadlines
):
    deadlines(call=3, copy=3)
    layout = rbd_instance()
    gate = threading.Event()
    conductor = _Reports()
    agent = compute_manager.ComputeManager(
        "host-1",
        {"rbd": rbd_backend},
        conductor,
        connect=lambda: _LookupWaits(libvirt_conn, gate),
    )
    try:
        with helpers.defined(libvirt_conn, layout):
            thread, outcome = in_thread(
                agent._create_snapshot, None, layout.uuid, "snap-1", 1, "skip"
            )
            thread.join(WAIT / 2)
            finished = not thread.is_alive()
            gate.set()
            thread.join(WAIT)
    finally:
        agent.cleanup_host()
    assert finished, "the snapshot waited on the hung lookup"
    assert "error" not in outcome
    [(method, args)] = conductor.calls
    assert method == "snapshot_failed"
    assert "domain lookup did not finish within 3 seconds" in args[1]


class _HangsWhenFrozen(helpers.FakeDomain):
    """A running domain whose libvirtd hangs on every state query: for a
    one-disk snapshot, the only one is the freeze's (whether there is a
    guest to freeze)."""

    def __init__(self, gate):
        super().__init__(active=True)
        self.gate = gate

    def isActive(self):
        self.gate.wait(WAIT)
        return True


def test_the_freeze_has_a_deadline(rbd_backend, rbd_instance, deadlines):
    deadlines(call=3, copy=3)
    layout = rbd_instance()
    # A guest agent channel whose agent hangs: without a channel,
    # ``prefer`` never asks for a freeze.
    instance = dataclasses.replace(layout.instance(), has_agent_channel=True)
    gate = threading.Event()
    dom = _HangsWhenFrozen(gate)
    thread, outcome = in_thread(
        rbd_backend.snapshot, instance, dom, 1, "prefer"
    )
    thread.join(WAIT / 2)
    finished = not thread.is_alive()
    gate.set()
    thread.join(WAIT)
    assert finished, "the snapshot waited on the hung freeze"
    assert isinstance(outcome.get("error"), exception.BackendTimeout)
    assert dom.calls == []  # never frozen
    assert rbd_backend.list_indexes(layout.uuid) == []


# The deadline matches the work


def test_rollback_and_sizing_run_under_the_copy_deadline(
    rbd_backend, rbd_instance, ceph_client, slow_calls, deadlines
):
    # Rolling back or diffing a big image takes longer than a call
    # should: here both take twice the call deadline.
    deadlines(call=2, copy=WAIT)
    slow_calls("roll back", delay=4)
    slow_calls("measure", delay=4)
    layout = rbd_instance()
    instance = layout.instance()
    dom = helpers.FakeDomain()
    helpers.write(ceph_client, layout.image(), 0, helpers.pattern("then"))
    then = helpers.checksum(ceph_client, layout.image())
    result = rbd_backend.snapshot(instance, dom, 1, "skip")
    _disks, size = rbd_backend.measure(instance.uuid, 1, result.disks)
    assert size == 4 * helpers.MiB
    helpers.write(ceph_client, layout.image(), 0, helpers.pattern("now"))
    rbd_backend.restore(instance, dom, 1, result.disks)
    assert helpers.checksum(ceph_client, layout.image()) == then


# A retry of a timed-out snapshot


def test_a_retry_after_a_timeout_takes_the_snapshot(
    rbd_backend, rbd_instance, ceph_client, monkeypatch
):
    layout = rbd_instance(TWO_DISKS)
    instance = layout.instance()
    stages = []

    def overrun_once(stage):
        stages.append(stage)
        if len(stages) == 1:
            helpers.overrun(stage)

    monkeypatch.setattr(rbd_mod, "_test_crash_point", overrun_once)
    with pytest.raises(exception.BackendTimeout):
        rbd_backend.snapshot(instance, helpers.FakeDomain(), 1, "skip")
    assert rbd_backend.list_indexes(layout.uuid) == []

    # The conductor retries the same index.
    result = rbd_backend.snapshot(instance, helpers.FakeDomain(), 1, "skip")
    assert [entry["image"] for entry in result.disks] == layout.images
    assert rbd_backend.list_indexes(layout.uuid) == [1]
    for image in layout.images:
        assert helpers.snapshots(ceph_client, image, True) == ["snapmanager-1"]
        assert helpers.metadata(ceph_client, image) == {}
    assert helpers.intents(ceph_client, layout.uuid) == {}


def test_a_retry_waits_for_the_late_call_of_the_earlier_attempt(
    rbd_backend, rbd_instance, ceph_client, slow_calls, deadlines
):
    deadlines(call=3, copy=3)
    layout = rbd_instance(TWO_DISKS)
    instance = layout.instance()
    disk, local = layout.images
    # librbd takes the second disk's snapshot, but only answers late.
    gate = slow_calls(f"snapshot {layout.pool}/{local}@")
    with pytest.raises(exception.BackendTimeout):
        rbd_backend.snapshot(instance, helpers.FakeDomain(), 1, "skip")

    # Retried while that call still runs: cleaning up now could miss
    # what it is still making, so the retry fails and changes nothing.
    with pytest.raises(exception.BackendTimeout) as caught:
        rbd_backend.snapshot(instance, helpers.FakeDomain(), 1, "skip")
    assert caught.value.kwargs["detail"] == "a call of it is still running"
    assert helpers.snapshots(ceph_client, disk) == ["snapmanager-1"]
    assert rbd_backend.list_indexes(layout.uuid) == []

    gate.set()
    result = rbd_backend.snapshot(instance, helpers.FakeDomain(), 1, "skip")
    assert len(result.disks) == 2
    assert rbd_backend.list_indexes(layout.uuid) == [1]
    for image in layout.images:
        assert helpers.snapshots(ceph_client, image) == ["snapmanager-1"]
    assert helpers.intents(ceph_client, layout.uuid) == {}
