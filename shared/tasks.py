"""Work and news between services: actors declared and sent to by name (apart from the
broker that carries them), and events (last section).

Dramatiq binds an actor to a broker the moment ``@dramatiq.actor`` runs: it calls
``dramatiq.get_broker()``, which, when no broker is set yet, quietly installs a default
one (RabbitMQ on localhost, or Redis on localhost with the ``dramatiq`` namespace). An
actor declared before our broker was set up would send its messages there, where no
worker of ours ever looks. So the services declare actors with :func:`actor` from here:
declared before the broker is set up, an actor is held aside and refuses to send (loudly,
instead of losing the message); :func:`bind_actors`, called by
``shared.broker.setup_broker()``, moves every held actor onto the real broker, and actors
declared afterwards go to it at once.

Web and domain modules do not import the actors modules (those import them: the
dependency points one way). They send with :func:`enqueue` by the actor's name; the
broker set-up declares all actors in every process that sets it up, so the name is known.

The actors part knows nothing about Redis or the settings; ``shared.broker`` does. Events
need no broker: :func:`publish_event` writes to Redis itself.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import dramatiq
import redis
from dramatiq.broker import Broker
from dramatiq.errors import ActorNotFound
from dramatiq.message import Message

from shared.redis_client import get_redis

P = ParamSpec("P")
R = TypeVar("R")

#: Dramatiq's own rule for queue names (checked by ``dramatiq.actor``, which we bypass).
QUEUE_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9._-]*")


class BrokerNotSetUp(RuntimeError):
    """A message was sent before ``shared.broker.setup_broker()`` ran in this process."""


class _HoldingBroker(Broker):
    """Holds the actors declared before the broker is set up; takes no messages."""

    def __init__(self) -> None:
        # No middleware: nothing should react to a declaration that is not final yet.
        super().__init__(middleware=[])
        self.queues: dict[str, None] = {}

    def declare_queue(self, queue_name: str) -> None:
        """Remember the queue; the real broker declares it when the actor moves there."""
        self.queues[queue_name] = None

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        """Refuse: a message sent now would be lost."""
        raise BrokerNotSetUp(
            f"{message.actor_name!r} was sent before the broker was set up; "
            "call kgi.registry.setup() when the process starts"
        )


_lock = threading.Lock()
_holding = _HoldingBroker()
_bound: Broker | None = None


def _move(declared: dramatiq.Actor[..., Any], broker: Broker) -> None:
    """Move an actor from the holding broker onto ``broker`` (with Dramatiq's checks)."""
    unknown = set(declared.options) - broker.actor_options
    if unknown:
        raise ValueError(
            f"actor {declared.actor_name!r} has options no middleware of the broker knows: "
            + ", ".join(sorted(unknown))
        )
    if declared.actor_name in broker.actors:
        raise ValueError(f"An actor named {declared.actor_name!r} is already registered.")
    _holding.actors.pop(declared.actor_name, None)
    declared.broker = broker
    broker.declare_actor(declared)


def actor(
    *,
    queue_name: str,
    actor_name: str | None = None,
    priority: int = 0,
    **options: Any,
) -> Callable[[Callable[P, R]], dramatiq.Actor[P, R]]:
    """Declare a Dramatiq actor that ends up on the broker ``setup_broker()`` sets up,
    whether it is declared before or after that call.

    The arguments are those of ``dramatiq.actor`` (``max_retries``, ``time_limit``, ...).
    """
    if not QUEUE_NAME_RE.fullmatch(queue_name):
        raise ValueError(f"invalid queue name {queue_name!r}")

    def decorator(fn: Callable[P, R]) -> dramatiq.Actor[P, R]:
        with _lock:
            # Declared on the holding broker first, so both cases take the same path
            # onto the real one.
            declared: dramatiq.Actor[P, R] = dramatiq.Actor(
                fn,
                broker=_holding,
                actor_name=actor_name or fn.__name__,
                queue_name=queue_name,
                priority=priority,
                options=options,
            )
            if _bound is not None:
                _move(declared, _bound)
        return declared

    return decorator


def bind_actors(broker: Broker) -> None:
    """Make ``broker`` the one every actor (declared so far or later) is bound to.

    Called once per process by ``shared.broker.setup_broker()``."""
    global _bound
    with _lock:
        if _bound is not None and _bound is not broker:
            raise RuntimeError("the actors are bound to another broker already")
        _bound = broker
        for declared in list(_holding.actors.values()):
            _move(declared, broker)


def enqueue(actor_name: str, *args: Any, **kwargs: Any) -> Message[Any]:
    """Send a message to the actor named ``actor_name``, exactly as its ``send`` would.

    For modules the actors modules import (and that therefore must not import them).
    Raises BrokerNotSetUp before the broker is set up, ActorNotFound for an unknown name.
    """
    broker = _bound
    if broker is None:
        # Not dramatiq.get_broker(): that would install a default broker and lose the message.
        raise BrokerNotSetUp(
            f"{actor_name!r} was sent before the broker was set up; "
            "call kgi.registry.setup() when the process starts"
        )
    # Through the actor's own send, so a test that replaces ``send`` sees the call too.
    return broker.get_actor(actor_name).send(*args, **kwargs)


__all__ = ["ActorNotFound", "BrokerNotSetUp", "actor", "bind_actors", "enqueue"]


# --------------------------------------------------------------------------------------
# Events between services over Redis: a capped stream (readable later) plus pub/sub
# (for listeners that are awake now). Event names look like ``content.published``.
# --------------------------------------------------------------------------------------

#: The stream every event goes to, capped at about this many entries.
EVENT_STREAM = "kgi:events"
EVENT_STREAM_MAXLEN = 10_000

logger = logging.getLogger("kgi.events")


def publish_event(name: str, payload: dict[str, Any]) -> None:
    """Announce ``name`` with ``payload``; a Redis outage is logged, never raised, because
    the change itself is already committed and readers can also poll the public feeds."""
    data = json.dumps({"event": name, **payload}, default=str)
    try:
        client = get_redis()
        client.xadd(EVENT_STREAM, {"data": data}, maxlen=EVENT_STREAM_MAXLEN, approximate=True)
        client.publish(f"kgi:events:{name}", data)
    except (redis.ConnectionError, redis.TimeoutError):
        logger.warning("event %s not published: Redis unreachable", name)


def recent_events(count: int = 100) -> list[dict[str, Any]]:
    """The newest ``count`` events, oldest first."""
    entries = get_redis().xrevrange(EVENT_STREAM, count=count)
    return [json.loads(fields[b"data"]) for _, fields in reversed(entries)]
