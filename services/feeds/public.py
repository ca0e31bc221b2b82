"""The public side of the feeds service: list and item pages, feeds, the items API, media.

Every endpoint is a plain function: Starlette runs it in the threadpool, so its database
and Redis calls never block the event loop.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from services.feeds import cache, downloads, listing, media, revisions, store
from services.feeds.calendar_feed import render_calendar
from services.feeds.item_fields import EARLIEST_DATE, LATEST_DATE, MAX_TAG_LENGTH, row_id
from services.feeds.listing import ItemFilter
from services.feeds.store import KINDS
from services.feeds.syndication import FeedQuery, item_url, render_feed
from shared.config import get_settings
from shared.database import read_connection, utcnow
from shared.errors import Invalid, NotFound
from shared.i18n import LANGUAGES, request_language
from shared.sanitize import writable
from shared.service import PageSection
from shared.web.caching import conditional
from shared.web.sessions import current_user
from shared.web.templates import render_page, render_text

#: Items per page on the public list.
LIST_PAGE_SIZE = 10

#: Highest page number anybody may ask for: beyond any real archive, and small enough
#: that page × page size stays inside the database's integers.
MAX_PAGE = 1_000_000

#: How long feed readers and proxies may reuse a feed without asking (5 minutes).
FEED_MAX_AGE_SECONDS = 300

#: Most items one API call returns.
API_LIMIT = 200

#: Longest tag filter taken from a query (as long as the longest tag).
MAX_TAG_FILTER = MAX_TAG_LENGTH

NOTHING_HERE = "There is nothing at this address."


def page_of(request: Request) -> int:
    """The page asked for (1 without ``?page=``); 404 unless it is a whole number from 1."""
    raw = request.query_params.get("page")
    if raw is None:
        return 1
    page = row_id(raw)
    if page is None or page > MAX_PAGE:
        raise NotFound("There is no such page.")
    return page


def selection_from(request: Request) -> tuple[ItemFilter, int]:
    """The filters and page asked for; unknown filter values are ignored."""
    params = request.query_params
    kind = params.get("type") if params.get("type") in KINDS else None
    language = params.get("lang") if params.get("lang") in LANGUAGES else None
    tag = writable(params.get("tag") or "").strip()[:MAX_TAG_FILTER] or None
    partners = params.get("partners") in ("1", "true", "yes")
    selection = ItemFilter(kind=kind, tag=tag, language=language, include_partners=partners)
    return selection, page_of(request)


async def news_list(request: Request) -> Response:
    """The public list of news and conference reports, filtered and paged."""
    return await cache.RENDERINGS.page(
        request, lambda: _news_list(request), listing.unchanged_until
    )


def _news_list(request: Request) -> Response:
    selection, page = selection_from(request)
    found, total = listing.public_items(selection, LIST_PAGE_SIZE, (page - 1) * LIST_PAGE_SIZE)
    pages = max(1, -(-total // LIST_PAGE_SIZE))
    if page > pages:
        raise NotFound("There is no such page.")
    query = FeedQuery(selection)
    return render_page(
        request,
        "feeds/list.html",
        {
            "items": found,
            "selection": selection,
            "page": page,
            "pages": pages,
            "total": total,
            "tags": listing.all_tags(selection.include_partners),
            "feeds": {fmt: query.url(fmt) for fmt in ("rss", "atom", "json")},
            "query": query.query_string,
        },
    )


async def news_item(request: Request) -> Response:
    """An item's page; logged-in staff also see items that are not public, and with
    ``?revision=pending`` the item as its pending revision would make it."""
    return await cache.RENDERINGS.page(
        request, lambda: _news_item(request), listing.unchanged_until
    )


def _news_item(request: Request) -> Response:
    slug = request.path_params["slug"]
    if writable(slug) != slug:
        # No slug holds such characters, and PostgreSQL text cannot even be asked for NUL.
        raise NotFound("There is no such item.")
    with read_connection("feeds") as conn:
        item = store.get_item_by_slug(conn, slug)
        translation = (
            store.get_item(conn, item.translation_id) if item and item.translation_id else None
        )
    staff = current_user(request) is not None
    if item is None or (not staff and not listing.is_visible(item)):
        raise NotFound(NOTHING_HERE)
    if translation is not None and not listing.is_visible(translation):
        translation = None
    shown, revision = item, None
    if staff and request.query_params.get("revision") == "pending":
        revision = revisions.pending_revision(item.id)
        if revision is not None:
            shown = revisions.preview(item, revision)
    return render_page(
        request,
        "feeds/item.html",
        {
            "item": shown,
            "translation": translation,
            "preview": not listing.is_visible(item) or revision is not None,
            "revision": revision,
            "files": [
                (file, downloads.size_label(file.size, request_language(request)))
                for file in downloads.files_of([item.id])[item.id]
            ],
            "feeds": {
                fmt: FeedQuery(ItemFilter(kind=item.kind)).url(fmt)
                for fmt in ("rss", "atom", "json")
            },
        },
    )


async def feed(request: Request) -> Response:
    """RSS, Atom or JSON Feed of a selection, from the cache, with conditional GET.

    Asynchronous so that a feed in memory is answered on the event loop: most requests
    are readers polling an unchanged feed, and a thread per request would cost more than
    the answer. Reading the version and rendering go to the threadpool."""
    fmt = request.path_params["fmt"]
    # Most requests ask again for a feed in memory: kept under its one canonical query,
    # so the raw query finds it without reading the query at all.
    kept = cache.RENDERINGS.lookup(f"{fmt}?{request.scope['query_string'].decode('latin-1')}")
    if kept is not None:
        return conditional(request, kept, FEED_MAX_AGE_SECONDS)
    if fmt not in ("rss", "atom", "json"):
        raise NotFound(NOTHING_HERE)
    selection, page = selection_from(request)
    query = FeedQuery(selection, page)
    # The raw query, not request.url: building a URL object costs more than the answer.
    if request.scope["query_string"].decode("latin-1") != query.query_string:
        # One URL per feed, so the self link always matches the URL served.
        target = request.url.path + ("?" + query.query_string if query.query_string else "")
        return RedirectResponse(target, status_code=301)
    # A page past the last raises PageNotFound (a NotFound): answered as 404.
    key = f"{fmt}?{query.query_string}"
    rendered = await cache.RENDERINGS.served(key, lambda: render_feed(fmt, query))
    return conditional(request, rendered, FEED_MAX_AGE_SECONDS)


async def calendar(request: Request) -> Response:
    """Conference dates as iCalendar, with conditional GET (from memory like the feeds)."""
    selection, _ = selection_from(request)
    key = f"ics?{FeedQuery(selection).query_string}"
    rendered = await cache.RENDERINGS.served(key, lambda: render_calendar(selection))
    return conditional(request, rendered, FEED_MAX_AGE_SECONDS)


def since_of(raw: str) -> datetime:
    """``?since=`` as a UTC moment; 422 unless an ISO date or date-time in range."""
    try:
        since = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid("since must be an ISO date or date-time.", "since") from None
    # Checked before converting: at the ends of the calendar that would overflow.
    if not EARLIEST_DATE <= since.date() <= LATEST_DATE:
        years = f"{EARLIEST_DATE.year} and {LATEST_DATE.year}"
        raise Invalid(f"since must lie between {years}.", "since")
    return since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)


def api_items(request: Request) -> Response:
    """Visible items as JSON for other services (the newsletter composes from this):
    the list filters plus ``since`` (ISO date or time) and ``limit``."""
    selection, page = selection_from(request)
    since_raw = request.query_params.get("since")
    if since_raw:
        selection = replace(selection, since=since_of(since_raw))
    try:
        limit = max(1, min(int(request.query_params.get("limit", "50")), API_LIMIT))
    except ValueError:
        raise Invalid("limit must be a number.", "limit") from None
    found, total = listing.public_items(selection, limit, (page - 1) * limit)
    return JSONResponse(
        {"total": total, "page": page, "items": [item_json(item) for item in found]}
    )


def item_json(item: store.Item) -> dict[str, Any]:
    """The public fields of an item, with absolute URLs."""
    settings = get_settings()
    image = item.lead_image_url
    return {
        "id": item.id,
        "kind": item.kind,
        "origin": item.origin,
        "source": item.source_name,
        "language": item.language,
        "title": item.title,
        "summary": item.summary,
        "url": item_url(item),
        "external_url": item.link if item.is_partner else None,
        "tags": item.tags,
        "image": (settings.absolute_url(image) if image and image.startswith("/") else image),
        "image_alt": item.lead_image_alt,
        "published_at": item.published_at.isoformat() if item.published_at else None,
        "event": {
            "start": item.event_start.isoformat(),
            "end": (item.event_end or item.event_start).isoformat(),
            "location": item.event_location,
        }
        if item.event_start
        else None,
    }


def download(request: Request) -> Response:
    """A file attached to an item, with its checked type and a safe file name; for
    everyone while the item is public, for logged-in staff always."""
    file, item = downloads.get_file(request.path_params["id"])
    public = listing.is_visible(item)
    if not public and current_user(request) is None:
        raise NotFound(NOTHING_HERE)
    headers = {
        "Content-Disposition": downloads.content_disposition(file.name),
        "Cache-Control": "public, max-age=300" if public else "private, no-store",
    }
    return FileResponse(downloads.stored_path(file), media_type=file.media_type, headers=headers)


def media_file(request: Request) -> Response:
    """An uploaded image, by its content hash name, with its checked type."""
    name = request.path_params["name"]
    path = media.media_path(name)
    if path is None:
        raise NotFound(NOTHING_HERE)
    headers = {
        # Names are content hashes: the file behind a name never changes.
        "Cache-Control": "public, max-age=31536000, immutable",
        # The type is the one checked at upload; browsers must not guess another.
        "X-Content-Type-Options": "nosniff",
    }
    return FileResponse(path, media_type=media.media_type(name), headers=headers)


#: How many of the latest items and of the next conference dates the home page shows.
HOME_ITEMS, HOME_EVENTS = 5, 3


def home_sections(request: Request) -> list[PageSection]:
    """The home page's latest news and conference reports (with the feeds, which it also
    announces for autodiscovery) and the next conference dates."""
    language = request_language(request)
    latest, _ = listing.public_items(ItemFilter(), HOME_ITEMS)
    events = listing.upcoming_events(utcnow().date(), HOME_EVENTS)
    feeds = {fmt: FeedQuery(ItemFilter()).url(fmt) for fmt in ("rss", "atom", "json")}
    return [
        PageSection(
            20,
            render_text("feeds/_home_latest.html", language, items=latest, feeds=feeds),
            head=render_text("feeds/_feedlinks.html", language, feeds=feeds),
        ),
        PageSection(30, render_text("feeds/_home_events.html", language, events=events)),
    ]
