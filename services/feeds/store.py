"""The feeds service's tables: items (own and aggregated), their history and pending
revisions, partner sources, and the moment public content last changed."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shared.database import UTCDateTime, after_commit

#: Content types.
NEWS, CONFERENCE_REPORT = "news", "conference_report"
KINDS = (NEWS, CONFERENCE_REPORT)

#: Where an item comes from: written by the network's editors, or aggregated from a partner.
NETWORK, PARTNER = "network", "partner"

#: Workflow states of the network's own items.
DRAFT, PENDING, PUBLISHED, RETRACTED = "draft", "pending", "published", "retracted"
STATES = (DRAFT, PENDING, PUBLISHED, RETRACTED)

#: Source kinds: an RSS/Atom feed, or an HTML page read with CSS selectors.
FEED_SOURCE, PAGE_SOURCE = "feed", "page"

metadata = sa.MetaData()


def content_columns() -> list[sa.Column[Any]]:
    """The editable content of a network item. Items carry it, and so does each pending
    revision of a published item (an editor's change that waits for review)."""
    return [
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("summary", sa.Text, nullable=False, default=""),
        sa.Column("body", sa.Text, nullable=False, default=""),
        sa.Column("tags", sa.Text, nullable=False, default="[]"),  # JSON list
        sa.Column("lead_image_url", sa.String(1000)),
        sa.Column("lead_image_alt", sa.String(300)),
        sa.Column("author", sa.String(200)),
        sa.Column("event_start", sa.Date),
        sa.Column("event_end", sa.Date),
        sa.Column("event_location", sa.String(200)),
        sa.Column("event_organiser", sa.String(200)),
        sa.Column("translation_id", sa.Integer, sa.ForeignKey("items.id", ondelete="SET NULL")),
        sa.Column("effective_at", UTCDateTime),
        sa.Column("expires_at", UTCDateTime),
    ]


#: Names of the columns :func:`content_columns` makes.
CONTENT_FIELDS = tuple(column.name for column in content_columns())

items = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id", ondelete="CASCADE"), index=True),
    sa.Column("slug", sa.String(200), nullable=False, unique=True),
    *content_columns(),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("published_at", UTCDateTime, index=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # Aggregated items: an admin may hide one; guid/link identify it at the source.
    sa.Column("hidden", sa.Boolean, nullable=False, default=False),
    sa.Column("guid", sa.String(1000)),
    sa.Column("link", sa.String(1000)),
    sa.Column("content_hash", sa.String(64)),
    sa.UniqueConstraint("source_id", "guid", name="uq_items_source_guid"),
)

#: States of a revision: waiting for review, or decided.
REVISION_PENDING, REVISION_PUBLISHED, REVISION_REJECTED = "pending", "published", "rejected"

revisions = sa.Table(
    "item_revisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "item_id",
        sa.Integer,
        sa.ForeignKey("items.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("state", sa.String(16), nullable=False),
    *content_columns(),
    sa.Column("submitted_by", sa.String(254), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("decided_by", sa.String(254)),
    sa.Column("decided_at", UTCDateTime),
    # One working copy per item: editors continue the pending revision, not a second one.
    sa.Index(
        "uq_item_revisions_pending",
        "item_id",
        unique=True,
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    ),
)

#: One row (id 1): when public content last changed, by anything (publish, retract, edit,
#: hide, aggregation, deleted source). Feeds take Last-Modified from it, so the header moves
#: forward even when the change removed the newest item.
content_version = sa.Table(
    "content_version",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("changed_at", UTCDateTime, nullable=False),
)

history = sa.Table(
    "item_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "item_id",
        sa.Integer,
        sa.ForeignKey("items.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(254), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("from_state", sa.String(16)),
    sa.Column("to_state", sa.String(16)),
    sa.Column("comment", sa.Text),
)

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("url", sa.String(1000), nullable=False, unique=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("selectors", sa.Text),  # JSON object for page sources
    sa.Column("language", sa.String(2)),
    sa.Column("paused", sa.Boolean, nullable=False, default=False),
    sa.Column("interval_minutes", sa.Integer, nullable=False, default=30),
    sa.Column("etag", sa.String(300)),
    sa.Column("last_modified", sa.String(100)),
    sa.Column("last_fetch_at", UTCDateTime),
    sa.Column("next_fetch_at", UTCDateTime, index=True),
    sa.Column("last_status", sa.String(32)),
    sa.Column("last_error", sa.Text),
    sa.Column("failures", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


#: Files attached to items (downloads: factsheets, reports), stored by content hash.
item_files = sa.Table(
    "item_files",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "item_id",
        sa.Integer,
        sa.ForeignKey("items.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("stored_name", sa.String(64), nullable=False),
    sa.Column("media_type", sa.String(100), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True)
class Item:
    id: int
    kind: str
    origin: str
    source_id: int | None
    slug: str
    language: str
    title: str
    summary: str
    body: str
    tags: list[str]
    lead_image_url: str | None
    lead_image_alt: str | None
    author: str | None
    event_start: date | None
    event_end: date | None
    event_location: str | None
    event_organiser: str | None
    translation_id: int | None
    state: str
    effective_at: datetime | None
    expires_at: datetime | None
    published_at: datetime | None
    created_at: datetime
    updated_at: datetime
    hidden: bool
    guid: str | None
    link: str | None
    content_hash: str | None
    source_name: str | None = None

    @property
    def is_partner(self) -> bool:
        return self.origin == PARTNER


@dataclass(frozen=True)
class Revision:
    """An editor's change to a published item, kept apart until an admin decides on it."""

    id: int
    item_id: int
    state: str
    #: The proposed content, keyed like :data:`CONTENT_FIELDS` (tags as a list).
    content: dict[str, Any]
    submitted_by: str
    created_at: datetime
    updated_at: datetime
    decided_by: str | None
    decided_at: datetime | None


@dataclass(frozen=True)
class Source:
    id: int
    name: str
    url: str
    kind: str
    selectors: dict[str, str] | None
    language: str | None
    paused: bool
    interval_minutes: int
    etag: str | None
    last_modified: str | None
    last_fetch_at: datetime | None
    next_fetch_at: datetime | None
    last_status: str | None
    last_error: str | None
    failures: int
    created_at: datetime
    item_count: int = field(default=0)


def revision_from_row(row: sa.Row) -> Revision:
    """The revision in ``row`` (a row of :data:`revisions`)."""
    values: dict[str, Any] = dict(row._mapping)
    proposed = {name: values.pop(name) for name in CONTENT_FIELDS}
    proposed["tags"] = json.loads(proposed.get("tags") or "[]")
    return Revision(content=proposed, **values)


def item_from_row(row: sa.Row) -> Item:
    values: dict[str, Any] = dict(row._mapping)
    values["tags"] = json.loads(values.get("tags") or "[]")
    return Item(**{k: v for k, v in values.items() if k in Item.__dataclass_fields__})


def source_from_row(row: sa.Row) -> Source:
    values: dict[str, Any] = dict(row._mapping)
    values["selectors"] = json.loads(values["selectors"]) if values.get("selectors") else None
    return Source(**{k: v for k, v in values.items() if k in Source.__dataclass_fields__})


def get_item(conn: Connection, item_id: int) -> Item | None:
    row = conn.execute(sa.select(items).where(items.c.id == item_id)).first()
    return item_from_row(row) if row else None


def get_item_by_slug(conn: Connection, slug: str) -> Item | None:
    statement = (
        sa.select(items, sources.c.name.label("source_name"))
        .select_from(items.outerjoin(sources, items.c.source_id == sources.c.id))
        .where(items.c.slug == slug)
    )
    row = conn.execute(statement).first()
    return item_from_row(row) if row else None


def get_source(conn: Connection, source_id: int) -> Source | None:
    row = conn.execute(sa.select(sources).where(sources.c.id == source_id)).first()
    return source_from_row(row) if row else None


def list_sources(conn: Connection) -> list[Source]:
    counts = (
        sa.select(items.c.source_id, sa.func.count().label("item_count"))
        .group_by(items.c.source_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(sources, sa.func.coalesce(counts.c.item_count, 0).label("item_count"))
        .select_from(sources.outerjoin(counts, counts.c.source_id == sources.c.id))
        .order_by(sources.c.name)
    )
    return [source_from_row(row) for row in rows]


def log_history(
    conn: Connection,
    item_id: int,
    actor: str,
    action: str,
    from_state: str | None,
    to_state: str | None,
    comment: str | None,
    at: datetime,
) -> None:
    conn.execute(
        history.insert(),
        {
            "item_id": item_id,
            "actor": actor,
            "action": action,
            "from_state": from_state,
            "to_state": to_state,
            "comment": comment,
            "at": at,
        },
    )


def item_history(conn: Connection, item_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(history).where(history.c.item_id == item_id).order_by(history.c.id)
    )
    return [dict(row._mapping) for row in rows]


def pending_revision(conn: Connection, item_id: int) -> Revision | None:
    """The revision of ``item_id`` that waits for review, if any."""
    row = conn.execute(
        sa.select(revisions).where(
            revisions.c.item_id == item_id, revisions.c.state == REVISION_PENDING
        )
    ).first()
    return revision_from_row(row) if row else None


#: Called when a transaction that changed the content version commits. The feeds cache
#: adds one (:mod:`services.feeds.cache`): this process then stops answering feeds from
#: memory until it has read the new version. Only transactions of this service that
#: change content call them, so other services' commits never run feeds code.
CONTENT_COMMIT_HOOKS: list[Callable[[], None]] = []


def mark_content_changed(conn: Connection, at: datetime) -> None:
    """Record, in the transaction that makes it, a change the public can see. The moment
    never goes backwards, even when clocks of several processes differ a little."""
    for hook in CONTENT_COMMIT_HOOKS:
        after_commit(conn, hook)
    row = conn.execute(sa.select(content_version).where(content_version.c.id == 1)).first()
    if row is None:
        conn.execute(content_version.insert(), {"id": 1, "version": 1, "changed_at": at})
        return
    conn.execute(
        content_version.update()
        .where(content_version.c.id == 1)
        .values(version=row.version + 1, changed_at=max(row.changed_at, at))
    )


def content_version_of(conn: Connection) -> int:
    """The content version: it goes up with every change the public can see (0 before
    the first). Rendered feeds are cached under it (see :mod:`services.feeds.cache`)."""
    version = conn.execute(
        sa.select(content_version.c.version).where(content_version.c.id == 1)
    ).scalar()
    return version or 0


def content_changed_at(conn: Connection) -> datetime | None:
    """When public content last changed (None before the first change)."""
    return conn.execute(
        sa.select(content_version.c.changed_at).where(content_version.c.id == 1)
    ).scalar()
