"""The deadline rules of compute/calls.py, with plain Python callables
standing in for library calls (the functional tests hang real ones)."""

import concurrent.futures
import threading

import pytest

from snapmanager_nova import exception
from snapmanager_nova.compute import calls

WAIT = 30


@pytest.fixture
def one_thread(monkeypatch):
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    monkeypatch.setattr(calls, "_EXECUTOR", pool)
    yield pool
    pool.shutdown(wait=True)


def drained(pool):
    pool.submit(lambda: None).result(timeout=WAIT)


def test_a_call_queued_past_its_deadline_never_starts(one_thread):
    gate = threading.Event()
    one_thread.submit(gate.wait, WAIT)  # the only thread is busy
    ran = []
    with pytest.raises(exception.BackendTimeout):
        calls.bounded("queued", 0.2, ran.append, "queued")
    with pytest.raises(exception.BackendTimeout):
        calls.bounded("cleanup", 0.2, ran.append, "cleanup", always=True)
    gate.set()
    drained(one_thread)
    # The clean-up still ran once a thread was free; the other never did.
    assert ran == ["cleanup"]


def test_what_a_late_call_returns_goes_to_its_clean_up(one_thread):
    gate = threading.Event()
    closed = []

    def open_late():
        gate.wait(WAIT)
        return "handle"

    with pytest.raises(exception.BackendTimeout):
        calls.bounded("open", 0.2, open_late, on_late=closed.append)
    gate.set()
    drained(one_thread)
    assert closed == ["handle"]
    # In time, the caller gets it and the clean-up is not called.
    assert calls.bounded("open", WAIT, lambda: "h2", on_late=closed.append)
    assert closed == ["handle"]


def test_a_late_multi_step_call_stops_at_its_next_step(one_thread):
    gate = threading.Event()
    steps = []

    def two_steps():
        steps.append(1)
        gate.wait(WAIT)
        calls.check_deadline()
        steps.append(2)

    with pytest.raises(exception.BackendTimeout):
        calls.bounded("two steps", 0.2, two_steps)
    gate.set()
    drained(one_thread)
    assert steps == [1]


def test_settle_waits_for_the_late_calls_of_a_scope():
    gate = threading.Event()
    with calls.scope("instance-1"):
        with pytest.raises(exception.BackendTimeout):
            calls.bounded("slow", 0.2, gate.wait, WAIT)
    assert calls.settle("instance-2", 0)  # nothing late there
    assert not calls.settle("instance-1", 0.1)
    gate.set()
    assert calls.settle("instance-1", WAIT)


def test_a_background_call_returns_at_once_and_logs_its_failure(
    one_thread, caplog
):
    gate = threading.Event()
    one_thread.submit(gate.wait, WAIT)  # the only thread is busy
    closed = []

    def fail():
        raise OSError(5, "I/O error")

    calls.in_background("close of image a", closed.append, "a")
    calls.in_background("close of image b", fail)
    assert closed == []  # queued: the caller did not wait
    gate.set()
    drained(one_thread)
    assert closed == ["a"]
    assert "close of image b failed" in caplog.text
    assert "I/O error" in caplog.text


def test_a_background_call_runs_in_place_once_its_pool_is_gone(one_thread):
    one_thread.shutdown(wait=True)
    closed = []
    calls.in_background("close of image a", closed.append, "a")
    assert closed == ["a"]


def test_errors_are_translated():
    def fail():
        raise OSError(5, "I/O error")

    with pytest.raises(exception.BackendError) as caught:
        calls.bounded("read", WAIT, fail)
    assert caught.value.kwargs["origin_code"] == 5
