"""How an issue's senders spread over the worker processes of a machine.

Dramatiq's worker process takes messages ahead of time, twice as many as it has threads
(its prefetch). The senders of an issue are enqueued together, so the first process to
ask took all of them, and every other process sat idle while one ran them all on one
core: two worker processes sent no faster than one (bench/dispatch.py). So a process
runs at most its share of an issue's senders, ``KGI_NEWSLETTER_SENDERS`` divided by
the worker processes (rounded up); a sender that finds its process full goes back to the
queue a moment later (:func:`elsewhere_delay_ms`), where an idle process takes it.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from shared.config import get_settings

#: How long a sender that found its process full waits in the queue before it is
#: offered to the processes again, the first time; twice as long each time after, up to
#: LONGEST_ELSEWHERE_DELAY_MS. Why it grows: the process that just took a message asks
#: the queue again within milliseconds, while an idle one asks about once a second
#: (Dramatiq's consumers back off while they find nothing), so the full process would
#: win a short wait nearly every time; after a longer one both ask as rarely.
ELSEWHERE_DELAY_MS = 200
LONGEST_ELSEWHERE_DELAY_MS = 2_000

#: How often a sender goes back to the queue before it runs wherever it lands (about
#: ten seconds in all). The share counts on every process taking work, which a process
#: stuck on a slow SMTP server, or a KGI_WORKER_PROCESSES that says more than run, breaks.
MOST_HOPS = 8


def elsewhere_delay_ms(hops: int) -> int:
    """How long a sender that found its process full ``hops`` times before waits now."""
    return min(ELSEWHERE_DELAY_MS * 2**hops, LONGEST_ELSEWHERE_DELAY_MS)


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
