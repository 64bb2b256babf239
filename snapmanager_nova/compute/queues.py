"""The agent's work queues: one FIFO per instance, run on pools of threads.

Only the head of an instance's queue ever runs, so two operations on one
instance never overlap, and a backlog on one instance does not tie up
the threads other instances need. Three kinds of threads run the heads:

* the shared workers (``[compute] workers``), for everything by default;
* the urgent threads, for releases (Nova's delete, rebuild and
  shelve-offload retry their removal for about a minute only): a release
  goes ahead of everything still waiting on its instance and never waits
  for a shared worker;
* lanes: pools of their own for the second part of an operation whose
  first part, on a shared worker, found it to be short and bound by
  waiting on storage (an RBD snapshot: Ceph's monitor hands out snapshot
  ids a map update at a time, and snapshots in flight together share
  one). The first part returns :class:`Continue`; its instance's queue
  stays held until the second part ends, while the shared worker moves
  on to other instances.
"""

import collections
import concurrent.futures
import threading
import time

import futurist
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

# Threads serving urgent work (releases) beside the shared workers: a
# release is a few Ceph calls, and several deletes may come at once.
URGENT_WORKERS = 4


class Continue:
    """Returned by queued work to run the rest of it, ``func(*args)``,
    on a lane's threads, still as its instance's running operation: the
    work's future gets what ``func`` returns."""

    def __init__(self, lane, func, *args):
        self.lane = lane
        self.func = func
        self.args = args


class InstanceQueues:
    """Run callables on thread pools, one at a time per instance (see the
    module's docstring).

    ``lanes`` maps a lane's name to its number of threads. Urgent work
    that arrives while its instance's operation runs is next, right
    after it, on the same thread; a thread of the urgent pool or of a
    lane hands the instance's other waiting work back to the shared
    workers.
    """

    def __init__(self, workers, urgent_workers=URGENT_WORKERS, lanes=None):
        self._pool = futurist.ThreadPoolExecutor(max_workers=workers)
        self._urgent_pool = futurist.ThreadPoolExecutor(
            max_workers=urgent_workers
        )
        self._lanes = {
            name: futurist.ThreadPoolExecutor(max_workers=size)
            for name, size in (lanes or {}).items()
        }
        self._queues = {}
        # Instances whose queue a thread is running now (or whose head
        # waits for a lane's thread), and those with a run waiting for
        # (or on) a worker of the shared pool.
        self._running = set()
        self._pooled = set()
        self._guard = threading.Lock()
        # When work was last queued or running.
        self._last_busy = time.monotonic()

    def submit(self, instance_uuid, func, *args, urgent=False):
        """Queue ``func(*args)`` for the instance; return its Future."""
        future = concurrent.futures.Future()
        item = (future, func, args, urgent)
        with self._guard:
            self._last_busy = time.monotonic()
            queue = self._queues.setdefault(instance_uuid, collections.deque())
            if not urgent:
                queue.append(item)
                if instance_uuid in self._pooled or (
                    instance_uuid in self._running
                ):
                    return future
                self._pooled.add(instance_uuid)
                start = self._pool
            else:
                # Behind the running head and earlier urgent work.
                position = 1 if instance_uuid in self._running else 0
                while position < len(queue) and queue[position][3]:
                    position += 1
                queue.insert(position, item)
                if instance_uuid in self._running:
                    return future
                start = self._urgent_pool
        start.submit(self._drain, instance_uuid, start is self._urgent_pool)
        return future

    def _drain(self, instance_uuid, urgent_only=False, head=None):
        """Run the instance's queue from its head. ``urgent_only``: stop
        at the first work that is not urgent and hand it to the shared
        workers. ``head``: the :class:`Continue` of the head, which this
        thread (a lane's) runs first; the instance is already running."""
        if head is None:
            with self._guard:
                if not urgent_only:
                    self._pooled.discard(instance_uuid)
                if (
                    instance_uuid in self._running
                    or instance_uuid not in self._queues
                ):
                    return  # another thread runs it, or it ran already
                self._running.add(instance_uuid)
        while True:
            with self._guard:
                queue = self._queues[instance_uuid]
                if head is None and (
                    not queue or (urgent_only and not queue[0][3])
                ):
                    self._stop_running(instance_uuid, queue)
                    return
                future, func, args, _urgent = queue[0]
            if head is not None:
                func, args, head = head.func, head.args, None
            try:
                outcome = func(*args)
            except Exception as exc:
                # Work functions report their own failures; this only keeps
                # a bug in one from stalling the instance's queue.
                LOG.exception("Unexpected error in work on %s", instance_uuid)
                future.set_exception(exc)
            else:
                if isinstance(outcome, Continue):
                    # Still the head, still running: the lane's thread
                    # takes it from here.
                    self._continue(instance_uuid, outcome)
                    return
                future.set_result(outcome)
            with self._guard:
                queue.popleft()

    def _continue(self, instance_uuid, head):
        try:
            self._lanes[head.lane].submit(
                self._drain, instance_uuid, True, head
            )
        except RuntimeError:
            # The lane stopped (the agent is stopping): the rest runs
            # here rather than never.
            self._drain(instance_uuid, True, head)

    def _stop_running(self, instance_uuid, queue):
        """The thread running the instance's queue lets go of it (under
        the guard): a non-urgent head left waits for a shared worker."""
        self._running.discard(instance_uuid)
        if not queue:
            del self._queues[instance_uuid]
            self._last_busy = time.monotonic()
        elif instance_uuid not in self._pooled:
            # The rest waits for a worker, as it would have.
            self._pooled.add(instance_uuid)
            try:
                self._pool.submit(self._drain, instance_uuid)
            except RuntimeError:
                # Stopped: what is left is not started any more.
                LOG.debug("Work on %s left at shutdown", instance_uuid)

    def wait_idle(self, timeout, poll=0.1, stop=None, quiet=0.0):
        """Wait until no work has been queued or running on any instance
        for ``quiet`` seconds, at most ``timeout`` seconds, and not once
        the event ``stop`` is set; whether it is idle."""
        deadline = time.monotonic() + timeout
        stop = stop or threading.Event()
        while True:
            with self._guard:
                idle_for = time.monotonic() - self._last_busy
                if not self._queues and idle_for >= quiet:
                    return True
            if time.monotonic() >= deadline or stop.wait(poll):
                return False

    def shutdown(self, wait=True):
        # The shared workers first: what they hand to a lane still runs.
        self._urgent_pool.shutdown(wait=wait)
        self._pool.shutdown(wait=wait)
        for lane in self._lanes.values():
            lane.shutdown(wait=wait)
