"""Fixed-window counters in Redis, shared by every process that uses the same Redis.

While Redis is unreachable the limits fail open (and say so in the log): a sign-up or a
login must not be lost because a counter cannot be read; the database-side checks (the
confirmation cooldown) still hold.
"""

from __future__ import annotations

import logging

import redis

from shared.redis_client import get_redis

logger = logging.getLogger("kgi.ratelimit")


def hit(key: str, limit: int, window_seconds: int) -> bool:
    """Count one event under ``key``; True while the count in this window is within ``limit``."""
    full_key = f"kgi:rate:{key}"
    try:
        pipe = get_redis().pipeline(transaction=False)
        # SET NX EX starts the window once (Redis 6.2 lacks EXPIRE NX).
        pipe.set(full_key, 0, ex=window_seconds, nx=True)
        pipe.incr(full_key)
        _, count = pipe.execute()
    except (redis.ConnectionError, redis.TimeoutError):
        logger.warning("rate limit %s not checked: Redis unreachable", key.split(":")[0])
        return True
    return int(count) <= limit


def count(key: str) -> int:
    """The current count under ``key`` (0 when the window has passed)."""
    try:
        value = get_redis().get(f"kgi:rate:{key}")
    except (redis.ConnectionError, redis.TimeoutError):
        logger.warning("rate limit %s not read: Redis unreachable", key.split(":")[0])
        return 0
    return int(value) if value else 0


def clear(key: str) -> None:
    """Forget the count under ``key`` (after a successful login, say)."""
    try:
        get_redis().delete(f"kgi:rate:{key}")
    except (redis.ConnectionError, redis.TimeoutError):
        logger.warning("rate limit %s not cleared: Redis unreachable", key.split(":")[0])
