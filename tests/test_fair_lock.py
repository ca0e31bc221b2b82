"""The SQLite writers' lock (shared.fair_lock): one holder at a time, handed over in
the order the waiters came, and a waiter that gives up leaves the queue."""

from __future__ import annotations

import ctypes
import threading
import time

import pytest

from shared.fair_lock import FairLock


def test_one_holder_at_a_time_under_contention() -> None:
    lock = FairLock()
    inside = 0
    most_inside = 0
    total = 0

    def work() -> None:
        nonlocal inside, most_inside, total
        for _ in range(300):
            assert lock.acquire()
            inside += 1
            most_inside = max(most_inside, inside)
            value = total
            time.sleep(0)  # let another thread run while the lock is held
            total = value + 1
            inside -= 1
            lock.release()

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (most_inside, total) == (1, 16 * 300)


def test_waiters_get_the_lock_in_the_order_they_came() -> None:
    lock = FairLock()
    assert lock.acquire()
    order: list[int] = []

    def wait_turn(number: int) -> None:
        assert lock.acquire()
        order.append(number)
        lock.release()

    threads = []
    for number in range(8):
        thread = threading.Thread(target=wait_turn, args=(number,))
        thread.start()
        threads.append(thread)
        # The next one starts only once this one is queued.
        deadline = time.monotonic() + 5
        while len(lock._waiters) < number + 1:
            assert time.monotonic() < deadline
            time.sleep(0.001)
    lock.release()
    for thread in threads:
        thread.join()
    assert order == list(range(8))


def test_a_waiter_that_gives_up_leaves_the_queue() -> None:
    lock = FairLock()
    assert lock.acquire()
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(lock.acquire(timeout=0.05)))
    thread.start()
    thread.join()
    assert results == [False]
    assert not lock._waiters
    lock.release()
    assert lock.acquire(timeout=0)
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()


class TimeLimitExceeded(Exception):
    """What Dramatiq's time limit raises into a worker thread that ran too long."""


def test_an_exception_raised_into_a_waiter_loses_nothing() -> None:
    """Dramatiq's time limit raises into a thread (PyThreadState_SetAsyncExc), which then
    raises at its next bytecode: here right after the lock was handed to it. The lock
    goes on to the next waiter instead of staying held by nobody."""
    lock = FairLock()
    assert lock.acquire()
    raised: list[BaseException] = []
    queued = threading.Event()

    def wait_and_get_interrupted() -> None:
        queued.set()
        try:
            lock.acquire()
        except TimeLimitExceeded as exc:
            raised.append(exc)

    waiter = threading.Thread(target=wait_and_get_interrupted)
    waiter.start()
    queued.wait(5)
    deadline = time.monotonic() + 5
    while not lock._waiters:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(waiter.ident), ctypes.py_object(TimeLimitExceeded)
    )
    lock.release()  # handed to the waiter, which raises as it wakes
    waiter.join(5)
    assert len(raised) == 1
    assert lock.acquire(timeout=1), "the lock stayed held by nobody"
    lock.release()
