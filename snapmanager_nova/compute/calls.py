"""Bounded, translated calls into libvirt, librbd and qemu-img.

Every hypervisor or storage call the agent makes goes through
:func:`bounded`: it runs with a deadline (a stuck libvirtd or an
unreachable OSD must not hold an instance's lock for ever) and any library
error comes out as Snapmanager's :class:`~snapmanager_nova.exception.
BackendError` with the library's own error code in the message.
"""

import concurrent.futures
import threading

from snapmanager_nova import exception

# Calls that overran their deadline keep running in these threads until
# the library returns; daemon threads so a stuck call cannot block exit.
_EXECUTOR_LOCK = threading.Lock()
_EXECUTOR = None


def _executor():
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = concurrent.futures.ThreadPoolExecutor(
                max_workers=32, thread_name_prefix="bounded-call"
            )
        return _EXECUTOR


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


def bounded(operation, timeout, func, *args, **kwargs):
    """Run ``func(*args, **kwargs)`` with a deadline and translated errors.

    ``operation`` is a short human description ("blockCommit vda") used in
    errors. Raises :class:`BackendTimeout` when the deadline passes; the
    call itself cannot be cancelled and finishes in the background.
    """
    future = _executor().submit(func, *args, **kwargs)
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise exception.BackendTimeout(
            operation=operation,
            timeout=timeout,
            origin="timeout",
            origin_code=None,
            detail="deadline passed",
        ) from None
    except Exception as exc:
        raise translate(operation, exc) from exc
