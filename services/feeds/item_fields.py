"""Checking an item's fields: what an editor typed becomes safe column values.

Every field is sanitised (:mod:`shared.sanitize`) and checked for range; a
field that cannot be used raises :class:`InvalidItem` naming it, so the form can show
the message beside it.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.feeds import media
from services.feeds.store import KINDS, items
from shared.errors import Invalid
from shared.i18n import LANGUAGES
from shared.sanitize import MAX_TITLE_LENGTH, clean_html, plain_text, safe_url, writable
from shared.web.paths import MAX_ROW_ID

#: Most tags on one item, and the longest tag.
MAX_TAGS, MAX_TAG_LENGTH = 12, 40

#: Dates an item may carry (conference days, visibility window). Anything outside is a
#: typo, and far-off years cannot even be converted between time zones.
EARLIEST_DATE, LATEST_DATE = date(1900, 1, 1), date(2199, 12, 31)

#: Editors type local time in the form.
EDITORS_TIME_ZONE = ZoneInfo("Europe/Berlin")

#: Longest lead image address (the column's size).
MAX_URL_LENGTH = 1000


class InvalidItem(Invalid, ValueError):
    """An item field is unusable; ``field`` names it, the message says why (English)."""

    field: str

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field)


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
    """``wanted``, or ``wanted-2``, ``wanted-3`` … if another item already has it
    (``item_id`` keeps its own slug)."""
    slug, n = wanted, 1
    while True:
        row = conn.execute(sa.select(items.c.id).where(items.c.slug == slug)).first()
        if row is None or row.id == item_id:
            return slug
        n += 1
        slug = f"{wanted}-{n}"


#: How often an insert looks for a free slug again when another writer took its choice.
SLUG_ATTEMPTS = 5


def insert_with_slug(conn: Connection, values: dict[str, Any], wanted: str) -> int:
    """Insert the item ``values`` under the first free slug from ``wanted``; its id.

    :func:`unique_slug` looks, then the insert writes: on PostgreSQL two writers (two
    partner sources with the same title fetched at once) can both find a slug free, and
    the second insert violates the unique index. The insert therefore runs in a
    savepoint, and a slug taken in the meantime is looked for again."""
    for attempt in range(SLUG_ATTEMPTS):
        slug = unique_slug(conn, wanted)
        try:
            with conn.begin_nested():
                inserted = conn.execute(items.insert(), {**values, "slug": slug})
            return int(inserted.inserted_primary_key[0])
        except sa.exc.IntegrityError:
            if attempt == SLUG_ATTEMPTS - 1:
                raise
    raise AssertionError("not reached")


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
    if not text.isascii() or not text.isdigit() or len(text) > len(str(MAX_ROW_ID)):
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
