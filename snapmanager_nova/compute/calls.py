"""Bounded, translated calls into libvirt, librbd and qemu-img.

Every hypervisor or storage call the agent makes goes through
:func:`bounded`: it runs with a deadline (a stuck libvirtd or an
unreachable OSD must not hold an instance's lock for ever) and any library
error comes out as Snapmanager's :class:`~snapmanager_nova.exception.
BackendError` with the library's own error code in the message.

A call that missed its deadline belongs to an operation that has already
failed (and been reported failed), so it must not act any more:

* a call still waiting for a thread when its deadline passes never
  starts (the shared pool fills up while libvirtd or Ceph hangs, and the
  queue behind it would otherwise run, out of order, once it recovers);
* a call already inside the library cannot be stopped, but what it
  returns late is handed to its ``on_late`` clean-up (an image opened
  late is closed again) and never to the caller, and functions that make
  several library calls in one bounded call stop at the next
  :func:`check_deadline`;
* such late calls are tracked per :func:`scope` (an instance), so that a
  retry of the operation can wait for them to end (:func:`settle`) before
  it cleans up what they left.

A clean-up whose outcome no one waits for (closing an image handle once
its snapshot is made) goes through :func:`in_background` instead: the
same threads, and no caller held up by it.
"""

import concurrent.futures
import contextlib
import threading
import time

from oslo_log import log as logging

from snapmanager_nova import exception

LOG = logging.getLogger(__name__)

# Threads for the calls; a call that overran its deadline keeps its thread
# until the library returns.
THREADS = 32
# librbd and librados calls have threads of their own: they wait on the
# network (OSDs, monitors), and a fan-out of snapshots keeps many in
# flight, which must neither wait behind libvirt's calls nor hold the
# threads libvirt's need (a hung libvirtd must not stop RBD work, nor a
# slow OSD a domain lookup).
STORAGE_THREADS = 32
STORAGE = "storage"

_EXECUTOR_LOCK = threading.Lock()
_EXECUTOR = None
_EXECUTORS = {}
_LOCAL = threading.local()
# scope: set of the futures of calls of that scope still running late.
_LATE = {}
_LATE_LOCK = threading.Condition()


def _executor(pool=None):
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if pool == STORAGE:
            if pool not in _EXECUTORS:
                _EXECUTORS[pool] = concurrent.futures.ThreadPoolExecutor(
                    max_workers=STORAGE_THREADS,
                    thread_name_prefix="bounded-storage-call",
                )
            return _EXECUTORS[pool]
        if _EXECUTOR is None:
            _EXECUTOR = concurrent.futures.ThreadPoolExecutor(
                max_workers=THREADS, thread_name_prefix="bounded-call"
            )
        return _EXECUTOR


def _test_call_returned(operation):
    """Where tests make a call slow; does nothing otherwise.

    Called in the call's thread after the library returned, before the
    result is handed over: a test that blocks here for ``operation`` has
    a call that overruns its deadline, with the library's effect done.
    """


def translate(operation, exc):
    """Return the BackendError for a library exception."""
    if isinstance(exc, exception.SnapmanagerException):
        return exc
    origin, code = _origin(exc)
    return exception.BackendError(
        operation=operation, origin=origin, origin_code=code, detail=exc
    )


def _origin(exc):
    module = type(exc).__module__ or ""
    if hasattr(exc, "get_error_code"):  # libvirt.libvirtError
        return "libvirt", exc.get_error_code()
    if module.startswith("rbd") or module.startswith("rados"):
        return module.split(".")[0], getattr(exc, "errno", None)
    if hasattr(exc, "exit_code"):  # oslo_concurrency ProcessExecutionError
        return "process", exc.exit_code
    return type(exc).__name__, getattr(exc, "errno", None)


def _timeout(operation, timeout, detail="deadline passed"):
    return exception.BackendTimeout(
        operation=operation,
        timeout=timeout,
        origin="timeout",
        origin_code=None,
        detail=detail,
    )


