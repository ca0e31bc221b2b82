"""The subscribers service's tables and the queries on them.

Every function takes an open connection, so callers decide what one transaction holds.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shared.database import UTCDateTime, utcnow
from shared.mail.outbox import QUEUED, outbox_columns

#: Subscription states. ``pending`` waits for the confirmation click; ``bounced``: mail to
#: the address failed for good (or kept failing), so it gets nothing until a new opt-in.
PENDING, CONFIRMED, UNSUBSCRIBED, BOUNCED = "pending", "confirmed", "unsubscribed", "bounced"
STATUSES = (PENDING, CONFIRMED, UNSUBSCRIBED, BOUNCED)

#: Longest user agent or source kept in the consent log (the columns' size).
CONTEXT_TEXT_LENGTH = 400

metadata = sa.MetaData()

subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(254), nullable=False),
    # Lower-cased, ASCII (punycode) domain: the identity used for de-duplication.
    sa.Column("email_key", sa.String(254), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False, default=""),
    sa.Column("language", sa.String(2), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("requested_at", UTCDateTime, nullable=False),
    sa.Column("confirmed_at", UTCDateTime),
    sa.Column("unsubscribed_at", UTCDateTime),
    sa.Column("bounced_at", UTCDateTime),
    # Set while a confirmation link is outstanding; the link names it, so links made
    # before an unsubscribe or a later confirmation stop working.
    sa.Column("confirm_nonce", sa.String(32)),
    # Secret part of the preferences/unsubscribe link; never changes while the row lives.
    sa.Column("manage_key", sa.String(32), nullable=False),
)

consent_events = sa.Table(
    "consent_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "subscriber_id",
        sa.Integer,
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("ip", sa.String(64)),
    sa.Column("user_agent", sa.String(CONTEXT_TEXT_LENGTH)),
    sa.Column("source", sa.String(CONTEXT_TEXT_LENGTH)),
    sa.Column("consent_version", sa.String(32)),
    sa.Column("detail", sa.Text),
)

# Addresses whose owner had their data erased, kept only as a hash so an import
# cannot bring them back.
erasures = sa.Table(
    "erasures",
    metadata,
    sa.Column("email_hash", sa.String(64), primary_key=True),
    sa.Column("erased_at", UTCDateTime, nullable=False),
)

# What came back about mail to a subscriber: bounces, complaints, mailto unsubscribes.
# One row per report; ``report_key`` makes a report that arrives twice (a mailbox
# poller that crashed before deleting it, a relay retrying its webhook) count once.
delivery_feedback = sa.Table(
    "delivery_feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "subscriber_id",
        sa.Integer,
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("kind", sa.String(16), nullable=False),
    # The newsletter issue the mail belonged to (None: a confirmation or welcome mail).
    sa.Column("issue_id", sa.Integer, index=True),
    sa.Column("status", sa.String(16)),
    sa.Column("detail", sa.Text),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("report_key", sa.String(64), nullable=False, unique=True),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
)

mail_outbox = sa.Table(
    "mail_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "subscriber_id",
        sa.Integer,
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # status, attempts, claims, outcome: the outbox engine's columns (shared.mail.outbox).
    *outbox_columns(),
    sa.Index("ix_mail_outbox_status", "status"),
)


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    email_key: str
    name: str
    language: str
    status: str
    created_at: datetime
    updated_at: datetime
    requested_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    bounced_at: datetime | None
    confirm_nonce: str | None
    manage_key: str

    def public(self) -> dict[str, Any]:
        """The fields a subscriber or an admin sees (no secrets)."""
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "language": self.language,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "confirmed_at": self.confirmed_at.isoformat() if self.confirmed_at else None,
            "unsubscribed_at": self.unsubscribed_at.isoformat() if self.unsubscribed_at else None,
            "bounced_at": self.bounced_at.isoformat() if self.bounced_at else None,
        }


@dataclass(frozen=True)
class ConsentEvent:
    id: int
    subscriber_id: int
    action: str
    occurred_at: datetime
    ip: str | None
    user_agent: str | None
    source: str | None
    consent_version: str | None
    detail: str | None

    def public(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "occurred_at": self.occurred_at.isoformat(),
            "ip": self.ip,
            "user_agent": self.user_agent,
            "source": self.source,
            "consent_version": self.consent_version,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Context:
    """Who did something and from where, for the consent log."""

    ip: str | None = None
    user_agent: str | None = None
    source: str | None = None
    consent_version: str | None = None


def email_hash(email_key: str) -> str:
    """The stored fingerprint of an erased address."""
    return hashlib.sha256(email_key.encode()).hexdigest()


def _subscriber(row: sa.Row | None) -> Subscriber | None:
    return Subscriber(**row._mapping) if row is not None else None


def get(conn: Connection, subscriber_id: int) -> Subscriber | None:
    return _subscriber(
        conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
    )


def find_by_key(conn: Connection, email_key: str) -> Subscriber | None:
    return _subscriber(
        conn.execute(sa.select(subscribers).where(subscribers.c.email_key == email_key)).first()
    )


def new_secret() -> str:
    """A random value for ``confirm_nonce`` and ``manage_key``."""
    return secrets.token_hex(16)


def insert(conn: Connection, **values: Any) -> int:
    now = utcnow()
    values.setdefault("manage_key", new_secret())
    values.setdefault("created_at", now)
    values.setdefault("updated_at", now)
    values.setdefault("requested_at", now)
    # Parameters apart from the statement: SQLAlchemy reuses the compiled INSERT.
    return int(conn.execute(subscribers.insert(), values).inserted_primary_key[0])


def update(conn: Connection, subscriber_id: int, **values: Any) -> None:
    values["updated_at"] = utcnow()
    conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id).values(**values))


def _storable(text: str | None) -> str | None:
    """Client-supplied text as the consent log can keep it: without NUL (PostgreSQL
    refuses it in text columns; it reaches us from JSON and CSV), cut to length."""
    return (text or "").replace("\x00", "")[:CONTEXT_TEXT_LENGTH] or None


def log_consent(
    conn: Connection, subscriber_id: int, action: str, context: Context, detail: str | None = None
) -> None:
    """Append one event to the consent log (never updated, only deleted with an erasure)."""
    conn.execute(
        consent_events.insert(),
        {
            "subscriber_id": subscriber_id,
            "action": action,
            "occurred_at": utcnow(),
            "ip": context.ip,
            "user_agent": _storable(context.user_agent),
            "source": _storable(context.source),
            "consent_version": context.consent_version,
            "detail": detail,
        },
    )


def end_subscription(
    conn: Connection,
    subscriber_id: int,
    status: str,
    context: Context,
    action: str,
    detail: str | None = None,
) -> bool:
    """Move a subscriber out of the audience (``unsubscribed`` or ``bounced``) and log
    ``action``, in the caller's transaction. False, and nothing logged, when the row is
    already in that state: repeating a click or a report changes nothing. A bounce only
    ends a subscription that is live (pending or confirmed): an old mail bouncing after
    an unsubscribe does not overwrite the person's own decision."""
    now = utcnow()
    stamp = {UNSUBSCRIBED: "unsubscribed_at", BOUNCED: "bounced_at"}[status]
    live = (PENDING, CONFIRMED) if status == BOUNCED else (PENDING, CONFIRMED, BOUNCED)
    result = conn.execute(
        subscribers.update()
        .where(subscribers.c.id == subscriber_id, subscribers.c.status.in_(live))
        .values(status=status, updated_at=now, confirm_nonce=None, **{stamp: now})
    )
    if result.rowcount != 1:
        return False
    log_consent(conn, subscriber_id, action, context, detail)
    return True


