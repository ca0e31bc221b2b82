"""The events service's tables and the queries on them.

A *series* (the network's online series, a conference) has *events*, its dates. A
person's *registration* for a series holds one *seat* per date asked for; a seat is
``requested`` until the address is confirmed, then ``confirmed`` or ``waiting`` (the
waiting list, in the order of ``queued_at``), and ``cancelled`` when given back. The
mails of the service are rows of its outbox, worked by the shared outbox engine.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.events.fields import (
    MAX_LINK,
    MAX_ORGANISATION,
    MAX_PLACE,
    MAX_SUMMARY,
    MAX_TITLE,
    EventFields,
    SeriesFields,
)
from shared.database import UTCDateTime, utcnow
from shared.errors import NotFound
from shared.mail.outbox import QUEUED, outbox_columns

metadata = sa.MetaData()

#: The workflow of a series, as of items: editors write drafts and submit them for
#: review (pending); admins publish and retract.
DRAFT, PENDING, PUBLISHED, RETRACTED = "draft", "pending", "published", "retracted"
SERIES_STATES = (DRAFT, PENDING, PUBLISHED, RETRACTED)

#: States of a registration: the address not yet confirmed, or confirmed.
UNCONFIRMED, CONFIRMED = "pending", "confirmed"

#: States of a seat (see the module's docstring); ``closed``: the date had begun, was
#: cancelled or its series taken off the site when the registration was confirmed.
REQUESTED, SEATED, WAITING, CANCELLED, CLOSED = (
    "requested", "confirmed", "waiting", "cancelled", "closed"
)  # fmt: skip
#: Seats that hold or wait for a place.
ACTIVE_SEATS = (REQUESTED, SEATED, WAITING)

series = sa.Table(
    "series",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("slug", sa.String(100), nullable=False, unique=True),
    sa.Column("title", sa.String(MAX_TITLE), nullable=False),
    sa.Column("summary", sa.String(MAX_SUMMARY), nullable=False, default=""),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("language", sa.String(2), nullable=False, default="de"),
    sa.Column("state", sa.String(16), nullable=False, default=DRAFT),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("series_id", sa.Integer, sa.ForeignKey("series.id"), nullable=False),
    sa.Column("title", sa.String(MAX_TITLE), nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("place", sa.String(MAX_PLACE), nullable=False, default=""),
    sa.Column("link", sa.String(MAX_LINK)),
    sa.Column("capacity", sa.Integer),
    sa.Column("registration_deadline", UTCDateTime),
    sa.Column("cancelled_at", UTCDateTime),
    # The invitation's SEQUENCE (RFC 5545): one up with every change mailed out.
    sa.Column("sequence", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_events_series_start", "series_id", "starts_at"),
    sa.Index("ix_events_start", "starts_at"),
)

registrations = sa.Table(
    "registrations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("series_id", sa.Integer, sa.ForeignKey("series.id"), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("email_key", sa.String(320), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("organisation", sa.String(MAX_ORGANISATION), nullable=False, default=""),
    sa.Column("municipality", sa.String(MAX_ORGANISATION), nullable=False, default=""),
    sa.Column("language", sa.String(2), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # The outstanding confirmation link's secret; None once nothing awaits confirmation.
    sa.Column("confirm_nonce", sa.String(32)),
    # The secret of the registration's own page (cancel): valid while the row lives.
    sa.Column("manage_key", sa.String(32), nullable=False),
    sa.Column("requested_at", UTCDateTime, nullable=False),
    sa.Column("confirmed_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("series_id", "email_key", name="uq_registrations_series_email"),
)

seats = sa.Table(
    "seats",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("registration_id", sa.Integer, sa.ForeignKey("registrations.id"), nullable=False),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("events.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # The waiting list's order: when the seat was asked for and confirmed.
    sa.Column("queued_at", UTCDateTime, nullable=False),
    sa.Column("reminded_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("registration_id", "event_id", name="uq_seats_registration_event"),
    sa.Index("ix_seats_event_status", "event_id", "status", "queued_at"),
)

event_mails = sa.Table(
    "event_mails",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("registration_id", sa.Integer, sa.ForeignKey("registrations.id"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    # The date a mail is about (reminder, moved up, changed, cancelled), if one.
    sa.Column("event_id", sa.Integer),
    # The dates a cancellation acknowledges, comma-separated ids.
    sa.Column("event_ids", sa.String(1000)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    *outbox_columns(),
    sa.Index("ix_event_mails_status", "status", "id"),
)


#: Addresses a series cannot have: the fixed pages beside the series' own (see app.py).
RESERVED_SLUGS = frozenset({"admin", "api", "sent", "confirm", "registration"})


class NoSuchSeries(NotFound):
    """No series has this id or address (or it is not public)."""

    def __init__(self) -> None:
        super().__init__("There is no such event series.")


class NoSuchEvent(NotFound):
    """No event has this id."""

    def __init__(self) -> None:
        super().__init__("There is no such event.")


@dataclass(frozen=True)
class Series(SeriesFields):
    """A stored series."""

    id: int = 0
    slug: str = ""
    state: str = DRAFT
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Event(EventFields):
    """A stored event, with how full it is (``taken``: confirmed seats; ``waiting``)."""

    id: int = 0
    series_id: int = 0
    cancelled_at: datetime | None = None
    sequence: int = 0
    updated_at: datetime | None = None
    taken: int = 0
    waiting: int = 0

    @property
    def seats_left(self) -> int | None:
        """Free places; None without a limit."""
        return None if self.capacity is None else max(self.capacity - self.taken, 0)

    def open_for_registration(self, now: datetime) -> bool:
        """Whether one may still register (the deadline not passed, not cancelled)."""
        return self.cancelled_at is None and now < self.deadline


@dataclass(frozen=True)
class Registration:
    """A person's registration for a series."""

    id: int
    series_id: int
    email: str
    name: str
    organisation: str
    municipality: str
    language: str
    status: str
    confirm_nonce: str | None
    manage_key: str
    confirmed_at: datetime | None


