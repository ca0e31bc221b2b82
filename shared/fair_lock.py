"""A lock that lets its waiters in in the order they came (``threading.Lock`` does not).

Twenty threads queueing on a plain lock for SQLite's writer (:mod:`shared.database`) are
let in in no particular order: the thread that just released it, or whichever the
scheduler wakes first, often goes again, and an unlucky one waits many turns (the
sign-up's p99 was 3.4 times its mean under load). This one hands the lock straight to
the longest waiter, so a wait is as long as the queue ahead of it, and no longer.
"""

from __future__ import annotations

import threading
from collections import deque


class FairLock:
    """A mutual-exclusion lock handed over first come, first served."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        # One closed gate per waiter, oldest first; release() opens the oldest.
        self._waiters: deque[threading.Lock] = deque()
        self._held = False

    def acquire(self, timeout: float = -1) -> bool:
        """Take the lock, waiting at most ``timeout`` seconds (-1: for as long as it
        takes); whether it was taken."""
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            gate = threading.Lock()
            gate.acquire()
            self._waiters.append(gate)
        try:
            if gate.acquire(timeout=timeout):
                return True  # release() handed the lock over: it stays held, now by us
        except BaseException:
            # An exception raised into this thread while it waited (Dramatiq's time
            # limit does that): leave the queue, and pass on a lock handed over meanwhile,
            # or it would stay held by nobody and every later writer would wait in vain.
            with self._mutex:
                if gate in self._waiters:
                    self._waiters.remove(gate)
                else:
                    self._hand_over()
            raise
        with self._mutex:
            try:
                self._waiters.remove(gate)
            except ValueError:
                # release() handed it over between the timeout and here: it is ours.
                return True
            return False

    def release(self) -> None:
        """Hand the lock to the longest waiter, or leave it free when nobody waits."""
        with self._mutex:
            if not self._held:
                raise RuntimeError("release of a FairLock that is not held")
            self._hand_over()

    def _hand_over(self) -> None:
        """Give the held lock to the longest waiter, or free it (under ``_mutex``)."""
        if self._waiters:
            self._waiters.popleft().release()
        else:
            self._held = False