def history(conn: Connection, subscriber_id: int) -> list[ConsentEvent]:
    rows = conn.execute(
        sa.select(consent_events)
        .where(consent_events.c.subscriber_id == subscriber_id)
        .order_by(consent_events.c.id)
    )
    return [ConsentEvent(**row._mapping) for row in rows]


def is_erased(conn: Connection, email_key: str) -> bool:
    return (
        conn.execute(
            sa.select(erasures.c.email_hash).where(erasures.c.email_hash == email_hash(email_key))
        ).first()
        is not None
    )


def queue_mail(conn: Connection, subscriber_id: int, kind: str) -> int:
    """Add a mail to the outbox in the caller's transaction; returns its id."""
    result = conn.execute(
        mail_outbox.insert(),
        {
            "subscriber_id": subscriber_id,
            "kind": kind,
            "status": QUEUED,
            "created_at": utcnow(),
            "attempts": 0,
        },
    )
    return int(result.inserted_primary_key[0])


def counts_by_status(conn: Connection) -> dict[str, int]:
    rows = conn.execute(
        sa.select(subscribers.c.status, sa.func.count()).group_by(subscribers.c.status)
    )
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({status: int(n) for status, n in rows})
    return counts


def search(
    conn: Connection, query: str = "", status: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Subscriber], int]:
    """Subscribers whose address or name contains ``query``, newest first, and the total."""
    condition = sa.true()
    if query:
        pattern = f"%{query.lower()}%"
        condition = sa.or_(
            subscribers.c.email_key.like(pattern), sa.func.lower(subscribers.c.name).like(pattern)
        )
    if status in STATUSES:
        condition = sa.and_(condition, subscribers.c.status == status)
    total = conn.execute(
        sa.select(sa.func.count()).select_from(subscribers).where(condition)
    ).scalar_one()
    rows = conn.execute(
        sa.select(subscribers)
        .where(condition)
        .order_by(subscribers.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [Subscriber(**row._mapping) for row in rows], int(total)


def all_subscribers(conn: Connection, status: str | None = None) -> list[Subscriber]:
    statement = sa.select(subscribers).order_by(subscribers.c.id)
    if status in STATUSES:
        statement = statement.where(subscribers.c.status == status)
    return [Subscriber(**row._mapping) for row in conn.execute(statement)]