@dataclass(frozen=True)
class Seat:
    """A registration's place at one event."""

    registration_id: int
    event_id: int
    status: str
    queued_at: datetime


def new_secret() -> str:
    """A random secret for a link (confirmation nonce, manage key)."""
    return secrets.token_hex(16)


def registration(conn: Connection, registration_id: int) -> Registration | None:
    """A registration by id."""
    row = conn.execute(
        sa.select(*[registrations.c[f] for f in Registration.__dataclass_fields__]).where(
            registrations.c.id == registration_id
        )
    ).first()
    return None if row is None else Registration(**row._mapping)


def seats_of(conn: Connection, registration_id: int) -> list[Seat]:
    """A registration's seats."""
    rows = conn.execute(
        sa.select(
            seats.c.registration_id, seats.c.event_id, seats.c.status, seats.c.queued_at
        ).where(seats.c.registration_id == registration_id)
    )
    return [Seat(**row._mapping) for row in rows]


def queue_mail(
    conn: Connection,
    registration_id: int,
    kind: str,
    event_id: int | None = None,
    event_ids: list[int] | None = None,
) -> int:
    """Add a mail to the outbox (in the caller's transaction); returns its id."""
    return int(
        conn.execute(
            event_mails.insert().values(
                registration_id=registration_id,
                kind=kind,
                event_id=event_id,
                event_ids=",".join(map(str, event_ids)) if event_ids else None,
                created_at=utcnow(),
                status=QUEUED,
                attempts=0,
            )
        ).inserted_primary_key[0]
    )


def hand_over(outbox_ids: list[int]) -> None:
    """Give committed outbox rows to a worker (after the transaction, so it finds them)."""
    # By name: the actors module imports this one (through mails), so this one must not
    # import it.
    from shared.tasks import enqueue

    for outbox_id in outbox_ids:
        # Redis unreachable: the row stays queued and the scheduler's outbox sweep hands
        # it to a worker once Redis is back.
        with contextlib.suppress(Exception):
            enqueue("send_event_mail", outbox_id)