class _Call:
    """One bounded call, as its thread sees it."""

    def __init__(self, operation, timeout, on_late, always):
        self.operation = operation
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.on_late = on_late
        self.always = always
        self.lock = threading.Lock()
        self.abandoned = False
        self.delivered = False  # the caller gets the result

    def run(self, func, args, kwargs):
        with self.lock:
            late = self.abandoned or time.monotonic() >= self.deadline
            if late and not self.always:
                # Its operation has failed already: never start.
                self.abandoned = True
                raise _timeout(self.operation, self.timeout, "never started")
        _LOCAL.call = self
        try:
            result = func(*args, **kwargs)
        finally:
            _LOCAL.call = None
        _test_call_returned(self.operation)
        with self.lock:
            late = self.abandoned
            self.delivered = not late
        if late and self.on_late is not None:
            try:
                self.on_late(result)
            except Exception:
                LOG.exception(
                    "Cleaning up after late %s failed", self.operation
                )
        return result

    def abandon(self, future):
        """The caller gives up; True unless the call finished meanwhile."""
        with self.lock:
            if self.delivered or future.done():
                return False
            self.abandoned = True
        if not self.always:
            future.cancel()  # not started yet: it never will
        return True


def check_deadline():
    """Raise BackendTimeout when the bounded call this thread runs has
    been given up; for functions making several library calls in one
    bounded call, between calls that change something."""
    call = getattr(_LOCAL, "call", None)
    if call is None:
        return
    with call.lock:
        late = call.abandoned or time.monotonic() >= call.deadline
        call.abandoned = call.abandoned or late
    if late:
        raise _timeout(call.operation, call.timeout, "given up; stopped")


@contextlib.contextmanager
def scope(key):
    """Calls made by this thread in the block belong to ``key``."""
    previous = getattr(_LOCAL, "scope", None)
    _LOCAL.scope = key
    try:
        yield
    finally:
        _LOCAL.scope = previous


def settle(key, timeout):
    """Wait until no late call of scope ``key`` runs; False if some
    still do after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with _LATE_LOCK:
        while _LATE.get(key):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            _LATE_LOCK.wait(remaining)
    return True


def _track_late(key, future):
    if key is None:
        return
    with _LATE_LOCK:
        _LATE.setdefault(key, set()).add(future)

    def done(_future):
        with _LATE_LOCK:
            late = _LATE.get(key, set())
            late.discard(future)
            if not late:
                _LATE.pop(key, None)
            _LATE_LOCK.notify_all()

    future.add_done_callback(done)


def bounded(
    operation,
    timeout,
    func,
    *args,
    on_late=None,
    always=False,
    call_pool=None,
    **kwargs,
):
    """Run ``func(*args, **kwargs)`` with a deadline and translated errors.

    ``operation`` is a short human description ("blockCommit vda") used in
    errors. Raises :class:`BackendTimeout` when the deadline passes: a
    call not started by then never starts; one already running finishes
    in the background, and ``on_late`` (if given) gets what it returns.
    ``always`` is for clean-ups that must happen even late (closing an
    image handle): such a call still runs once a thread is free.
    ``call_pool``: :data:`STORAGE` for librbd and librados calls (threads
    of their own), None for the rest.
    """
    call = _Call(operation, timeout, on_late, always)
    future = _executor(call_pool).submit(call.run, func, args, kwargs)
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        if not call.abandon(future):
            return _result(operation, future)
        _track_late(getattr(_LOCAL, "scope", None), future)
        raise _timeout(operation, timeout) from None
    except Exception as exc:
        raise translate(operation, exc) from exc


def in_background(operation, func, *args, call_pool=None):
    """Run ``func(*args)`` on the pool's threads and return at once.

    For clean-ups whose outcome nothing waits for, such as closing an
    image handle whose snapshot is already made: the operation goes on
    (and reports) while the library finishes. A failure is logged.
    """

    def run():
        try:
            func(*args)
        except Exception as exc:
            LOG.warning("%s failed: %s", operation, translate(operation, exc))

    try:
        _executor(call_pool).submit(run)
    except RuntimeError:
        run()  # the interpreter is exiting: no new threads, so here


def _result(operation, future):
    try:
        return future.result()
    except Exception as exc:
        raise translate(operation, exc) from exc
