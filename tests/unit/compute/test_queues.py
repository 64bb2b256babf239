"""The agent's per-instance work queues (snapmanager_nova.compute.queues):
ordering, urgent work, and lanes that take over an operation's second
part. Pure threading: no libvirt, no storage."""

import threading
import time

from snapmanager_nova.compute import queues as queues_mod


def test_a_failing_work_item_does_not_stall_the_queue():
    queues = queues_mod.InstanceQueues(2)
    done = threading.Event()

    def boom():
        raise RuntimeError("bug")

    queues.submit("i-1", boom)
    queues.submit("i-1", done.set)
    assert done.wait(5)
    queues.shutdown()


def test_urgent_work_needs_no_free_worker():
    queues = queues_mod.InstanceQueues(1)
    gate = threading.Event()
    order = []
    queues.submit("i-1", gate.wait, 30)
    queues.submit("i-2", order.append, "queued")
    urgent = queues.submit("i-3", order.append, "urgent", urgent=True)
    # The only worker is held by i-1; the release of i-3 runs anyway.
    urgent.result(timeout=30)
    assert order == ["urgent"]
    gate.set()
    queues.shutdown()
    assert order == ["urgent", "queued"]


def test_urgent_work_follows_the_running_operation_of_its_instance():
    queues = queues_mod.InstanceQueues(2)
    gate = threading.Event()
    started = threading.Event()
    order = []

    def running():
        started.set()
        gate.wait(30)
        order.append("running")

    queues.submit("i-1", running)
    assert started.wait(30)
    queues.submit("i-1", order.append, "queued")
    first = queues.submit("i-1", order.append, "urgent-1", urgent=True)
    second = queues.submit("i-1", order.append, "urgent-2", urgent=True)
    gate.set()
    first.result(timeout=30)
    second.result(timeout=30)
    queues.shutdown()
    # Never beside the operation in progress; ahead of waiting work.
    assert order == ["running", "urgent-1", "urgent-2", "queued"]


def test_urgent_work_hands_the_rest_back_to_the_workers():
    queues = queues_mod.InstanceQueues(1)
    gate = threading.Event()
    order = []
    queues.submit("i-1", gate.wait, 30)
    # i-2's queue waits for the busy worker; its release does not.
    queued = queues.submit("i-2", order.append, "queued")
    queues.submit("i-2", order.append, "urgent", urgent=True).result(30)
    assert order == ["urgent"]
    gate.set()
    queued.result(timeout=30)
    queues.shutdown()
    assert order == ["urgent", "queued"]


def test_idle_means_quiet_for_a_while():
    """Sizes wait for a quiet agent: a gap between two messages of a
    fan-out is not idle yet, and stopping the agent ends the wait."""
    queues = queues_mod.InstanceQueues(2)
    queues.submit("i-1", time.sleep, 0.2).result(timeout=30)
    idle = []
    waiter = threading.Thread(
        target=lambda: idle.append(queues.wait_idle(30, poll=0.01, quiet=1))
    )
    waiter.start()
    # Work comes again before the quiet time is over: still waiting.
    time.sleep(0.5)
    queues.submit("i-2", time.sleep, 0.2).result(timeout=30)
    ended = time.monotonic()
    waiter.join(timeout=30)
    assert idle == [True]
    assert time.monotonic() - ended >= 0.9
    queues.submit("i-1", time.sleep, 0).result(timeout=30)
    assert not queues.wait_idle(0.05, poll=0.01, quiet=1)
    stop = threading.Event()
    stop.set()
    assert not queues.wait_idle(30, poll=0.01, stop=stop, quiet=60)
    assert queues.wait_idle(0, quiet=0)
    queues.shutdown()


# Lanes: the second part of an operation on threads of its own


def _continued(lane, started, gate, result):
    """Work whose first part returns at once and whose second part, on
    ``lane``, waits for ``gate``."""

    def second():
        started.set()
        assert gate.wait(30)
        return result

    return lambda: queues_mod.Continue(lane, second)


def test_a_continued_operation_frees_its_worker():
    queues = queues_mod.InstanceQueues(1, lanes={"storage": 2})
    gate = threading.Event()
    started = [threading.Event(), threading.Event()]
    futures = [
        queues.submit(f"i-{n}", _continued("storage", started[n], gate, n))
        for n in range(2)
    ]
    # One shared worker, yet both second parts run at once.
    assert all(event.wait(30) for event in started)
    gate.set()
    assert [future.result(timeout=30) for future in futures] == [0, 1]
    queues.shutdown()


def test_a_continued_operation_holds_its_instance_until_it_ends():
    queues = queues_mod.InstanceQueues(2, lanes={"storage": 2})
    gate, started = threading.Event(), threading.Event()
    order = []
    first = queues.submit("i-1", _continued("storage", started, gate, "a"))
    assert started.wait(30)
    queued = queues.submit("i-1", order.append, "queued")
    urgent = queues.submit("i-1", order.append, "urgent", urgent=True)
    # A free shared worker and a free urgent thread: neither starts
    # while the instance's operation goes on in the lane.
    time.sleep(0.3)
    assert order == [] and not queued.done() and not urgent.done()
    gate.set()
    assert first.result(timeout=30) == "a"
    queued.result(timeout=30)
    urgent.result(timeout=30)
    queues.shutdown()
    # Urgent work still comes right after the running operation.
    assert order == ["urgent", "queued"]


def test_a_lane_hands_the_instance_s_other_work_back_to_the_workers():
    queues = queues_mod.InstanceQueues(1, lanes={"storage": 1})
    threads = {}

    def second():
        threads["second"] = threading.current_thread()

    def first():
        threads["first"] = threading.current_thread()
        return queues_mod.Continue("storage", second)

    def after():
        threads["after"] = threading.current_thread()

    queues.submit("i-1", first)
    queues.submit("i-1", after).result(timeout=30)
    queues.shutdown()
    assert threads["second"] is not threads["first"]
    # The lane ran only the continued part; the shared worker the rest.
    assert threads["after"] is threads["first"]


def test_a_failing_second_part_does_not_stall_the_queue():
    queues = queues_mod.InstanceQueues(1, lanes={"storage": 1})

    def boom():
        raise RuntimeError("bug")

    failed = queues.submit("i-1", lambda: queues_mod.Continue("storage", boom))
    after = queues.submit("i-1", lambda: "ran")
    assert after.result(timeout=30) == "ran"
    assert isinstance(failed.exception(timeout=0), RuntimeError)
    queues.shutdown()
    assert queues.wait_idle(0)


def test_a_second_part_runs_in_place_once_its_lane_is_stopped():
    queues = queues_mod.InstanceQueues(1, lanes={"storage": 1})
    # The lane stops first, as when the agent stops under load.
    queues._lanes["storage"].shutdown()
    future = queues.submit(
        "i-1", lambda: queues_mod.Continue("storage", lambda: "done")
    )
    assert future.result(timeout=30) == "done"
    queues.shutdown()
