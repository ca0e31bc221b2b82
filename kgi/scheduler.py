"""The scheduler: enqueues periodic jobs. Several may run; a Redis lock makes each tick
happen once across all of them."""

from __future__ import annotations

import logging
import threading

# The scheduler is an entry point, so it may know the actors themselves (typed, checked at
# import) rather than send by name; run() sets up the broker they are bound to.
from services.feeds.actors import fetch_due_sources
from services.newsletter.actors import supervise_dispatch
from services.subscribers.actors import purge_expired_signups, sweep_outbox
from shared.broker import setup_broker
from shared.redis_client import get_redis

logger = logging.getLogger("kgi.scheduler")

#: Seconds between ticks; every periodic job runs at most this often.
TICK_SECONDS = 60


def tick() -> None:
    """Enqueue every periodic job once (the broker must be set up: see run)."""
    sweep_outbox.send()
    purge_expired_signups.send()
    fetch_due_sources.send()
    supervise_dispatch.send()


def run(stop: threading.Event | None = None, tick_seconds: float = TICK_SECONDS) -> None:
    """Set up the broker, then tick until ``stop`` is set (or forever)."""
    setup_broker()
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            # The lock lives slightly shorter than a tick, so one scheduler wins each tick.
            if get_redis().set("kgi:scheduler:tick", 1, nx=True, ex=max(1, int(tick_seconds) - 1)):
                tick()
        except Exception:
            logger.exception("scheduler tick failed; trying again next tick")
        stop.wait(tick_seconds)
