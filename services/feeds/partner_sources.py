"""Partner sources: adding them (one, or a list such as an OPML file, with the same
checks), looking them up, pausing, hiding their items and deleting them. Fetching them
and storing what they bring is :mod:`services.feeds.aggregate`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.feeds import store
from services.feeds.fetch import url_problem
from services.feeds.item_fields import row_id
from services.feeds.parse import check_selectors
from services.feeds.store import FEED_SOURCE, PAGE_SOURCE, PUBLISHED, Source, items, sources
from shared.database import engine, read_connection, utcnow
from shared.errors import Conflict, Invalid, NotFound
from shared.i18n import LANGUAGES
from shared.sanitize import plain_text

#: Default minutes between two fetches of a source, and the allowed range.
DEFAULT_INTERVAL_MINUTES = 30
MIN_INTERVAL_MINUTES, MAX_INTERVAL_MINUTES = 5, 24 * 60

#: Addresses asked about in one query when a list is added (SQLite allows 32,766
#: parameters in a query; this stays far below).
URLS_PER_QUERY = 500


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
class SourceDefinition:
    """A source as an admin, a command or an OPML file describes it, not yet checked."""

    url: str
    name: str | None = None
    selectors: dict[str, Any] | str | None = None
    language: str | None = None
    interval_minutes: int = DEFAULT_INTERVAL_MINUTES


def _checked_row(definition: SourceDefinition, now: datetime) -> dict[str, Any]:
    """The row to insert for ``definition``; raises InvalidSource with the reason."""
    url = (definition.url or "").strip()
    problem = url_problem(url)
    if problem is not None:
        raise InvalidSource(problem)
    selectors = definition.selectors
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
    language = definition.language
    if language and language not in LANGUAGES:
        raise InvalidSource("The language must be de or en.")
    interval = definition.interval_minutes
    if not MIN_INTERVAL_MINUTES <= interval <= MAX_INTERVAL_MINUTES:
        limits = f"{MIN_INTERVAL_MINUTES} and {MAX_INTERVAL_MINUTES}"
        raise InvalidSource(f"The interval must be between {limits} minutes.")
    return {
        "name": plain_text(definition.name, 200) or urlsplit(url).hostname or url[:200],
        "url": url,
        "kind": PAGE_SOURCE if checked else FEED_SOURCE,
        "selectors": json.dumps(checked) if checked else None,
        "language": language or None,
        "paused": False,
        "interval_minutes": interval,
        "failures": 0,
        "created_at": now,
        "next_fetch_at": now,
    }


def add_source(
    url: str,
    name: str | None = None,
    selectors: dict[str, Any] | str | None = None,
    language: str | None = None,
    interval_minutes: int = DEFAULT_INTERVAL_MINUTES,
) -> Source:
    """Register a feed (or, with ``selectors``, an HTML page); raises InvalidSource."""
    definition = SourceDefinition(url, name, selectors, language, interval_minutes)
    row = _checked_row(definition, utcnow())
    with engine("feeds").begin() as conn:
        if conn.execute(sa.select(sources.c.id).where(sources.c.url == row["url"])).first():
            raise InvalidSource("This address is already a source.")
        source_id = conn.execute(sources.insert(), row).inserted_primary_key[0]
        source = store.get_source(conn, source_id)
    assert source is not None
    return source


#: What happened to one source of a list (an OPML file): ``added``, ``skipped`` (already
#: a source, or twice in the list) or ``refused`` (the reason says why).
ADDED, SKIPPED, REFUSED = "added", "skipped", "refused"


@dataclass(frozen=True)
class SourceOutcome:
    """One source of a list and what adding it did."""

    position: int
    url: str
    name: str
    outcome: str
    reason: str = ""


@dataclass(frozen=True)
class AddReport:
    """What adding a list of sources did, source by source, with the counts."""

    outcomes: list[SourceOutcome]

    def count(self, outcome: str) -> int:
        """How many sources ended with ``outcome``."""
        return sum(1 for row in self.outcomes if row.outcome == outcome)


def add_sources(definitions: list[SourceDefinition]) -> AddReport:
    """Register many sources at once (an OPML import): each is checked like one added by
    hand, the new ones are written in one transaction, and the report says per source
    what happened. Addresses that are sources already are skipped, never changed."""
    now = utcnow()
    outcomes: list[SourceOutcome] = []
    rows: list[tuple[int, dict[str, Any]]] = []
    for position, definition in enumerate(definitions, start=1):
        name = definition.name or definition.url
        try:
            rows.append((position, _checked_row(definition, now)))
        except InvalidSource as exc:
            outcomes.append(SourceOutcome(position, definition.url, name, REFUSED, str(exc)))
    with engine("feeds").begin() as conn:
        known = set()
        urls = [row["url"] for _, row in rows]
        for start in range(0, len(urls), URLS_PER_QUERY):
            chunk = urls[start : start + URLS_PER_QUERY]
            known.update(
                conn.execute(sa.select(sources.c.url).where(sources.c.url.in_(chunk))).scalars()
            )
        new: list[dict[str, Any]] = []
        for position, row in rows:
            if row["url"] in known:
                outcomes.append(
                    SourceOutcome(position, row["url"], row["name"], SKIPPED, "already a source")
                )
                continue
            known.add(row["url"])
            new.append(row)
            outcomes.append(SourceOutcome(position, row["url"], row["name"], ADDED))
        if new:
            conn.execute(sources.insert(), new)
    return AddReport(sorted(outcomes, key=lambda row: row.position))


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


def list_all() -> list[Source]:
    """Every source with its item count, by name."""
    with read_connection("feeds") as conn:
        return store.list_sources(conn)
