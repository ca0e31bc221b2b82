"""The one rate-limit module: counters, a shared pace and concurrency slots, on the real
Redis, and what each does while Redis is unreachable."""

from __future__ import annotations

import threading

import pytest
import redis

from shared import ratelimit
from shared.redis_client import get_redis


class Unreachable:
    """A Redis client whose every command finds the server gone."""

    def __getattr__(self, name: str):
        def fail(*args, **kwargs):
            raise redis.ConnectionError("Connection refused")

        return fail


@pytest.fixture
def no_redis(monkeypatch):
    monkeypatch.setattr(ratelimit, "get_redis", Unreachable)
    ratelimit._redis_backend.cache_clear()
    yield
    ratelimit._redis_backend.cache_clear()


def test_counters_count_within_a_window_and_clear():
    assert [ratelimit.hit("test:a", 2, 60) for _ in range(3)] == [True, True, False]
    assert ratelimit.count("test:a") == 3
    ratelimit.clear("test:a")
    assert ratelimit.count("test:a") == 0 and ratelimit.hit("test:a", 2, 60)


def test_counters_fail_open_without_redis(no_redis, caplog):
    assert all(ratelimit.hit("test:b", 1, 60) for _ in range(5))
    assert ratelimit.count("test:b") == 0
    assert "Redis unreachable" in caplog.text


def test_a_pace_without_redis_is_each_partys_share(no_redis, monkeypatch):
    slept: list[float] = []
    clock = [100.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(ratelimit.time, "sleep", sleep)
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: clock[0])
    # Four senders sharing 10 a second: each waits 0.4 s between its own messages.
    pace = ratelimit.SendingRate("test", per_second=10, per_hour=0, share=4)
    pace.wait()
    pace.wait()
    assert slept == [pytest.approx(0.4)]
    # An hourly limit lower than the per-second one is the one kept; a long wait is cut
    # into steps so that the waiting sender can renew its seat in between.
    slept.clear()
    beats: list[float] = []
    hourly = ratelimit.SendingRate("test", per_second=10, per_hour=3600, share=2)
    hourly.wait(keep_alive=lambda: beats.append(clock[0]))
    hourly.wait(keep_alive=lambda: beats.append(clock[0]))
    assert sum(slept) == pytest.approx(2.0)
    assert max(slept) <= ratelimit.KEEP_ALIVE_SECONDS and len(beats) == len(slept)


def test_a_shared_pace_is_kept_by_everyone_together():
    pace = ratelimit.SendingRate("test-shared", per_second=1000, per_hour=5, share=2)
    counted = []
    for _ in range(5):
        pace.wait()
        counted.append(1)
    keys = list(get_redis().scan_iter("kgi:rate:test-shared:h:*"))
    assert len(counted) == 5 and int(get_redis().get(keys[0])) == 5


def test_concurrency_slots_are_shared_and_freed():
    inside = threading.Barrier(3, timeout=10)
    release = threading.Event()
    seen: list[int] = []

    def hold() -> None:
        with ratelimit.concurrency_slot("test:host", 2, ttl_seconds=30, wait_seconds=5):
            inside.wait()
            release.wait(10)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for thread in holders:
        thread.start()
    inside.wait()  # both slots are taken now
    seen.append(int(get_redis().get("kgi:rate:test:host") or 0))
    # A third caller waits no longer than it was told to, then goes ahead anyway.
    with ratelimit.concurrency_slot("test:host", 2, ttl_seconds=30, wait_seconds=0.2):
        seen.append(int(get_redis().get("kgi:rate:test:host") or 0))
    release.set()
    for thread in holders:
        thread.join(10)
    assert seen == [2, 2]
    assert int(get_redis().get("kgi:rate:test:host") or 0) == 0


def test_concurrency_slots_hold_per_process_without_redis(no_redis):
    with ratelimit.concurrency_slot("test:offline", 1, ttl_seconds=30, wait_seconds=1):
        semaphore = ratelimit._local_slots["test:offline"]
        assert not semaphore.acquire(blocking=False)  # the one local slot is taken
    assert semaphore.acquire(blocking=False)
    semaphore.release()
