"""What the scheduler does for the events service on every tick: reminders the day
before, and forgetting registrations once their events are long past (privacy)."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from services.events import store
from services.events.store import CONFIRMED, PUBLISHED, SEATED, UNCONFIRMED
from shared.config import get_settings
from shared.database import engine, utcnow

#: How long before its start an event's reminder goes out ("the day before").
REMINDER_LEAD = timedelta(hours=24)

#: No reminder closer to the start than this: whoever got a place so late has just had
#: the mail with everything, and "tomorrow" would be wrong.
REMINDER_MIN_LEAD = timedelta(hours=3)


def queue_reminders(now: datetime | None = None) -> list[int]:
    """Queue the reminder of every confirmed place at a published series' event starting
    between :data:`REMINDER_MIN_LEAD` and :data:`REMINDER_LEAD` from now, once per place
    (the seat records it in the same transaction); returns the outbox ids."""
    now = now or utcnow()
    seats, events = store.seats, store.events
    window = sa.and_(
        events.c.starts_at > now + REMINDER_MIN_LEAD, events.c.starts_at <= now + REMINDER_LEAD
    )
    due = (
        sa.select(seats.c.id, seats.c.registration_id, seats.c.event_id)
        .join(events, events.c.id == seats.c.event_id)
        .join(store.registrations, store.registrations.c.id == seats.c.registration_id)
        .join(store.series, store.series.c.id == events.c.series_id)
        .where(
            store.series.c.state == PUBLISHED,
            seats.c.status == SEATED,
            seats.c.reminded_at.is_(None),
            store.registrations.c.status == CONFIRMED,
            events.c.cancelled_at.is_(None),
            window,
        )
        .order_by(seats.c.id)
    )
    outbox = []
    with engine("events").begin() as conn:
        for seat in conn.execute(due).all():
            # Checked again in the update: a place given back or a date moved meanwhile
            # gets no reminder.
            still_due = sa.select(events.c.id).where(events.c.id == seat.event_id, window).exists()
            marked = conn.execute(
                seats.update()
                .where(
                    seats.c.id == seat.id,
                    seats.c.reminded_at.is_(None),
                    seats.c.status == SEATED,
                    still_due,
                )
                .values(reminded_at=now)
            )
            if marked.rowcount == 1:
                outbox.append(
                    store.queue_mail(conn, seat.registration_id, "reminder", event_id=seat.event_id)
                )
    return outbox


def purge_registrations(now: datetime | None = None) -> int:
    """Delete registrations whose every event ended more than the retention time ago
    (``KGI_EVENT_RETENTION_DAYS``), and those never confirmed in time, with their seats
    and mails; returns how many went."""
    now = now or utcnow()
    settings = get_settings()
    cutoff = now - timedelta(days=settings.event_retention_days)
    table, seats, events = store.registrations, store.seats, store.events
    still_relevant = (
        sa.select(seats.c.id)
        .join(events, events.c.id == seats.c.event_id)
        .where(seats.c.registration_id == table.c.id, events.c.ends_at >= cutoff)
        .exists()
    )
    unconfirmed = sa.and_(
        table.c.status == UNCONFIRMED,
        table.c.requested_at < now - timedelta(seconds=settings.pending_ttl_seconds),
    )
    with engine("events").begin() as conn:
        # The registrations locked first, as confirming locks them (then their seats): a
        # purge and a late confirmation never wait for each other crosswise.
        gone = list(
            conn.execute(
                sa.select(table.c.id)
                .where(sa.or_(~still_relevant, unconfirmed))
                .order_by(table.c.id)
                .with_for_update(skip_locked=True)
            ).scalars()
        )
        for chunk in (gone[i : i + 500] for i in range(0, len(gone), 500)):
            conn.execute(
                store.event_mails.delete().where(store.event_mails.c.registration_id.in_(chunk))
            )
            conn.execute(seats.delete().where(seats.c.registration_id.in_(chunk)))
            conn.execute(table.delete().where(table.c.id.in_(chunk)))
    return len(gone)
