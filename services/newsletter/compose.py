"""Putting an issue together: its texts, the content items in order, the schedule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from services.newsletter import peers, store
from services.newsletter.store import DRAFT, OVERDUE, SCHEDULED, SENT, Issue, issue_items, issues
from shared.database import engine, read_connection, utcnow
from shared.errors import Conflict, Invalid, NotFound
from shared.i18n import LANGUAGES, month_name, translate
from shared.sanitize import rich_text

#: States in which an issue can still be edited.
EDITABLE = (DRAFT, SCHEDULED, OVERDUE)

#: Editors type times in the office's zone.
LOCAL_ZONE = ZoneInfo("Europe/Berlin")

#: Furthest ahead an issue can be scheduled: later than a year is a mistyped year.
MAX_SCHEDULE_AHEAD = timedelta(days=366)

#: Characters allowed in texts besides printable ones: line breaks and tabs (in the
#: multi-line fields); other control characters are paste accidents or attacks.
TEXT_CONTROL_CHARACTERS = "\n\r\t"


class ComposeError(Invalid):
    """A value of the issue is not acceptable; the message says why (English, translated
    on pages)."""


def default_subject(language: str, when: datetime) -> str:
    month = month_name(when.month, language)
    return f"KGI-Infobrief {month} {when.year}"


def _text(value: Any, limit: int) -> str:
    text = str(value or "").strip()
    if any(ch in text for ch in "\r\n") and limit <= 200:
        raise ComposeError("Subject and preheader must be one line.")
    if any((ord(ch) < 32 or ord(ch) == 127) and ch not in TEXT_CONTROL_CHARACTERS for ch in text):
        raise ComposeError("The text contains control characters.")
    if len(text) > limit:
        raise ComposeError(f"At most {limit} characters, please.")
    return text


def create_issue(
    language: str,
    actor: str,
    subject: str | None = None,
    preheader: str = "",
    intro: str = "",
    closing: str = "",
    creator_language: str | None = None,
) -> Issue:
    """A new draft issue; ``creator_language`` (default: the issue's) is the language of
    the summary mail its creator gets after sending."""
    if language not in LANGUAGES:
        raise ComposeError("The language must be de or en.")
    now = utcnow()
    values = {
        "language": language,
        "subject": _text(subject, 200) or default_subject(language, now),
        "preheader": _text(preheader, 200),
        "intro": rich_text(
            _text(intro or translate("here is the latest from our network.", language), 5000)
        ),
        "closing": rich_text(
            _text(closing or translate("With best regards, the KGI team", language), 5000)
        ),
        "state": DRAFT,
        "created_by": actor,
        "created_at": now,
        "updated_at": now,
        "audience_count": 0,
        "consecutive_failures": 0,
        "summary_sent": False,
        "creator_language": creator_language if creator_language in LANGUAGES else language,
    }
    with engine("newsletter").begin() as conn:
        issue_id = conn.execute(issues.insert(), values).inserted_primary_key[0]
        store.log(conn, issue_id, actor, "created", None, now)
        issue = store.get_issue(conn, issue_id)
    assert issue is not None
    return issue


def _editable(conn: sa.Connection, issue_id: int) -> Issue:
    issue = store.get_issue(conn, issue_id)
    if issue is None:
        raise NotFound("There is no such issue.")
    if issue.state not in EDITABLE:
        raise Conflict("This issue can no longer be changed.")
    return issue


def update_texts(issue_id: int, fields: dict[str, Any], actor: str) -> None:
    values = {
        "subject": _text(fields.get("subject"), 200),
        "preheader": _text(fields.get("preheader"), 200),
        # Rich text from the editor, cleaned by the allowlist every item body passes.
        "intro": rich_text(_text(fields.get("intro"), 5000)),
        "closing": rich_text(_text(fields.get("closing"), 5000)),
    }
    if not values["subject"]:
        raise ComposeError("Please enter a subject.")
    now = utcnow()
    with engine("newsletter").begin() as conn:
        _editable(conn, issue_id)
        conn.execute(
            issues.update().where(issues.c.id == issue_id).values(**values, updated_at=now)
        )
        store.log(conn, issue_id, actor, "edited", None, now)


def add_items(
    issue_id: int, items: list[dict[str, Any]], actor: str, source: str = store.FEEDS
) -> int:
    """Append items of ``source`` (as its API returns them: the feeds service's content,
    the events service's dates); returns how many were new."""
    now = utcnow()
    added = 0
    with engine("newsletter").begin() as conn:
        _editable(conn, issue_id)
        present = {
            (row.source, row.content_id)
            for row in conn.execute(
                sa.select(issue_items.c.source, issue_items.c.content_id).where(
                    issue_items.c.issue_id == issue_id
                )
            )
        }
        position = conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(issue_items.c.position), 0)).where(
                issue_items.c.issue_id == issue_id
            )
        ).scalar_one()
        for item in items:
            if (source, item["id"]) in present:
                continue
            position += 1
            conn.execute(
                issue_items.insert(),
                {
                    "issue_id": issue_id,
                    "position": position,
                    "source": source,
                    "content_id": item["id"],
                    "snapshot": json.dumps(item),
                },
            )
            present.add((source, item["id"]))
            added += 1
        if added:
            store.log(conn, issue_id, actor, "items added", str(added), now)
            conn.execute(issues.update().where(issues.c.id == issue_id).values(updated_at=now))
    return added


