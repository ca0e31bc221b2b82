"""Aggregation of partner sources: managing sources, fetching one, storing its entries.

Entries are matched to stored items by GUID, else by link, else by a hash of their
content. Inside one document a GUID that repeats does not merge different entries: the
later ones fall back to their link or hash. Changed entries are updated in place.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.feeds import store
from services.feeds.fetch import FetchError, fetch, url_problem
from services.feeds.item_fields import insert_with_slug, row_id, slugify
from services.feeds.parse import Entry, ParseError, check_selectors, parse_feed, parse_page
from services.feeds.sanitize import plain_text, writable
from services.feeds.store import (
    FEED_SOURCE,
    PAGE_SOURCE,
    PARTNER,
    PUBLISHED,
    Source,
    items,
    sources,
)
from shared import tasks
from shared.database import engine, read_connection, utcnow
from shared.errors import Conflict, Invalid, NotFound
from shared.i18n import LANGUAGES

logger = logging.getLogger("kgi.feeds.aggregate")

#: Default minutes between two fetches of a source, and the allowed range.
DEFAULT_INTERVAL_MINUTES = 30
MIN_INTERVAL_MINUTES, MAX_INTERVAL_MINUTES = 5, 24 * 60

#: Longest pause after repeated failures (backoff doubles the interval up to this), and
#: the longest a ``Retry-After`` is honoured.
MAX_BACKOFF = timedelta(hours=24)

#: Doublings of the interval that already exceed MAX_BACKOFF (keeps the arithmetic small).
MAX_DOUBLINGS = 16


class InvalidSource(Invalid, ValueError):
    """The source definition cannot be used; the message says why."""


class NoSuchSource(NotFound, LookupError):
    """There is no source with this id."""


class SourceInUse(Conflict):
    """The source still has published items, which deleting it would take off the site."""


#: Why such a source is not deleted, and what to do instead.
SOURCE_IN_USE = (
    "This source still has published items. Hide its items first (button “Hide its "
    "items”), or pause the source to keep them and stop fetching."
)


@dataclass(frozen=True)
class FetchReport:
    source_id: int
    status: str  # ok, not_modified, warning, error, paused
    new: int = 0
    updated: int = 0
    message: str | None = None


def add_source(
    url: str,
    name: str | None = None,
    selectors: dict[str, Any] | str | None = None,
    language: str | None = None,
    interval_minutes: int = DEFAULT_INTERVAL_MINUTES,
) -> Source:
    """Register a feed (or, with ``selectors``, an HTML page); raises InvalidSource."""
    url = (url or "").strip()
    problem = url_problem(url)
    if problem is not None:
        raise InvalidSource(problem)
    parts = urlsplit(url)
    if isinstance(selectors, str) and selectors.strip():
        try:
            selectors = json.loads(selectors)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            raise InvalidSource("The selectors are not valid JSON.") from None
    checked = None
    if selectors:
        try:
            checked = check_selectors(selectors)
        except ValueError as exc:
            raise InvalidSource(str(exc)) from None
    if language and language not in LANGUAGES:
        raise InvalidSource("The language must be de or en.")
    if not MIN_INTERVAL_MINUTES <= interval_minutes <= MAX_INTERVAL_MINUTES:
        limits = f"{MIN_INTERVAL_MINUTES} and {MAX_INTERVAL_MINUTES}"
        raise InvalidSource(f"The interval must be between {limits} minutes.")
    now = utcnow()
    with engine("feeds").begin() as conn:
        if conn.execute(sa.select(sources.c.id).where(sources.c.url == url)).first():
            raise InvalidSource("This address is already a source.")
        source_id = conn.execute(
            sources.insert(),
            {
                "name": plain_text(name, 200) or parts.hostname or url[:200],
                "url": url,
                "kind": PAGE_SOURCE if checked else FEED_SOURCE,
                "selectors": json.dumps(checked) if checked else None,
                "language": language or None,
                "paused": False,
                "interval_minutes": interval_minutes,
                "failures": 0,
                "created_at": now,
                "next_fetch_at": now,
            },
        ).inserted_primary_key[0]
        source = store.get_source(conn, source_id)
    assert source is not None
    return source


def _existing(conn: Connection, source_id: int) -> Source:
    source = store.get_source(conn, source_id) if row_id(source_id) else None
    if source is None:
        raise NoSuchSource("There is no such source.")
    return source


def get_source(source_id: int) -> Source:
    """The source ``source_id``; raises NoSuchSource."""
    with read_connection("feeds") as conn:
        return _existing(conn, source_id)


def update_source(source_id: int, **values: Any) -> None:
    """Pause/resume or change the interval of a source; raises NoSuchSource."""
    allowed = {
        k: v for k, v in values.items() if k in ("paused", "interval_minutes", "name", "language")
    }
    if "paused" in allowed and not allowed["paused"]:
        allowed["next_fetch_at"] = utcnow()
    with engine("feeds").begin() as conn:
        _existing(conn, source_id)
        conn.execute(sources.update().where(sources.c.id == source_id).values(**allowed))


def _published(source_id: int) -> sa.ColumnElement[bool]:
    """The source's items the public can see (hidden ones are not)."""
    return sa.and_(
        items.c.source_id == source_id, items.c.state == PUBLISHED, items.c.hidden.is_(False)
    )


