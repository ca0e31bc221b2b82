"""What the public and the admin lists see: visibility, filters and list queries.

An item is public while it is published, not hidden and inside its effective/expiry
window; :func:`visible` says so in SQL, :func:`is_visible` for an item in hand.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from services.feeds import store
from services.feeds.store import (
    CONFERENCE_REPORT,
    KINDS,
    NETWORK,
    PARTNER,
    PUBLISHED,
    Item,
    items,
)
from shared.database import read_connection, utcnow
from shared.i18n import LANGUAGES


def visible(now: datetime) -> sa.ColumnElement[bool]:
    """Items the public may see now: published, inside their window, not hidden."""
    return sa.and_(
        items.c.state == PUBLISHED,
        items.c.hidden.is_(False),
        sa.or_(items.c.effective_at.is_(None), items.c.effective_at <= now),
        sa.or_(items.c.expires_at.is_(None), items.c.expires_at > now),
    )


def is_visible(item: Item, now: datetime | None = None) -> bool:
    """The same rule as :func:`visible`, for one item already loaded."""
    now = now or utcnow()
    return (
        item.state == PUBLISHED
        and not item.hidden
        and (item.effective_at is None or item.effective_at <= now)
        and (item.expires_at is None or item.expires_at > now)
    )


def contains(text: str) -> str:
    """A LIKE pattern (escape character ``\\``) matching values that contain ``text``."""
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"


@dataclass(frozen=True)
class ItemFilter:
    """What a list page or feed shows."""

    kind: str | None = None
    tag: str | None = None
    language: str | None = None
    include_partners: bool = False
    #: Only items published after this moment.
    since: datetime | None = None

    def condition(self, now: datetime) -> sa.ColumnElement[bool]:
        """The SQL condition for the items this selection shows at ``now``."""
        condition = visible(now)
        if self.since is not None:
            condition = sa.and_(condition, items.c.published_at > self.since)
        if self.kind in KINDS:
            condition = sa.and_(condition, items.c.kind == self.kind)
        if self.language in LANGUAGES:
            condition = sa.and_(condition, items.c.language == self.language)
        if self.tag:
            # Tags are stored as a JSON list: match the quoted tag.
            quoted = json.dumps(self.tag, ensure_ascii=False)
            condition = sa.and_(condition, items.c.tags.like(contains(quoted), escape="\\"))
        if not self.include_partners:
            condition = sa.and_(condition, items.c.origin == NETWORK)
        return condition


def _with_source_name(condition: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """Items meeting ``condition`` with the name of their partner source, if any (what
    :func:`services.feeds.store.item_from_row` reads)."""
    return (
        sa.select(items, store.sources.c.name.label("source_name"))
        .select_from(items.outerjoin(store.sources, items.c.source_id == store.sources.c.id))
        .where(condition)
    )


def public_items(selection: ItemFilter, limit: int, offset: int = 0) -> tuple[list[Item], int]:
    """Visible items, newest first, with the total count."""
    now = utcnow()
    condition = selection.condition(now)
    with read_connection("feeds") as conn:
        total = conn.execute(
            sa.select(sa.func.count()).select_from(items).where(condition)
        ).scalar_one()
        rows = conn.execute(
            _with_source_name(condition)
            .order_by(items.c.published_at.desc(), items.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return [store.item_from_row(row) for row in rows], int(total)


def upcoming_events(today: date, limit: int) -> list[Item]:
    """Visible conference dates that have not ended by ``today``, the soonest first."""
    ends = sa.func.coalesce(items.c.event_end, items.c.event_start)
    condition = sa.and_(
        ItemFilter(kind=CONFERENCE_REPORT, include_partners=True).condition(utcnow()),
        items.c.event_start.is_not(None),
        ends >= today,
    )
    with read_connection("feeds") as conn:
        rows = conn.execute(
            _with_source_name(condition).order_by(items.c.event_start, items.c.id).limit(limit)
        )
        return [store.item_from_row(row) for row in rows]


def next_visibility_change(now: datetime) -> datetime | None:
    """When the set of visible items next changes by itself (an effective or expiry date)."""
    with read_connection("feeds") as conn:
        upcoming = conn.execute(
            sa.select(sa.func.min(items.c.effective_at)).where(
                items.c.state == PUBLISHED, items.c.effective_at > now
            )
        ).scalar()
        expiring = conn.execute(
            sa.select(sa.func.min(items.c.expires_at)).where(
                items.c.state == PUBLISHED, items.c.expires_at > now
            )
        ).scalar()
    candidates = [t for t in (upcoming, expiring) if t is not None]
    return min(candidates) if candidates else None


#: The longest a rendering of the public items is kept even when no date is due: a
#: safety net, not a freshness promise (changes are seen through the content version).
LONGEST_UNCHANGED = timedelta(hours=1)


def unchanged_until() -> datetime:
    """Until when what the public sees cannot change by itself: the next effective or
    expiry date, at most :data:`LONGEST_UNCHANGED` ahead. Renderings keep that long."""
    now = utcnow()
    change = next_visibility_change(now)
    return min(change, now + LONGEST_UNCHANGED) if change else now + LONGEST_UNCHANGED


def last_public_change(now: datetime) -> datetime | None:
    """When what the public sees last changed: the latest recorded change (publish,
    retract, edit, hide, aggregation) or the latest effective or expiry date that has
    passed, which changes the visible items without anybody writing anything."""
    with read_connection("feeds") as conn:
        recorded = store.content_changed_at(conn)
        boundaries = conn.execute(
            sa.select(
                sa.func.max(sa.case((items.c.effective_at <= now, items.c.effective_at))),
                sa.func.max(sa.case((items.c.expires_at <= now, items.c.expires_at))),
            ).where(items.c.state == PUBLISHED)
        ).one()
    candidates = [t for t in (recorded, *boundaries) if t is not None]
    return max(candidates) if candidates else None


def all_tags(include_partners: bool = False) -> list[str]:
    """Tags of visible items, sorted, for the filter list."""
    with read_connection("feeds") as conn:
        rows = conn.execute(
            sa.select(items.c.tags).where(
                ItemFilter(include_partners=include_partners).condition(utcnow())
            )
        )
        tags = {tag for row in rows for tag in json.loads(row.tags or "[]")}
    return sorted(tags, key=str.lower)


def editor_items(state: str | None = None, query: str = "") -> list[Item]:
    """The network's items for the admin list, newest change first."""
    condition = items.c.origin == NETWORK
    if state:
        condition = sa.and_(condition, items.c.state == state)
    if query:
        title = sa.func.lower(items.c.title)
        condition = sa.and_(condition, title.like(contains(query.lower()), escape="\\"))
    with read_connection("feeds") as conn:
        rows = conn.execute(
            sa.select(items).where(condition).order_by(items.c.updated_at.desc()).limit(500)
        )
        return [store.item_from_row(row) for row in rows]


def partner_items(limit: int = 200) -> list[Item]:
    """Aggregated items for the admin, hidden ones included."""
    with read_connection("feeds") as conn:
        rows = conn.execute(
            sa.select(items, store.sources.c.name.label("source_name"))
            .select_from(items.join(store.sources, items.c.source_id == store.sources.c.id))
            .where(items.c.origin == PARTNER)
            .order_by(items.c.published_at.desc())
            .limit(limit)
        )
        return [store.item_from_row(row) for row in rows]