def _issue(issue_id: int) -> Issue:
    with read_connection("newsletter") as conn:
        issue = store.get_issue(conn, issue_id)
    if issue is None:
        raise NotFound("There is no such issue.")
    return issue


def add_items_by_id(issue_id: int, content_ids: list[int], actor: str) -> int:
    """Add published items chosen by id (looked up in the feeds service)."""
    wanted = set(content_ids)
    available = peers.published_items(_issue(issue_id).language)
    return add_items(issue_id, [item for item in available if item["id"] in wanted], actor)


def add_dates_by_id(issue_id: int, date_ids: list[int], actor: str) -> int:
    """Add dates of the event series chosen by id (looked up in the events service)."""
    wanted = set(date_ids)
    available = peers.upcoming_dates(_issue(issue_id).language)
    chosen = [date for date in available if date["id"] in wanted]
    return add_items(issue_id, chosen, actor, source=store.EVENTS)


def last_issue_start(language: str, before_issue: int | None = None) -> datetime | None:
    """When the newest sent issue in ``language`` went out."""
    condition = sa.and_(issues.c.language == language, issues.c.state == SENT)
    if before_issue:
        condition = sa.and_(condition, issues.c.id != before_issue)
    with read_connection("newsletter") as conn:
        return conn.execute(sa.select(sa.func.max(issues.c.started_at)).where(condition)).scalar()


def add_since(issue_id: int, actor: str, since: datetime | None = None) -> int:
    """Add everything published since ``since`` (default: since the last issue went out),
    oldest first."""
    issue = _issue(issue_id)
    since = since or last_issue_start(issue.language, issue_id)
    found = peers.published_items(issue.language, since=since)
    network_only = [item for item in found if item.get("origin") == "network"]
    return add_items(issue_id, list(reversed(network_only)), actor)


def remove_item(issue_id: int, row_id: int, actor: str) -> None:
    now = utcnow()
    with engine("newsletter").begin() as conn:
        _editable(conn, issue_id)
        conn.execute(
            issue_items.delete().where(
                issue_items.c.id == row_id, issue_items.c.issue_id == issue_id
            )
        )
        store.log(conn, issue_id, actor, "item removed", None, now)


def move_item(issue_id: int, row_id: int, offset: int, actor: str) -> None:
    """Move an item up (-1) or down (+1) in the issue."""
    with engine("newsletter").begin() as conn:
        _editable(conn, issue_id)
        rows = (
            conn.execute(
                sa.select(issue_items.c.id)
                .where(issue_items.c.issue_id == issue_id)
                .order_by(issue_items.c.position)
            )
            .scalars()
            .all()
        )
        if row_id not in rows:
            raise ComposeError("There is no such item in this issue.")
        index = rows.index(row_id)
        target = max(0, min(len(rows) - 1, index + offset))
        rows.insert(target, rows.pop(index))
        _renumber(conn, rows)


def set_order(issue_id: int, row_ids: list[int], actor: str) -> None:
    """Put the items in exactly this order (from drag and drop)."""
    with engine("newsletter").begin() as conn:
        _editable(conn, issue_id)
        current = set(
            conn.execute(
                sa.select(issue_items.c.id).where(issue_items.c.issue_id == issue_id)
            ).scalars()
        )
        if set(row_ids) != current:
            raise ComposeError("The order must list every item of the issue once.")
        _renumber(conn, row_ids)


def _renumber(conn: sa.Connection, row_ids: list[int]) -> None:
    for position, row_id in enumerate(row_ids, start=1):
        conn.execute(
            issue_items.update().where(issue_items.c.id == row_id).values(position=position)
        )


def parse_send_time(raw: str) -> datetime | None:
    """A time typed into the schedule form (``YYYY-MM-DDTHH:MM``, German time unless it
    names an offset) in UTC; None when empty. Raises ComposeError with the reason."""
    if not raw.strip():
        return None
    try:
        typed = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ComposeError("Please give date and time as YYYY-MM-DDTHH:MM.") from None
    if typed.tzinfo is None:
        typed = typed.replace(tzinfo=LOCAL_ZONE)
    try:
        # 0001-01-01T00:30 in Berlin is before the year 1 in UTC: no datetime can hold it.
        return typed.astimezone(UTC)
    except OverflowError:
        in_the_past = typed.year == datetime.min.year
        raise ComposeError(
            "The time lies in the past."
            if in_the_past
            else "Please choose a time within the next year."
        ) from None


def schedule(issue_id: int, when: datetime | None, actor: str) -> None:
    """Send at ``when`` (None: back to draft)."""
    now = utcnow()
    if when is not None and when <= now:
        raise ComposeError("The time lies in the past.")
    if when is not None and when > now + MAX_SCHEDULE_AHEAD:
        raise ComposeError("Please choose a time within the next year.")
    with engine("newsletter").begin() as conn:
        issue = _editable(conn, issue_id)
        if when is not None and not store.issue_contents(conn, issue_id):
            raise ComposeError("Add at least one item before scheduling.")
        state = SCHEDULED if when else DRAFT
        conn.execute(
            issues.update()
            .where(issues.c.id == issue_id)
            .values(state=state, scheduled_at=when, updated_at=now)
        )
        store.log(
            conn,
            issue_id,
            actor,
            "scheduled" if when else "unscheduled",
            when.isoformat() if when else issue.state,
            now,
        )
