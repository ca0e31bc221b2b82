"""The network's own items: checking input, saving, the publication workflow, and the
queries public pages and feeds use.

Workflow (Plone-style): draft → pending review → published → retracted. Editors write
and submit; admins publish, send back and retract. Published items are visible only
between their effective and expiry dates. An editor's change to a published item does
not reach the public directly: it becomes a pending revision (:mod:`services.feeds.revisions`).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.feeds import cache, media, store
from services.feeds.sanitize import MAX_TITLE_LENGTH, clean_html, plain_text, safe_url, writable
from services.feeds.store import (
    DRAFT,
    KINDS,
    NETWORK,
    PARTNER,
    PENDING,
    PUBLISHED,
    RETRACTED,
    Item,
    items,
)
from shared import events
from shared.database import engine, read_connection, utcnow
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.i18n import LANGUAGES

#: Most tags on one item, and the longest tag.
MAX_TAGS, MAX_TAG_LENGTH = 12, 40

#: Dates an item may carry (conference days, visibility window). Anything outside is a
#: typo, and far-off years cannot even be converted between time zones.
EARLIEST_DATE, LATEST_DATE = date(1900, 1, 1), date(2199, 12, 31)

#: Editors type local time in the form.
EDITORS_TIME_ZONE = ZoneInfo("Europe/Berlin")

#: Largest row id the database can store (SQLite and PostgreSQL BIGINT).
MAX_ROW_ID = 2**63 - 1

#: Longest lead image address (the column's size).
MAX_URL_LENGTH = 1000


class InvalidItem(Invalid, ValueError):
    """An item field is unusable; ``field`` names it, the message says why (English)."""

    field: str

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field)


class WorkflowError(Conflict):
    """A step that cannot be taken now: not possible in the item's state, or the item
    changed since the user looked."""


class NotAllowed(Forbidden, WorkflowError):
    """The user's role may not take this step."""


class NoSuchItem(NotFound, WorkflowError):
    """There is no network item with this id."""


@dataclass(frozen=True)
class Transition:
    """A workflow step: from which states, to which, and the weakest role allowed."""

    name: str
    sources: tuple[str, ...]
    target: str
    role: str


TRANSITIONS = {
    t.name: t
    for t in (
        Transition("submit", (DRAFT, RETRACTED), PENDING, "editor"),
        Transition("publish", (DRAFT, PENDING, RETRACTED), PUBLISHED, "admin"),
        Transition("reject", (PENDING,), DRAFT, "admin"),
        Transition("retract", (PUBLISHED,), RETRACTED, "admin"),
    )
}


def slugify(text: str) -> str:
    """A readable ASCII slug: umlauts transliterated the German way."""
    for umlaut, plain in (
        ("ä", "ae"),
        ("ö", "oe"),
        ("ü", "ue"),
        ("Ä", "Ae"),
        ("Ö", "Oe"),
        ("Ü", "Ue"),
        ("ß", "ss"),
    ):
        text = text.replace(umlaut, plain)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80] or "item"


def unique_slug(conn: Connection, wanted: str, item_id: int | None = None) -> str:
    slug, n = wanted, 1
    while True:
        row = conn.execute(sa.select(items.c.id).where(items.c.slug == slug)).first()
        if row is None or row.id == item_id:
            return slug
        n += 1
        slug = f"{wanted}-{n}"


def _in_range(name: str, day: date) -> None:
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        years = f"{EARLIEST_DATE.year} and {LATEST_DATE.year}"
        raise InvalidItem(name, f"Please give a date between {years}.")


def _date(fields: dict[str, Any], name: str) -> date | None:
    raw = fields.get(name)
    if raw in (None, ""):
        return None
    if isinstance(raw, datetime):
        raw = raw.date()
    if not isinstance(raw, date):
        try:
            raw = date.fromisoformat(str(raw)[:10])
        except ValueError:
            raise InvalidItem(name, "Please give the date as YYYY-MM-DD.") from None
    _in_range(name, raw)
    return raw


def _datetime(fields: dict[str, Any], name: str) -> datetime | None:
    raw = fields.get(name)
    if raw in (None, ""):
        return None
    try:
        value = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    except ValueError:
        raise InvalidItem(name, "Please give date and time as YYYY-MM-DDTHH:MM.") from None
    # Checked before any time zone arithmetic, which overflows at the ends of the calendar.
    _in_range(name, value.date())
    if value.tzinfo is None:
        value = value.replace(tzinfo=EDITORS_TIME_ZONE)
    return value.astimezone(UTC)


def row_id(raw: Any) -> int | None:
    """``raw`` as a row id the database can hold, else None."""
    text = str(raw or "").strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value <= MAX_ROW_ID else None


