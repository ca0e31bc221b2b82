"""Rendered feeds, kept until the content changes.

Every change the public can see (publish, retract, edit of a published item, hiding,
aggregation) raises the content version in the feeds database, in the transaction that
makes the change (:func:`services.feeds.store.mark_content_changed`). A rendered feed is
kept per process under (version, URL) and reused until the version moves or an
effective/expiry date passes. So a feed is rendered once per change and per process, and
a request for an unchanged feed costs one primary-key read.

The key lives in the database, not in Redis: a counter in Redis can go backwards (a
flush, or an AOF that lost its last second) and would then serve copies without an item
the list already shows. Losing Redis costs nothing here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from services.feeds import store
from shared.database import read_connection, utcnow

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


def cached(key: str, render: Callable[[], Rendered]) -> Rendered:
    """The rendering for ``key`` at the current content version, rendering it if needed."""
    with read_connection("feeds") as conn:
        current = store.content_version_of(conn)
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
