"""Rendered feeds and public pages, kept until the content changes.

Every change the public can see (publish, retract, edit of a published item, hiding,
aggregation) raises the content version in the feeds database, in the transaction that
makes the change (:func:`services.feeds.store.mark_content_changed`). A rendered feed is
kept per process under (version, URL) and reused until the version moves or an
effective/expiry date passes. So a feed is rendered once per change and per process, and
the version is read from the database at most once a second per process: a cached feed
is answered from memory on the event loop, without a thread or a query. Public pages
(the news list, item pages) are kept the same way for visitors who are not logged in
(:func:`public_page`).

That second is the only delay a change can have. A change made by this process is seen
at once (its commit makes the version untrusted until a read after it); one made by
another process (a worker's aggregation, another web process) within
``VERSION_TRUST_SECONDS``. The key lives in the database, not in Redis: a counter in
Redis can go backwards (a flush, or an AOF that lost its last second) and would then
serve copies without an item the list already shows. Losing Redis costs nothing here.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from services.feeds import listing, store
from shared.database import read_connection, utcnow
from shared.i18n import request_language
from shared.web.sessions import current_user
from shared.web.templates import is_personal

#: Renderings kept per process (each variant of filters, format, page and language is one).
MAX_ENTRIES = 512

#: How long this process answers from memory on the content version it read last,
#: before reading it again: the longest another process's change stays unseen.
VERSION_TRUST_SECONDS = 1.0


#: ``Last-Modified`` of a rendering that does not say (pages: they are not revalidated).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Rendered:
    """A rendered feed or page body with its validators. One that is not ``shareable``
    (a page that turned out to hold something of its visitor's own) is served once and
    never kept."""

    body: bytes
    media_type: str
    etag: str = ""
    last_modified: datetime = EPOCH
    valid_until: datetime | None = None
    shareable: bool = True


_entries: OrderedDict[tuple[int, str], Rendered] = OrderedDict()
_lock = threading.Lock()

#: The content version read last, when (time.monotonic()), and from when on a read may
#: be trusted (a commit of this process changing the version pushes that forward).
_version = 0
_read_at = float("-inf")
_trusted_from = 0.0


def _hit(version: int, key: str) -> Rendered | None:
    """The entry for ``key`` at ``version`` if it is still valid (under ``_lock``)."""
    hit = _entries.get((version, key))
    if hit is not None and (hit.valid_until is None or hit.valid_until > utcnow()):
        _entries.move_to_end((version, key))
        return hit
    return None


def lookup(key: str) -> Rendered | None:
    """The rendering for ``key`` from memory alone, when the content version read last is
    still to be trusted; None otherwise (then :func:`cached`, in a thread). Never blocks:
    fit for the event loop."""
    now = time.monotonic()
    with _lock:
        if _read_at < _trusted_from or now - _read_at > VERSION_TRUST_SECONDS:
            return None
        return _hit(_version, key)


def current_version() -> int:
    """The content version, read from the database (and remembered with when)."""
    global _version, _read_at
    started = time.monotonic()
    with read_connection("feeds") as conn:
        version = store.content_version_of(conn)
    with _lock:
        if started >= _read_at:
            _version, _read_at = version, started
    return version


def distrust_version() -> None:
    """This process is committing a change: answer nothing from memory until the
    version has been read again after the commit (within ``VERSION_TRUST_SECONDS``, which
    a commit takes far less than)."""
    global _trusted_from
    with _lock:
        _trusted_from = time.monotonic() + VERSION_TRUST_SECONDS


store.CONTENT_COMMIT_HOOKS.append(distrust_version)


def cached(key: str, render: Callable[[], Rendered]) -> Rendered:
    """The rendering for ``key`` at the current content version, rendering it if needed."""
    hit = lookup(key)
    if hit is not None:
        return hit
    current = current_version()
    with _lock:
        hit = _hit(current, key)
        if hit is not None:
            return hit
    rendered = render()
    if not rendered.shareable:
        return rendered
    with _lock:
        _entries[(current, key)] = rendered
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)
    return rendered


async def served(key: str, render: Callable[[], Rendered]) -> Rendered:
    """:func:`cached` for endpoints: from memory on the event loop when it can be,
    otherwise reading the version (and rendering) in the threadpool."""
    return lookup(key) or await run_in_threadpool(cached, key, render)


async def public_page(request: Request, render: Callable[[], Response]) -> Response:
    """A public page (the news list, an item): rendered once per content version, language
    and URL, and answered from memory to every visitor who is not logged in. Logged-in
    editors always get a fresh page (it shows them more: links, previews). A page that
    prints something of its visitor's own (a CSRF token) is never kept."""
    if current_user(request) is not None:
        return await run_in_threadpool(render)
    query = request.scope["query_string"].decode("latin-1")
    key = f"page {request_language(request)} {request.scope['path']}?{query}"
    fresh: list[Response] = []

    def rendered() -> Rendered:
        response = render()
        fresh.append(response)
        return Rendered(
            bytes(response.body),
            response.media_type or "text/html",
            valid_until=listing.unchanged_until(),
            shareable=response.status_code == 200 and not is_personal(request),
        )

    hit = await served(key, rendered)
    # A page rendered just now goes out as rendered, with its own status and headers.
    return fresh[0] if fresh else HTMLResponse(hit.body)


def clear_local() -> None:
    """Forget this process's renderings and the version it read (tests)."""
    global _read_at
    with _lock:
        _entries.clear()
        _read_at = float("-inf")
