"""The scheduler: enqueues periodic jobs. Several may run; a Redis lock makes each tick
happen once across all of them."""

from __future__ import annotations

import logging
import threading

from kgi import registry
from shared.redis_client import get_redis
from shared.tasks import enqueue

logger = logging.getLogger("kgi.scheduler")

#: Seconds between ticks; every periodic job runs at most this often. Short, because the
#: dispatch supervisor is what replaces an issue's senders when all of them died at once
#: (a worker pool killed): they are replaced within a lease and a tick. Every periodic
#: job is a query or two when there is nothing to do.
TICK_SECONDS = 10


def tick() -> None:
    """Enqueue every service's periodic jobs once (the broker must be set up: see run)."""
    for job in registry.periodic_jobs():
        enqueue(job)


def run(stop: threading.Event | None = None, tick_seconds: float = TICK_SECONDS) -> None:
    """Set up the broker, then tick until ``stop`` is set (or forever)."""
    registry.setup()
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            # The lock lives slightly shorter than a tick, so one scheduler wins each tick.
            if get_redis().set("kgi:scheduler:tick", 1, nx=True, ex=max(1, int(tick_seconds) - 1)):
                tick()
        except Exception:
            logger.exception("scheduler tick failed; trying again next tick")
        stop.wait(tick_seconds)
