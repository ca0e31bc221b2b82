"""The Redis connection for events, rate-limit counters and caches (not the broker's)."""

from __future__ import annotations

from functools import cache

import redis

from shared.config import get_settings

#: Seconds to wait for Redis to connect or answer before the request fails clearly.
REDIS_TIMEOUT_SECONDS = 5


@cache
def get_redis() -> redis.Redis:
    """A client from a process-wide connection pool."""
    return redis.Redis.from_url(
        get_settings().redis_url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        retry_on_timeout=True,
        health_check_interval=30,
    )
