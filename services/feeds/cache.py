"""Rendered feeds, kept until the content changes.

A generation counter in Redis goes up on every publish, retract, edit of a published item
and aggregation change; a rendered feed is kept per process under (generation, URL) and
reused until the counter moves or an effective/expiry date passes. So a feed is rendered
once per change and per process, and a request for an unchanged feed costs one Redis GET.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import redis

from shared.database import utcnow
from shared.redis_client import get_redis

logger = logging.getLogger("kgi.feeds.cache")

GENERATION_KEY = "kgi:feeds:generation"

#: Rendered feeds kept per process (each variant of filters, format and page is one).
MAX_ENTRIES = 512


@dataclass(frozen=True)
class Rendered:
    """A rendered feed or page body with its validators."""

    body: bytes
    media_type: str
    etag: str
    last_modified: datetime
    valid_until: datetime | None = None


_entries: OrderedDict[tuple[int, str], Rendered] = OrderedDict()
_lock = threading.Lock()


def generation() -> int | None:
    """The current content generation; None when Redis is unreachable (then nothing is cached)."""
    try:
        value = get_redis().get(GENERATION_KEY)
    except (redis.ConnectionError, redis.TimeoutError):
        logger.warning("feed cache bypassed: Redis unreachable")
        return None
    return int(value) if value else 0


def content_changed() -> None:
    """Invalidate every rendered feed (in every process)."""
    try:
        get_redis().incr(GENERATION_KEY)
    except (redis.ConnectionError, redis.TimeoutError):
        # Without Redis nothing is cached (see generation()), so nothing can go stale.
        logger.warning("feed cache not invalidated: Redis unreachable")


def cached(key: str, render: Callable[[], Rendered]) -> Rendered:
    """The rendering for ``key`` in the current generation, rendering it if needed."""
    current = generation()
    if current is None:
        return render()
    now = utcnow()
    with _lock:
        hit = _entries.get((current, key))
        if hit is not None and (hit.valid_until is None or hit.valid_until > now):
            _entries.move_to_end((current, key))
            return hit
    rendered = render()
    with _lock:
        _entries[(current, key)] = rendered
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)
    return rendered


def clear_local() -> None:
    """Forget this process's renderings (tests)."""
    with _lock:
        _entries.clear()