def hide_items(source_id: int, actor: str) -> int:
    """Hide every shown item of a source (the step before deleting it); returns how many."""
    now = utcnow()
    with engine("feeds").begin() as conn:
        _existing(conn, source_id)
        shown = conn.execute(sa.select(items.c.id).where(_published(source_id))).scalars().all()
        conn.execute(items.update().where(items.c.id.in_(shown)).values(hidden=True))
        for item_id in shown:
            store.log_history(conn, item_id, actor, "hidden", None, None, None, now)
        if shown:
            store.mark_content_changed(conn, now)
    return len(shown)


def delete_source(source_id: int) -> None:
    """Remove a source and its hidden items. Refused (SourceInUse) while items of it are
    published: deleting must never take content off the site as a side effect."""
    with engine("feeds").begin() as conn:
        _existing(conn, source_id)
        shown = conn.execute(
            sa.select(sa.func.count()).select_from(items).where(_published(source_id))
        ).scalar_one()
        if shown:
            raise SourceInUse(SOURCE_IN_USE)
        conn.execute(items.delete().where(items.c.source_id == source_id))
        conn.execute(sources.delete().where(sources.c.id == source_id))


def due_source_ids(limit: int = 500) -> list[int]:
    """Sources whose next fetch is due; their next fetch moves on, so two schedulers
    ticking at once do not fetch them twice."""
    now = utcnow()
    with engine("feeds").begin() as conn:
        rows = conn.execute(
            sa.select(sources.c.id, sources.c.interval_minutes)
            .where(
                sources.c.paused.is_(False),
                sa.or_(sources.c.next_fetch_at.is_(None), sources.c.next_fetch_at <= now),
            )
            .limit(limit)
        ).all()
        for row in rows:
            conn.execute(
                sources.update()
                .where(sources.c.id == row.id)
                .values(next_fetch_at=now + timedelta(minutes=row.interval_minutes))
            )
    return [row.id for row in rows]


def _key(entry: Entry, seen: set[str]) -> str:
    """The identity of ``entry`` within its source (GUID, else link, else content hash)."""
    candidates = []
    if entry.guid:
        candidates.append(f"guid:{writable(entry.guid)}")
    if entry.link:
        candidates.append(f"link:{entry.link}")
    candidates.append(
        "hash:"
        + hashlib.sha256(f"{entry.title}\n{entry.summary}\n{entry.body}".encode()).hexdigest()
    )
    for candidate in candidates:
        if candidate not in seen:
            return candidate
    return candidates[-1]


def _content_hash(entry: Entry) -> str:
    data = json.dumps(
        [
            entry.title,
            entry.link,
            entry.summary,
            entry.body,
            entry.tags,
            entry.updated.isoformat() if entry.updated else None,
        ]
    )
    return hashlib.sha256(data.encode()).hexdigest()