def _lead_image(raw: Any) -> str | None:
    url = writable(str(raw or "")).strip() or None
    if url is None:
        return None
    if len(url) > MAX_URL_LENGTH or not (safe_url(url) or media.is_media_url(url)):
        raise InvalidItem(
            "lead_image_url",
            "The image address must be an http:// or https:// address, or an uploaded image.",
        )
    return url


def _tags(raw: Any) -> list[str]:
    if isinstance(raw, str):
        raw = raw.split(",")
    tags: list[str] = []
    for tag in raw or []:
        tag = plain_text(str(tag), MAX_TAG_LENGTH)
        if tag and tag.lower() not in (t.lower() for t in tags):
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise InvalidItem("tags", f"At most {MAX_TAGS} tags, please.")
    return tags


def check_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Validated, sanitised column values from form or JSON fields."""
    kind = fields.get("kind") or "news"
    if kind not in KINDS:
        raise InvalidItem("kind", "The type must be news or conference report.")
    language = fields.get("language") or "de"
    if language not in LANGUAGES:
        raise InvalidItem("language", "The language must be de or en.")
    title = plain_text(fields.get("title"), MAX_TITLE_LENGTH)
    if not title:
        raise InvalidItem("title", "Please enter a title.")
    image_url = _lead_image(fields.get("lead_image_url"))
    image_alt = plain_text(fields.get("lead_image_alt"), 300) or None
    if image_url and not image_alt:
        raise InvalidItem(
            "lead_image_alt", "Please describe the image for people who cannot see it."
        )
    values = {
        "kind": kind,
        "language": language,
        "title": title,
        "summary": plain_text(fields.get("summary"), 1000),
        "body": clean_html(fields.get("body")),
        "tags": json.dumps(_tags(fields.get("tags")), ensure_ascii=False),
        "lead_image_url": image_url,
        "lead_image_alt": image_alt,
        "author": plain_text(fields.get("author"), 200) or None,
        "event_start": _date(fields, "event_start"),
        "event_end": _date(fields, "event_end"),
        "event_location": plain_text(fields.get("event_location"), 200) or None,
        "event_organiser": plain_text(fields.get("event_organiser"), 200) or None,
        "effective_at": _datetime(fields, "effective_at"),
        "expires_at": _datetime(fields, "expires_at"),
    }
    if (
        values["event_start"]
        and values["event_end"]
        and values["event_end"] < values["event_start"]
    ):
        raise InvalidItem("event_end", "The end date lies before the start date.")
    if (
        values["effective_at"]
        and values["expires_at"]
        and values["expires_at"] <= values["effective_at"]
    ):
        raise InvalidItem("expires_at", "The expiry date must come after the effective date.")
    translation = fields.get("translation_id")
    values["translation_id"] = row_id(translation)
    if translation not in (None, "") and values["translation_id"] is None:
        raise InvalidItem("translation_id", "There is no such item to link as translation.")
    return values


def check_translation(conn: Connection, item_id: int | None, translation_id: int | None) -> None:
    """Refuse a translation link to an item that is not one of the network's others."""
    if translation_id is None:
        return
    other = store.get_item(conn, translation_id)
    if other is None or other.origin != NETWORK or other.id == item_id:
        raise InvalidItem("translation_id", "There is no such item to link as translation.")


def create_item(fields: dict[str, Any], actor: str) -> Item:
    """Save a new draft; returns it."""
    values = check_fields(fields)
    now = utcnow()
    with engine("feeds").begin() as conn:
        check_translation(conn, None, values["translation_id"])
        slug = unique_slug(conn, slugify(writable(str(fields.get("slug") or values["title"]))))
        item_id = conn.execute(
            items.insert(),
            {
                **values,
                "slug": slug,
                "origin": NETWORK,
                "state": DRAFT,
                "created_at": now,
                "updated_at": now,
                "hidden": False,
            },
        ).inserted_primary_key[0]
        _link_translation(conn, item_id, values["translation_id"])
        store.log_history(conn, item_id, actor, "created", None, DRAFT, None, now)
        item = store.get_item(conn, item_id)
    assert item is not None
    return item


def network_item(conn: Connection, item_id: int) -> Item:
    """The network's item ``item_id``; raises NoSuchItem (partner items are not edited)."""
    item = store.get_item(conn, item_id) if row_id(item_id) else None
    if item is None or item.origin != NETWORK:
        raise NoSuchItem("There is no such item.")
    return item


