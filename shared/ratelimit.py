"""Rate limits shared by every process that uses the same Redis: one implementation.

- :func:`hit`, :func:`count`, :func:`clear`: fixed-window counters (sign-ups per client,
  confirmation mails per address, failed logins).
- :class:`SendingRate`: a pace of so many events per second and per hour for all
  processes together, built on the same counters (mail dispatch).
- :func:`concurrency_slot`: at most so many at once across processes (fetches per
  partner host), with Dramatiq's own concurrent rate limiter.

While Redis is unreachable nothing is lost: counters fail open (and say so in the log),
since a sign-up or a login must not be refused because a counter cannot be read (the
database-side checks, such as the confirmation cooldown, still hold); a pace falls back
to this process's share of it; concurrency falls back to a limit per process.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from functools import cache

import redis
from dramatiq.rate_limits import ConcurrentRateLimiter
from dramatiq.rate_limits.backends import RedisBackend

from shared.redis_client import get_redis

logger = logging.getLogger("kgi.ratelimit")

#: Redis key prefix of every counter and slot.
KEY_PREFIX = "kgi:rate:"

#: Redis errors that mean "unreachable now" (fail open), as opposed to a bug.
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)

#: Longest sleep of a paced party between two calls of its keep-alive (a sender renews
#: its seat while it waits for the hourly limit, which can take minutes).
KEEP_ALIVE_SECONDS = 1.0


def _sleep(seconds: float, keep_alive: Callable[[], None] | None) -> None:
    """Sleep ``seconds``, calling ``keep_alive`` at least every KEEP_ALIVE_SECONDS."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, KEEP_ALIVE_SECONDS))
        if keep_alive is not None:
            keep_alive()


def _window_hit(key: str, window_seconds: int) -> int:
    """Count one event in ``key``'s current window; the count so far. Raises UNREACHABLE."""
    pipe = get_redis().pipeline(transaction=False)
    # SET NX EX starts the window once (Redis 6.2 lacks EXPIRE NX).
    pipe.set(KEY_PREFIX + key, 0, ex=window_seconds, nx=True)
    pipe.incr(KEY_PREFIX + key)
    return int(pipe.execute()[1])


def hit(key: str, limit: int, window_seconds: int) -> bool:
    """Count one event under ``key``; True while the count in this window is within ``limit``."""
    try:
        return _window_hit(key, window_seconds) <= limit
    except UNREACHABLE:
        logger.warning("rate limit %s not checked: Redis unreachable", key.split(":")[0])
        return True


def count(key: str) -> int:
    """The current count under ``key`` (0 when the window has passed)."""
    try:
        value = get_redis().get(KEY_PREFIX + key)
    except UNREACHABLE:
        logger.warning("rate limit %s not read: Redis unreachable", key.split(":")[0])
        return 0
    return int(value) if value else 0


def clear(key: str) -> None:
    """Forget the count under ``key`` (after a successful login, say)."""
    try:
        get_redis().delete(KEY_PREFIX + key)
    except UNREACHABLE:
        logger.warning("rate limit %s not cleared: Redis unreachable", key.split(":")[0])


class SendingRate:
    """At most ``per_second`` and ``per_hour`` events (0: no limit) for all processes
    together, counted in one-second and one-hour windows.

    While Redis is unreachable each of the ``share`` parties paces itself to its share
    of the rate, so that together they stay within it.
    """

    def __init__(self, name: str, per_second: int, per_hour: int, share: int = 1) -> None:
        self.name = name
        self.per_second = per_second
        self.per_hour = per_hour
        self.share = max(1, share)
        self._last_local = 0.0

    def wait(self, keep_alive: Callable[[], None] | None = None) -> None:
        """Return once one more event is within the rate (sleeping until it is, and
        calling ``keep_alive`` at least every KEEP_ALIVE_SECONDS meanwhile)."""
        if not (self.per_second or self.per_hour):
            return
        while True:
            now = time.time()
            second, hour = int(now), int(now // 3600)
            try:
                in_second = _window_hit(f"{self.name}:s:{second}", 5) if self.per_second else 0
                in_hour = _window_hit(f"{self.name}:h:{hour}", 7200) if self.per_hour else 0
            except UNREACHABLE:
                self._wait_for_own_share(keep_alive)
                return
            if self.per_hour and in_hour > self.per_hour:
                _sleep(min(60.0, 3600 - now % 3600), keep_alive)
                continue
            if self.per_second and in_second > self.per_second:
                time.sleep(1 - now % 1)
                continue
            return

    @property
    def share_per_second(self) -> float | None:
        """One party's share of the rate in events per second (the tighter of the two
        limits); None when there is no limit."""
        rates = [r / 3600 for r in (self.per_hour,) if r] + [r for r in (self.per_second,) if r]
        return min(rates) / self.share if rates else None

    def _wait_for_own_share(self, keep_alive: Callable[[], None] | None) -> None:
        # Without the shared counter: space this party's events so that all parties
        # together keep the rate.
        pace = self.share_per_second
        assert pace is not None  # wait() returns early without a limit
        gap = 1 / pace
        pause = self._last_local + gap - time.monotonic()
        if pause > 0:
            _sleep(pause, keep_alive)
        self._last_local = time.monotonic()


@cache
def _redis_backend() -> RedisBackend:
    return RedisBackend(client=get_redis())


_local_slots: dict[str, threading.BoundedSemaphore] = {}
_local_lock = threading.Lock()


@contextlib.contextmanager
def concurrency_slot(
    key: str, limit: int, ttl_seconds: float, wait_seconds: float
) -> Iterator[None]:
    """Hold one of ``limit`` slots of ``key`` across processes while the block runs.

    Waits up to ``wait_seconds`` for a free slot, then goes ahead anyway (a slow host
    must not stall all work). A holder killed mid-block frees its slot after
    ``ttl_seconds``. Without Redis the limit holds per process.
    """
    limiter = ConcurrentRateLimiter(
        _redis_backend(), KEY_PREFIX + key, limit=limit, ttl=int(ttl_seconds * 1000)
    )
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            held = contextlib.ExitStack()
            acquired = held.enter_context(limiter.acquire(raise_on_failure=False))
            if acquired or time.monotonic() >= deadline:
                break
            held.close()
            time.sleep(0.1)
    except UNREACHABLE:
        with _local_lock:
            semaphore = _local_slots.setdefault(key, threading.BoundedSemaphore(limit))
        with semaphore:
            yield
        return
    try:
        yield
    finally:
        # Redis gone meanwhile: the slot expires by itself after ttl_seconds.
        with contextlib.suppress(redis.RedisError):
            held.close()
