"""Answering from what was rendered before: conditional GET, and renderings kept in
memory until the data behind them changes.

Conditional GET (RFC 9110 section 13): feeds and archive feeds are polled every few
minutes by readers that send ``If-None-Match`` or ``If-Modified-Since``; answering those
with 304 is most of the traffic, so every cacheable body goes through
:func:`conditional_response`.

A :class:`RenderingCache` keeps renderings per process under (data version, key) and
answers from memory on the event loop, without a thread or a query, while the version
it read last is to be trusted (``trust_seconds``); then it reads the version again, in
the threadpool. The version comes from the service's own database (its reader is the
one thing a service gives), never from Redis: a counter in Redis can go backwards (a
flush, an AOF that lost its last second) and would serve copies older than the list
that links to them. A change this process commits is seen at once (:meth:`distrust`,
called when such a transaction commits: :func:`shared.database.after_commit`); one made
by another process within ``trust_seconds``.

:meth:`RenderingCache.page` keeps public pages the same way, for visitors who are not
logged in: pages print nothing of their visitor's own unless they have a form or an
inline script (:class:`shared.web.templates.PerVisitor`), and such a page is never kept.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from functools import cached_property

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from shared.database import utcnow
from shared.i18n import request_language
from shared.web.sessions import current_user
from shared.web.templates import is_personal


def weak_etag(body: bytes) -> str:
    """A weak entity tag of ``body``: equal content, equal tag, whatever the encoding
    (responses are gzip-compressed, which a strong tag would have to distinguish)."""
    return 'W/"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _opaque(tag: str) -> str:
    """The opaque part of an entity tag: ``W/"x"`` and ``"x"`` compare equal weakly."""
    tag = tag.strip()
    return tag[2:] if tag[:2] in ("W/", "w/") else tag


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison of ``etag`` with an ``If-None-Match`` list (RFC 9110 13.1.2)."""
    if if_none_match.strip() == "*":
        return True
    ours = _opaque(etag)
    return any(_opaque(candidate) == ours for candidate in if_none_match.split(","))


def not_modified_since(if_modified_since: str, last_modified: datetime) -> bool:
    """True when the client's date is at or after ``last_modified`` (to the second)."""
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False  # an unparsable date is ignored, as RFC 9110 13.1.3 requires
    if since is None or since.tzinfo is None:
        return False
    return last_modified.replace(microsecond=0) <= since


def conditional_response(
    request: Request,
    body: bytes,
    media_type: str,
    etag: str,
    last_modified: datetime,
    max_age: int,
    http_last_modified: str | None = None,
) -> Response:
    """``body`` with ETag, Last-Modified and Cache-Control, or 304 when the client's copy
    is current. ``If-None-Match`` takes precedence over ``If-Modified-Since``.
    ``http_last_modified`` is ``last_modified`` already written as an HTTP date."""
    headers = {
        "ETag": etag,
        "Last-Modified": http_last_modified or format_datetime(last_modified, usegmt=True),
        "Cache-Control": f"public, max-age={max_age}",
    }
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        if etag_matches(if_none_match, etag):
            return Response(status_code=304, headers=headers)
    elif (since := request.headers.get("if-modified-since")) and not_modified_since(
        since, last_modified
    ):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


#: Bodies smaller than this are sent uncompressed: gzip would save nothing worth the CPU
#: (the compression middleware and the kept renderings use the same limit).
GZIP_MINIMUM_BYTES = 500

#: Compression of kept renderings: done once per rendering, so the smallest output.
GZIP_LEVEL = 9

# --------------------------------------------------------------------------------------
# Renderings kept until the data behind them changes.
# --------------------------------------------------------------------------------------

#: ``Last-Modified`` of a rendering that does not say (pages: they are not revalidated).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Rendered:
    """A rendered feed or page body with its validators. One that is not ``shareable``
    (a page that turned out to hold something of its visitor's own) is served once and
    never kept; one with ``valid_until`` is kept until then at the latest."""

    body: bytes
    media_type: str
    etag: str = ""
    last_modified: datetime = EPOCH
    valid_until: datetime | None = None
    shareable: bool = True
    #: The cache and key it is kept under (set by :meth:`RenderingCache.cached`); None
    #: for a rendering served once.
    origin: tuple[RenderingCache, str] | None = field(default=None, compare=False, repr=False)

    def still_kept(self) -> bool:
        """Whether its cache would answer with this very rendering now, from memory
        (never blocks: :meth:`RenderingCache.lookup`)."""
        return self.origin is not None and self.origin[0].lookup(self.origin[1]) is self

    @cached_property
    def gzipped(self) -> bytes | None:
        """The body gzip-compressed, made once per rendering (the caches make it in the
        threadpool, right after rendering); None when it is too small to be worth it.
        Answering with it spares the compression middleware compressing the same bytes
        for every reader, the largest cost of a cached feed."""
        if len(self.body) < GZIP_MINIMUM_BYTES:
            return None
        return gzip.compress(self.body, compresslevel=GZIP_LEVEL, mtime=0)

    @cached_property
    def http_last_modified(self) -> str:
        """``last_modified`` as an HTTP date, made once per rendering, not per request."""
        return format_datetime(self.last_modified, usegmt=True)


#: Scope key under which an endpoint that answers with a kept rendering leaves it, so
#: that :class:`shared.web.kept_responses.KeptResponsesMiddleware` can answer the same
#: request again without the endpoint while the rendering stays kept.
KEPT_SCOPE_KEY = "kgi.kept"


def _answered_with(request: Request, rendered: Rendered) -> None:
    """Note in the scope that this response is ``rendered``, when it is a kept one."""
    if rendered.origin is not None:
        request.scope[KEPT_SCOPE_KEY] = rendered


