"""How an issue's senders spread over the worker processes of a machine.

Dramatiq's worker process takes messages ahead of time, twice as many as it has threads
(its prefetch). The senders of an issue are enqueued together, so the first process to
ask took all of them, and every other process sat idle while one ran them all on one
core: two worker processes sent no faster than one (bench/dispatch.py). So a process
runs at most its share of an issue's senders, ``KGI_NEWSLETTER_SENDERS`` divided by
the worker processes (rounded up); a sender that finds its process full goes back to the
queue a moment later (:data:`ELSEWHERE_DELAY_MS`), where an idle process takes it.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from shared.config import get_settings

#: How long a sender that found its process full waits in the queue before it is
#: offered to the processes again (a sender that lands in a full process again just
#: comes back once more).
ELSEWHERE_DELAY_MS = 200

#: How often a sender goes back to the queue before it runs wherever it lands (each
#: time costs about a second: a delayed message waits for a worker's next look at its
#: delay queue). The share counts on every process taking work, which a process stuck
#: on a slow SMTP server, or a KGI_WORKER_PROCESSES that says more than run, breaks.
MOST_HOPS = 5

_lock = threading.Lock()
#: Senders running in this process, per issue.
_running: Counter[int] = Counter()


def share() -> int:
    """How many of an issue's senders one worker process runs at once."""
    settings = get_settings()
    return math.ceil(settings.newsletter_senders / settings.worker_processes)


@contextmanager
def place(issue_id: int, insist: bool = False) -> Iterator[bool]:
    """A place for one sender of ``issue_id`` in this process while the block runs; the
    block gets False (and must not send) when the process runs its share already,
    unless the sender ``insist``s (it has gone back to the queue MOST_HOPS times)."""
    with _lock:
        if _running[issue_id] >= share() and not insist:
            placed = False
        else:
            _running[issue_id] += 1
            placed = True
    try:
        yield placed
    finally:
        if placed:
            with _lock:
                _running[issue_id] -= 1
                if not _running[issue_id]:
                    del _running[issue_id]
