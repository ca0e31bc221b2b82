"""Aggregation of partner sources: which are due, fetching one, storing its entries
(adding and managing sources is :mod:`services.feeds.partner_sources`).

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

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.feeds import store
from services.feeds.fetch import FetchError, fetch
from services.feeds.item_fields import insert_with_slug, row_id, slugify
from services.feeds.parse import Entry, ParseError, parse_feed, parse_page
from services.feeds.store import (
    PAGE_SOURCE,
    PARTNER,
    PUBLISHED,
    Source,
    items,
    sources,
)
from shared import tasks
from shared.database import engine, read_connection, utcnow
from shared.sanitize import writable

logger = logging.getLogger("kgi.feeds.aggregate")

#: Longest pause after repeated failures (backoff doubles the interval up to this), and
#: the longest a ``Retry-After`` is honoured.
MAX_BACKOFF = timedelta(hours=24)

#: Doublings of the interval that already exceed MAX_BACKOFF (keeps the arithmetic small).
MAX_DOUBLINGS = 16


@dataclass(frozen=True)
class FetchReport:
    source_id: int
    status: str  # ok, not_modified, warning, error, paused
    new: int = 0
    updated: int = 0
    message: str | None = None


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
