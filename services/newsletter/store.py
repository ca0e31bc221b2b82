"""The newsletter service's tables: issues, their items and history, the outbox and
the senders' seats."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shared.database import UTCDateTime, engine, read_connection, utcnow
from shared.errors import NotFound
from shared.mail.outbox import OUTBOX_STATES, outbox_columns
from shared.web.paths import path_for

#: Issue states. ``overdue``: a schedule passed while the system was down; an editor
#: confirms before anything is sent.
DRAFT, SCHEDULED, OVERDUE, SENDING, PAUSED, SENT, CANCELLED = (
    "draft",
    "scheduled",
    "overdue",
    "sending",
    "paused",
    "sent",
    "cancelled",
)
ISSUE_STATES = (DRAFT, SCHEDULED, OVERDUE, SENDING, PAUSED, SENT, CANCELLED)

metadata = sa.MetaData()

issues = sa.Table(
    "issues",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("language", sa.String(2), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("preheader", sa.String(200), nullable=False, default=""),
    sa.Column("intro", sa.Text, nullable=False, default=""),
    sa.Column("closing", sa.Text, nullable=False, default=""),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("scheduled_at", UTCDateTime),
    sa.Column("created_by", sa.String(254), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("audience_count", sa.Integer, nullable=False, default=0),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, default=0),
    sa.Column("pause_reason", sa.Text),
    # Rendered once when dispatch starts (Jinja2 + premailer + text), with placeholders
    # for the per-recipient parts.
    sa.Column("rendered_html", sa.Text),
    sa.Column("rendered_text", sa.Text),
    sa.Column("summary_sent", sa.Boolean, nullable=False, default=False),
    # The language its creator works in: the summary mail after sending is in it.
    sa.Column("creator_language", sa.String(2)),
)

#: Where an issue's items come from: published content, and the event series' dates.
FEEDS, EVENTS = "feeds", "events"
ITEM_SOURCES = (FEEDS, EVENTS)

issue_items = sa.Table(
    "issue_items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "issue_id",
        sa.Integer,
        sa.ForeignKey("issues.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("position", sa.Integer, nullable=False),
    # Which service the item comes from (ITEM_SOURCES), and its id there.
    sa.Column("source", sa.String(16), nullable=False, server_default=FEEDS),
    sa.Column("content_id", sa.Integer, nullable=False),
    # A copy of the item as its service published it: the issue stays as sent.
    sa.Column("snapshot", sa.Text, nullable=False),
    sa.UniqueConstraint("issue_id", "source", "content_id", name="uq_issue_items_content"),
)

issue_log = sa.Table(
    "issue_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "issue_id",
        sa.Integer,
        sa.ForeignKey("issues.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(254), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "issue_id", sa.Integer, sa.ForeignKey("issues.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("subscriber_id", sa.Integer, nullable=False),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("name", sa.String(200), nullable=False, default=""),
    sa.Column("unsubscribe_url", sa.String(1000), nullable=False),
    sa.Column("preferences_url", sa.String(1000), nullable=False),
    # status, attempts, claims, outcome: the outbox engine's columns (shared.mail.outbox).
    *outbox_columns(),
    sa.UniqueConstraint("issue_id", "email", name="uq_outbox_issue_email"),
    sa.Index("ix_outbox_issue_status", "issue_id", "status"),
)


#: The seats of an issue's senders (see :mod:`services.newsletter.seats`): at most
#: KGI_NEWSLETTER_SENDERS per issue, each held by one sender while its heartbeat lasts.
sender_seats = sa.Table(
    "sender_seats",
    metadata,
    sa.Column(
        "issue_id",
        sa.Integer,
        sa.ForeignKey("issues.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seat", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("owner", sa.String(64)),
    sa.Column("alive_until", UTCDateTime),
)


@dataclass(frozen=True)
class Issue:
    id: int
    language: str
    subject: str
    preheader: str
    intro: str
    closing: str
    state: str
    scheduled_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    audience_count: int
    consecutive_failures: int
    pause_reason: str | None
    rendered_html: str | None
    rendered_text: str | None
    summary_sent: bool
    creator_language: str | None

    @property
    def archive_path(self) -> str:
        """The issue's page in the public archive."""
        return path_for("newsletter:archive_issue", id=self.id)


def get_issue(conn: Connection, issue_id: int) -> Issue | None:
    row = conn.execute(sa.select(issues).where(issues.c.id == issue_id)).first()
    return Issue(**row._mapping) if row else None


def issue_of(issue_id: int) -> Issue:
    """The issue as it is now, read on its own connection; NotFound if there is none."""
    with read_connection("newsletter") as conn:
        issue = get_issue(conn, issue_id)
    if issue is None:
        raise NotFound("There is no such issue.")
    return issue


def issue_contents(conn: Connection, issue_id: int) -> list[dict[str, Any]]:
    """The issue's items in order: snapshots with their row id, position and the service
    they come from (``service``: a snapshot's own ``source`` is a partner's name)."""
    rows = conn.execute(
        sa.select(issue_items)
        .where(issue_items.c.issue_id == issue_id)
        .order_by(issue_items.c.position)
    )
    return [
        {
            **json.loads(row.snapshot),
            "service": row.source,
            "row_id": row.id,
            "position": row.position,
        }
        for row in rows
    ]


def log(
    conn: Connection, issue_id: int, actor: str, action: str, detail: str | None, at: datetime
) -> None:
    conn.execute(
        issue_log.insert(),
        {"issue_id": issue_id, "actor": actor, "action": action, "detail": detail, "at": at},
    )


def record(issue_id: int, actor: str, action: str, detail: str | None = None) -> None:
    """Add a line to the issue's history in a transaction of its own."""
    with engine("newsletter").begin() as conn:
        log(conn, issue_id, actor, action, detail, utcnow())


def issue_history(conn: Connection, issue_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(issue_log).where(issue_log.c.issue_id == issue_id).order_by(issue_log.c.id)
    )
    return [dict(row._mapping) for row in rows]


def outbox_counts(conn: Connection, issue_id: int) -> dict[str, int]:
    rows = conn.execute(
        sa.select(outbox.c.status, sa.func.count())
        .where(outbox.c.issue_id == issue_id)
        .group_by(outbox.c.status)
    )
    counts = dict.fromkeys(OUTBOX_STATES, 0)
    counts.update({status: int(n) for status, n in rows})
    return counts
