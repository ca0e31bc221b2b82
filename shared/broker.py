"""The Dramatiq broker: Redis, configured from the settings.

Importing this module installs the broker globally, so every ``@dramatiq.actor`` declared
afterwards (in the services' ``actors.py``) is bound to it. Import it before any actors.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from shared.config import get_settings

#: The Redis key namespace for queues; separate from events, caches and counters.
BROKER_NAMESPACE = "kgi-dramatiq"

broker = RedisBroker(url=get_settings().redis_url, namespace=BROKER_NAMESPACE)
dramatiq.set_broker(broker)

#: Modules that declare actors; ``kgi worker`` imports them all.
ACTOR_MODULES = (
    "services.subscribers.actors",
    "services.feeds.actors",
    "services.newsletter.actors",
)
