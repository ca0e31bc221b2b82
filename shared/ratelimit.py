"""Fixed-window counters in Redis, shared by every process that uses the same Redis."""

from __future__ import annotations

from shared.redis_client import get_redis


def hit(key: str, limit: int, window_seconds: int) -> bool:
    """Count one event under ``key``; True while the count in this window is within ``limit``."""
    full_key = f"kgi:rate:{key}"
    pipe = get_redis().pipeline()
    pipe.incr(full_key)
    pipe.expire(full_key, window_seconds, nx=True)
    count, _ = pipe.execute()
    return int(count) <= limit


def count(key: str) -> int:
    """The current count under ``key`` (0 when the window has passed)."""
    value = get_redis().get(f"kgi:rate:{key}")
    return int(value) if value else 0


def clear(key: str) -> None:
    """Forget the count under ``key`` (after a successful login, say)."""
    get_redis().delete(f"kgi:rate:{key}")


def claim(key: str, seconds: int) -> bool:
    """True for the first caller in ``seconds``; False for the others (a cooldown)."""
    return bool(get_redis().set(f"kgi:cooldown:{key}", 1, nx=True, ex=seconds))
