"""The Dramatiq broker: Redis, configured from the settings, set up explicitly.

Importing this module does nothing but define things. Every process that sends or runs
actors calls :func:`setup_broker` when it starts, through :func:`kgi.registry.setup`,
which names the modules declaring actors: the site, the scheduler, the ``kgi`` commands
that send, the workers (Dramatiq's CLI is given ``kgi.registry:setup`` and calls it) and
the tests' conftest.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable

import dramatiq
import dramatiq.broker
from dramatiq.brokers.redis import RedisBroker

from shared import tasks
from shared.config import get_settings

#: The Redis key namespace for queues; separate from events, caches and counters.
BROKER_NAMESPACE = "kgi-dramatiq"

_lock = threading.Lock()
_broker: RedisBroker | None = None


def setup_broker(actor_modules: Iterable[str] = ()) -> RedisBroker:
    """Create the Redis broker from the settings, install it as Dramatiq's global broker,
    bind every actor to it and import ``actor_modules`` (every service's, so all actors
    are declared and can be sent to by name); later calls return the same broker.

    Raises RuntimeError when some other broker was installed first (``dramatiq.get_broker()``
    called, or a plain ``@dramatiq.actor`` declared, before this): actors bound to it
    would send where no worker of ours listens.
    """
    global _broker
    with _lock:
        if _broker is None:
            # Read the module attribute: dramatiq.get_broker() would install a default.
            installed = dramatiq.broker.global_broker
            if installed is not None:
                raise RuntimeError(
                    f"a {type(installed).__name__} was installed before setup_broker(); "
                    "declare actors with shared.tasks.actor, not @dramatiq.actor"
                )
            broker = RedisBroker(url=get_settings().redis_url, namespace=BROKER_NAMESPACE)
            dramatiq.set_broker(broker)
            tasks.bind_actors(broker)
            _broker = broker
        broker = _broker
    # Outside the lock: importing an actors module declares its actors, which may run
    # more project code; doing it again on later calls costs a dictionary lookup each.
    for module in actor_modules:
        importlib.import_module(module)
    return broker