def store_entries(
    conn: Connection, source: Source, entries: list[Entry], language: str
) -> tuple[int, int]:
    """Insert new entries and update changed ones; returns (new, updated)."""
    now = utcnow()
    new = updated = 0
    seen: set[str] = set()
    for entry in entries:
        key = _key(entry, seen)
        seen.add(key)
        digest = _content_hash(entry)
        existing = conn.execute(
            sa.select(items.c.id, items.c.content_hash).where(
                items.c.source_id == source.id, items.c.guid == key
            )
        ).first()
        values = {
            "title": entry.title,
            "summary": entry.summary,
            "body": entry.body,
            "link": entry.link,
            "tags": json.dumps(entry.tags, ensure_ascii=False),
            "author": entry.author,
            "content_hash": digest,
            "language": language,
        }
        if existing is None:
            published = entry.published or now
            insert_with_slug(
                conn,
                {
                    **values,
                    "kind": store.NEWS,
                    "origin": PARTNER,
                    "source_id": source.id,
                    "guid": key,
                    "state": PUBLISHED,
                    "published_at": min(published, now),
                    "created_at": now,
                    "updated_at": now,
                    "hidden": False,
                },
                "partner-" + slugify(entry.title)[:60],
            )
            new += 1
        elif existing.content_hash != digest:
            conn.execute(
                items.update().where(items.c.id == existing.id).values(**values, updated_at=now)
            )
            updated += 1
    return new, updated


def _record(source_id: int, **values: Any) -> None:
    with engine("feeds").begin() as conn:
        conn.execute(
            sources.update()
            .where(sources.c.id == source_id)
            .values(last_fetch_at=utcnow(), **values)
        )


def fetch_source(source_id: int, force: bool = False) -> FetchReport:
    """Fetch one source now and store what changed; errors are recorded, never raised."""
    with read_connection("feeds") as conn:
        source = store.get_source(conn, source_id) if row_id(source_id) else None
    if source is None:
        return FetchReport(source_id, "error", message="no such source")
    if source.paused and not force:
        return FetchReport(source_id, "paused")
    now = utcnow()
    try:
        result = fetch(source.url, source.etag, source.last_modified)
        if result.status == 304:
            # The document is the one read last time: a problem found in it still stands.
            still_warning = source.last_status == "warning"
            _record(
                source.id,
                last_status="warning" if still_warning else "not_modified",
                last_error=source.last_error if still_warning else None,
                failures=0,
                next_fetch_at=now + timedelta(minutes=source.interval_minutes),
            )
            return FetchReport(source.id, "not_modified")
        if source.kind == PAGE_SOURCE:
            parsed = parse_page(result.body, result.url, source.selectors or {})
        else:
            parsed = parse_feed(result.body, result.url, result.content_type)
    except Exception as exc:
        if not isinstance(exc, FetchError | ParseError):
            # A bug must not kill the worker's actor or stop this source being retried:
            # it is logged in full and shown on the source like any failure.
            logger.exception("fetching source %s failed unexpectedly", source.url)
        failures = source.failures + 1
        retry = getattr(exc, "retry_after", None)
        if retry:
            delay = timedelta(seconds=min(retry, MAX_BACKOFF.total_seconds()))
        else:
            doubled = source.interval_minutes * 2 ** min(failures, MAX_DOUBLINGS)
            delay = min(timedelta(minutes=doubled), MAX_BACKOFF)
        _record(
            source.id,
            last_status="error",
            last_error=str(exc)[:1000],
            failures=failures,
            next_fetch_at=now + delay,
        )
        logger.info("source %s failed (%s); next try in %s", source.url, exc, delay)
        return FetchReport(source.id, "error", message=str(exc))
    language = source.language or parsed.language or "de"
    with engine("feeds").begin() as conn:
        new, updated = store_entries(conn, source, parsed.entries, language)
        if new or updated:
            store.mark_content_changed(conn, utcnow())
    _record(
        source.id,
        last_status="warning" if parsed.warning else "ok",
        last_error=parsed.warning,
        failures=0,
        etag=result.etag,
        last_modified=result.last_modified,
        next_fetch_at=now + timedelta(minutes=source.interval_minutes),
    )
    if new or updated:
        tasks.publish_event(
            "content.aggregated", {"source_id": source.id, "new": new, "updated": updated}
        )
    return FetchReport(
        source.id, "warning" if parsed.warning else "ok", new, updated, parsed.warning
    )


def list_all() -> list[Source]:
    """Every source with its item count, by name."""
    with read_connection("feeds") as conn:
        return store.list_sources(conn)
