"""Events between services over Redis: a capped stream (readable later) plus pub/sub
(for listeners that are awake now). Event names look like ``content.published``."""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

from shared.redis_client import get_redis

#: The stream every event goes to, capped at about this many entries.
EVENT_STREAM = "kgi:events"
EVENT_STREAM_MAXLEN = 10_000

logger = logging.getLogger("kgi.events")


def publish(name: str, payload: dict[str, Any]) -> None:
    """Announce ``name`` with ``payload``; a Redis outage is logged, never raised, because
    the change itself is already committed and readers can also poll the public feeds."""
    data = json.dumps({"event": name, **payload}, default=str)
    try:
        client = get_redis()
        client.xadd(EVENT_STREAM, {"data": data}, maxlen=EVENT_STREAM_MAXLEN, approximate=True)
        client.publish(f"kgi:events:{name}", data)
    except (redis.ConnectionError, redis.TimeoutError):
        logger.warning("event %s not published: Redis unreachable", name)


def recent(count: int = 100) -> list[dict[str, Any]]:
    """The newest ``count`` events, oldest first."""
    entries = get_redis().xrevrange(EVENT_STREAM, count=count)
    return [json.loads(fields[b"data"]) for _, fields in reversed(entries)]
