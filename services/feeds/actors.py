"""Dramatiq actors of the feeds service.

Declared with shared.tasks.actor, which binds them to the broker
shared.broker.setup_broker() sets up, however early this module is imported. The
modules these actors call never import this one: they send by actor name.
"""

from __future__ import annotations

from services.feeds import aggregate
from shared.tasks import actor

#: A fetch that runs longer than this is abandoned (timeouts are far shorter).
FETCH_TIME_LIMIT_MS = 120_000


@actor(queue_name="feeds", max_retries=0, time_limit=FETCH_TIME_LIMIT_MS)
def fetch_source(source_id: int) -> None:
    """Fetch one partner source; failures are recorded on the source and backed off."""
    aggregate.fetch_source(source_id)


@actor(queue_name="feeds", max_retries=3)
def fetch_due_sources() -> None:
    """Hand every source whose time has come to a worker."""
    for source_id in aggregate.due_source_ids():
        fetch_source.send(source_id)