def write_content(
    conn: Connection,
    item: Item,
    values: dict[str, Any],
    actor: str,
    action: str,
    comment: str | None = None,
) -> Item:
    """Give ``item`` the checked content ``values`` (its state stays) and record who did it;
    a published item's change is stamped as a public change. Returns the item as saved."""
    now = utcnow()
    check_translation(conn, item.id, values["translation_id"])
    conn.execute(items.update().where(items.c.id == item.id).values(**values, updated_at=now))
    _link_translation(conn, item.id, values["translation_id"])
    store.log_history(conn, item.id, actor, action, item.state, item.state, comment, now)
    if item.state == PUBLISHED:
        store.mark_content_changed(conn, now)
    saved = store.get_item(conn, item.id)
    assert saved is not None
    return saved


def update_item(item_id: int, fields: dict[str, Any], actor: str) -> Item:
    """Change an item's content directly (its state stays). Whether a change may go live
    at once is decided by the caller (:func:`services.feeds.revisions.save_edit`)."""
    values = check_fields(fields)
    with engine("feeds").begin() as conn:
        item = write_content(conn, network_item(conn, item_id), values, actor, "edited")
    if item.state == PUBLISHED:
        cache.content_changed()
    return item


def _link_translation(conn: Connection, item_id: int, translation_id: int | None) -> None:
    # Translations point at each other, so either page can link to the other. An item that
    # already names its translation keeps it: nobody relinks published items in passing.
    if translation_id and translation_id != item_id:
        conn.execute(
            items.update()
            .where(items.c.id == translation_id, items.c.translation_id.is_(None))
            .values(translation_id=item_id)
        )


def version_of(item: Item) -> str:
    """The token of the item's current version (it changes with every change)."""
    return item.updated_at.isoformat()


def transition(
    item_id: int,
    name: str,
    actor: str,
    role: str,
    comment: str | None = None,
    seen_version: str | None = None,
) -> Item:
    """Move an item through the workflow; raises WorkflowError when not allowed. With
    ``seen_version`` (from the page the user acted on) the step applies only to the version
    the user saw: what an admin publishes is what the admin reviewed."""
    step = TRANSITIONS.get(name)
    if step is None:
        raise WorkflowError("Unknown workflow step.")
    if role != "admin" and step.role == "admin":
        raise NotAllowed("Only an administrator may do this.")
    now = utcnow()
    with engine("feeds").begin() as conn:
        item = network_item(conn, item_id)
        if item.state not in step.sources:
            raise WorkflowError(f"This step is not possible while the item is {item.state}.")
        if seen_version is not None and seen_version != version_of(item):
            raise WorkflowError(CHANGED_MEANWHILE)
        values: dict[str, Any] = {"state": step.target, "updated_at": now}
        if step.target == PUBLISHED and item.published_at is None:
            values["published_at"] = now
        conn.execute(items.update().where(items.c.id == item_id).values(**values))
        store.log_history(conn, item_id, actor, name, item.state, step.target, comment, now)
        if PUBLISHED in (item.state, step.target):
            store.mark_content_changed(conn, now)
        updated = store.get_item(conn, item_id)
    assert updated is not None
    if PUBLISHED in (item.state, step.target):
        cache.content_changed()
        event = "content.published" if step.target == PUBLISHED else "content.retracted"
        events.publish(
            event,
            {
                "id": updated.id,
                "slug": updated.slug,
                "kind": updated.kind,
                "language": updated.language,
                "path": updated.path,
            },
        )
    return updated


#: Why a step on a version the user did not see is refused.
CHANGED_MEANWHILE = (
    "The item was changed after you opened it. Please look at it again and then decide."
)


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


def public_items(selection: ItemFilter, limit: int, offset: int = 0) -> tuple[list[Item], int]:
    """Visible items, newest first, with the total count."""
    now = utcnow()
    condition = selection.condition(now)
    with read_connection("feeds") as conn:
        total = conn.execute(
            sa.select(sa.func.count()).select_from(items).where(condition)
        ).scalar_one()
        rows = conn.execute(
            sa.select(items, store.sources.c.name.label("source_name"))
            .select_from(items.outerjoin(store.sources, items.c.source_id == store.sources.c.id))
            .where(condition)
            .order_by(items.c.published_at.desc(), items.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return [store.item_from_row(row) for row in rows], int(total)


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


def set_hidden(item_id: int, hidden: bool, actor: str) -> None:
    """Hide an aggregated item from pages and feeds (or show it again); raises NoSuchItem."""
    now = utcnow()
    with engine("feeds").begin() as conn:
        item = store.get_item(conn, item_id) if row_id(item_id) else None
        if item is None or item.origin != PARTNER:
            raise NoSuchItem("There is no such partner item.")
        if item.hidden == hidden:
            return
        conn.execute(items.update().where(items.c.id == item_id).values(hidden=hidden))
        store.log_history(
            conn, item_id, actor, "hidden" if hidden else "shown", None, None, None, now
        )
        store.mark_content_changed(conn, now)
    cache.content_changed()