def accepts_gzip(request: Request) -> bool:
    """Whether the client takes gzip (read as the compression middleware reads it)."""
    return "gzip" in request.headers.get("accept-encoding", "")


def conditional(request: Request, rendered: Rendered, max_age: int) -> Response:
    """A kept rendering with its validators, or 304 when the client's copy is current;
    compressed once for every reader who takes gzip."""
    response = conditional_response(
        request,
        rendered.body,
        rendered.media_type,
        rendered.etag,
        rendered.last_modified,
        max_age,
        rendered.http_last_modified,
    )
    if response.status_code == 200:
        return compressed(request, rendered, response)
    _answered_with(request, rendered)
    # A 304 carries the Vary its 200 would (RFC 9110 15.4.5), so caches pair them.
    response.headers.add_vary_header("Accept-Encoding")
    return response


def compressed(request: Request, rendered: Rendered, response: Response) -> Response:
    """``response`` (of ``rendered``'s body) with the body compressed once and for all when
    the client takes gzip: the compression middleware lets an encoded body pass."""
    _answered_with(request, rendered)
    if rendered.gzipped is None:
        # Too small to compress: the compression middleware passes it by without a Vary.
        response.headers.add_vary_header("Accept-Encoding")
        return response
    if not accepts_gzip(request):
        # The compression middleware says Vary for a body of this size (saying it here
        # too gave "Accept-Encoding, Accept-Encoding").
        return response
    response.headers.add_vary_header("Accept-Encoding")
    response.body = rendered.gzipped
    response.headers["Content-Encoding"] = "gzip"
    response.headers["Content-Length"] = str(len(rendered.gzipped))
    return response


class RenderingCache:
    """Renderings of one service's public data, per process, keyed on its data version.

    ``read_version`` reads that version from the service's database (any value that
    changes whenever what the renderings show changes). Thread-safe: endpoints ask on the
    event loop (:meth:`lookup`, :meth:`served`), renderings are made in the threadpool.
    """

    def __init__(
        self,
        read_version: Callable[[], Hashable],
        *,
        trust_seconds: float = 1.0,
        max_entries: int = 512,
    ) -> None:
        self.read_version = read_version
        #: How long the version read last is trusted: the longest another process's
        #: change stays unseen.
        self.trust_seconds = trust_seconds
        #: Renderings kept (each variant of URL, filters, format and language is one).
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[Hashable, str], Rendered] = OrderedDict()
        self._lock = threading.Lock()
        # The version read last, when (time.monotonic()), and from when on a read may be
        # trusted (a commit of this process that changes the version pushes that forward).
        self._version: Hashable = None
        self._read_at = float("-inf")
        self._trusted_from = 0.0

    def _hit(self, version: Hashable, key: str) -> Rendered | None:
        """The entry for ``key`` at ``version`` if it is still valid (under the lock)."""
        hit = self._entries.get((version, key))
        if hit is not None and (hit.valid_until is None or hit.valid_until > utcnow()):
            self._entries.move_to_end((version, key))
            return hit
        return None

    def lookup(self, key: str) -> Rendered | None:
        """The rendering for ``key`` from memory alone, when the version read last is
        still to be trusted; None otherwise (then :meth:`cached`, in a thread). Never
        blocks: fit for the event loop."""
        now = time.monotonic()
        with self._lock:
            if self._read_at < self._trusted_from or now - self._read_at > self.trust_seconds:
                return None
            return self._hit(self._version, key)

    def current_version(self) -> Hashable:
        """The data version, read from the database (and remembered with when)."""
        started = time.monotonic()
        version = self.read_version()
        with self._lock:
            if started >= self._read_at:
                self._version, self._read_at = version, started
        return version

    def distrust(self) -> None:
        """This process has committed a change: answer nothing from memory until the
        version has been read again after it (reads within ``trust_seconds`` go to the
        database, and the first after that second starts trusting again)."""
        with self._lock:
            self._trusted_from = time.monotonic() + self.trust_seconds

    def cached(self, key: str, render: Callable[[], Rendered]) -> Rendered:
        """The rendering for ``key`` at the current version, rendering it if needed."""
        hit = self.lookup(key)
        if hit is not None:
            return hit
        current = self.current_version()
        with self._lock:
            hit = self._hit(current, key)
            if hit is not None:
                return hit
        rendered = render()
        if not rendered.shareable:
            return rendered
        rendered = replace(rendered, origin=(self, key))
        _ = rendered.gzipped  # compressed here, in the threadpool, once
        with self._lock:
            self._entries[(current, key)] = rendered
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return rendered

    async def served(self, key: str, render: Callable[[], Rendered]) -> Rendered:
        """:meth:`cached` for endpoints: from memory on the event loop when it can be,
        otherwise reading the version (and rendering) in the threadpool."""
        return self.lookup(key) or await run_in_threadpool(self.cached, key, render)

    async def page(
        self,
        request: Request,
        render: Callable[[], Response],
        valid_until: Callable[[], datetime | None] = lambda: None,
    ) -> Response:
        """A public page, rendered once per version, language and URL and answered from
        memory to every visitor who is not logged in (until ``valid_until()`` at the
        latest). Logged-in editors always get a fresh page: it shows them more (links,
        previews). A page that printed something of its visitor's own is never kept."""
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
                valid_until=valid_until(),
                shareable=response.status_code == 200 and not is_personal(request),
            )

        hit = await self.served(key, rendered)
        # A page rendered just now goes out as rendered, with its own status and headers.
        return fresh[0] if fresh else compressed(request, hit, HTMLResponse(hit.body))

    def clear(self) -> None:
        """Forget this process's renderings and the version it read (tests)."""
        with self._lock:
            self._entries.clear()
            self._read_at = float("-inf")
