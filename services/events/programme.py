"""The organisers' changes to a series' dates, and the mails they cause.

A change people must know of (the time, the zone, the place, the link, the way it takes
place) raises the event's SEQUENCE and mails everyone who holds or waits for a place, with
an updated invitation for those holding one; more places go to the waiting list at once;
a cancelled event is mailed to everyone with a cancellation their calendar applies.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.events import schedule, store
from services.events.fields import EventFields
from services.events.registration import fill_free_seats, lock_event
from shared.database import engine, utcnow

#: The fields whose change is mailed to participants.
NOTIFIED_FIELDS = ("starts_at", "ends_at", "timezone", "mode", "place", "link")


def _holders(conn: Connection, event_id: int) -> list[int]:
    """Registrations holding or waiting for a place at the event."""
    return list(
        conn.execute(
            sa.select(store.seats.c.registration_id).where(
                store.seats.c.event_id == event_id,
                store.seats.c.status.in_((store.SEATED, store.WAITING)),
            )
        ).scalars()
    )


def add_event(series_id: int, fields: EventFields) -> int:
    """A new date of a series."""
    now = utcnow()
    with engine("events").begin() as conn:
        return int(
            conn.execute(
                store.events.insert().values(
                    **schedule.event_values(fields),
                    series_id=series_id,
                    sequence=0,
                    created_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key[0]
        )


def update_event(event_id: int, fields: EventFields) -> int:
    """Change a date; returns how many people were mailed about it."""
    now = utcnow()
    outbox: list[int] = []
    with engine("events").begin() as conn:
        before = lock_event(conn, event_id)
        values = schedule.event_values(fields)
        notify = any(getattr(before, name) != values[name] for name in NOTIFIED_FIELDS)
        conn.execute(
            store.events.update()
            .where(store.events.c.id == event_id)
            .values(
                **values,
                updated_at=now,
                sequence=before.sequence + (1 if notify else 0),
            )
        )
        # Places added go to the waiting list first: who moves up is told by that mail.
        moved = fill_free_seats(conn, event_id, now)
        outbox += [entry.outbox_id for entry in moved]
        if notify and before.cancelled_at is None:
            if (before.starts_at, before.timezone) != (values["starts_at"], values["timezone"]):
                # A reminder already sent told the old time: the new one gets its own.
                conn.execute(
                    store.seats.update()
                    .where(store.seats.c.event_id == event_id)
                    .values(reminded_at=None)
                )
            told = {entry.registration_id for entry in moved}
            outbox += [
                store.queue_mail(conn, holder, "changed", event_id=event_id)
                for holder in _holders(conn, event_id)
                if holder not in told
            ]
    store.hand_over(outbox)
    return len(outbox)


def cancel_event(event_id: int) -> int:
    """Cancel a date: everyone holding or waiting for a place is mailed; returns how many."""
    now = utcnow()
    with engine("events").begin() as conn:
        before = lock_event(conn, event_id)
        if before.cancelled_at is not None:
            return 0
        conn.execute(
            store.events.update()
            .where(store.events.c.id == event_id)
            .values(cancelled_at=now, updated_at=now, sequence=before.sequence + 1)
        )
        outbox = [
            store.queue_mail(conn, holder, "event_cancelled", event_id=event_id)
            for holder in _holders(conn, event_id)
        ]
    store.hand_over(outbox)
    return len(outbox)
