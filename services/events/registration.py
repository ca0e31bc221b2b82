"""Registering for a series: double opt-in, seats and the waiting list, cancelling.

Each flow is one transaction that changes registrations and seats and adds the mails it
causes to the outbox; the mails go to a worker after the commit (see :mod:`.mails`), so a
crash delays a mail but never sends one for a change that was rolled back.

Seats are given out with the event's row locked (``FOR UPDATE`` on PostgreSQL; SQLite
serialises writers anyway), so two people confirming at once never take the last place
twice. A place given back goes to the longest waiting person in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.events import links, schedule, store
from services.events.fields import RegistrationForm
from services.events.store import (
    ACTIVE_SEATS,
    CANCELLED,
    CLOSED,
    CONFIRMED,
    PUBLISHED,
    REQUESTED,
    SEATED,
    UNCONFIRMED,
    WAITING,
    Event,
    Registration,
    Series,
)
from shared import ratelimit
from shared.config import get_settings
from shared.database import engine, read_connection, utcnow
from shared.errors import Conflict, TooMany

#: Most confirmation mails to one address per series in 24 hours (anti mail-bomb).
CONFIRMATIONS_PER_ADDRESS_PER_DAY = 5

#: How long a client that registered too often waits (the allowance is per hour).
RETRY_AFTER_SECONDS = 3600


class RegistrationClosed(Conflict):
    """None of the dates asked for is open any more."""


class TooManyRegistrations(TooMany):
    """Too many registrations from one client."""


def check_client_allowance(ip: str) -> None:
    """TooManyRegistrations when this client registered too often this hour."""
    if not ratelimit.hit(f"event-ip:{ip}", get_settings().signups_per_ip_per_hour, 3600):
        raise TooManyRegistrations(
            "Too many registrations from your network. Please try again in an hour.",
            retry_after=RETRY_AFTER_SECONDS,
        )


def register(series: Series, form: RegistrationForm, open_ids: Iterable[int]) -> None:
    """Ask for places at ``form.event_ids``: the dates not held yet are requested and a
    confirmation mail goes out. Says nothing back, so the form tells no one who else
    registered."""
    if not set(form.event_ids) <= set(open_ids):
        raise RegistrationClosed("Registration for these dates has closed.")
    try:
        outbox = _register(series, form)
    except sa.exc.IntegrityError:
        # The same address sent the form twice at once (a double click): the other
        # request made the row first, so this one finds it now.
        outbox = _register(series, form)
    store.hand_over(outbox)


def _register(series: Series, form: RegistrationForm) -> list[int]:
    """One attempt at :func:`register`'s transaction; the outbox ids it queued."""
    key = f"event-confirm:{series.id}:{form.email_key}"
    now = utcnow()
    with engine("events").begin() as conn:
        table = store.registrations
        found = conn.execute(
            sa.select(table.c.id, table.c.confirm_nonce, table.c.status).where(
                table.c.series_id == series.id, table.c.email_key == form.email_key
            )
        ).first()
        details = {
            "email": form.email,
            "name": form.name,
            "organisation": form.organisation,
            "municipality": form.municipality,
            "language": form.language,
            "requested_at": now,
        }
        if found is None:
            registration_id = int(
                conn.execute(
                    table.insert().values(
                        **details,
                        series_id=series.id,
                        email_key=form.email_key,
                        status=UNCONFIRMED,
                        confirm_nonce=store.new_secret(),
                        manage_key=store.new_secret(),
                        created_at=now,
                    )
                ).inserted_primary_key[0]
            )
        else:
            registration_id = found.id
            # An outstanding nonce stays, so the earlier mail's link keeps working. A
            # confirmed registration's details change only through its own page: the
            # form is open to anyone who knows the address.
            nonce = found.confirm_nonce or store.new_secret()
            if found.status == CONFIRMED:
                details = {"requested_at": now}
            conn.execute(
                table.update().where(table.c.id == found.id).values(**details, confirm_nonce=nonce)
            )
        held = {seat.event_id: seat.status for seat in store.seats_of(conn, registration_id)}
        # In the order of the dates' ids, as lock_event takes them: a new seat's foreign
        # key share-locks its date, which must not cross a place change the other way.
        asked = sorted(i for i in form.event_ids if held.get(i) not in ACTIVE_SEATS)
        for event_id in asked:
            values = {"status": REQUESTED, "queued_at": now, "updated_at": now, "reminded_at": None}
            if event_id in held:
                _update_seat(conn, registration_id, event_id, held[event_id], **values)
            else:
                conn.execute(
                    store.seats.insert().values(
                        **values, registration_id=registration_id, event_id=event_id
                    )
                )
        awaiting = asked or [i for i, status in held.items() if status == REQUESTED]
        outbox = []
        if awaiting and ratelimit.hit(key, CONFIRMATIONS_PER_ADDRESS_PER_DAY, 86400):
            outbox.append(store.queue_mail(conn, registration_id, "confirm"))
    return outbox


def lock_event(conn: Connection, event_id: int) -> Event:
    """The event, its row locked for the rest of the transaction on PostgreSQL (SQLite
    runs one writer at a time anyway). Whoever changes its places locks it first, events
    in the order of their ids, so two changes never interleave nor deadlock."""
    conn.execute(
        sa.select(store.events.c.id).where(store.events.c.id == event_id).with_for_update()
    )
    return schedule.get_event(event_id, conn)


def _update_seat(
    conn: Connection, registration_id: int, event_id: int, expected: str | None, **values: object
) -> bool:
    """Change a seat if it is still in the ``expected`` state (any with None): whether it
    was. Every change checks, so one made twice at once happens once."""
    query = store.seats.update().where(
        store.seats.c.registration_id == registration_id, store.seats.c.event_id == event_id
    )
    if expected is not None:
        query = query.where(store.seats.c.status == expected)
    return conn.execute(query.values(**values)).rowcount == 1


def _set_seat(
    conn: Connection, registration_id: int, event_id: int, expected: str, status: str
) -> bool:
    now = utcnow()
    # A place on the waiting list counts from the moment it was taken.
    since = {"queued_at": now} if status == WAITING else {}
    return _update_seat(
        conn, registration_id, event_id, expected, status=status, updated_at=now, **since
    )


@dataclass(frozen=True)
class MovedUp:
    """Someone who got a place from the waiting list, and the mail telling them."""

    registration_id: int
    outbox_id: int


def fill_free_seats(conn: Connection, event_id: int, now: datetime) -> list[MovedUp]:
    """Give free places of an event to the longest waiting people, with a mail each.
    Nothing moves up once the event has begun or was cancelled. Locks the event: every
    change of its places runs one at a time."""
    event = lock_event(conn, event_id)
    if event.cancelled_at is not None or event.starts_at <= now or event.seats_left == 0:
        return []
    query = (
        sa.select(store.seats.c.registration_id)
        .where(store.seats.c.event_id == event_id, store.seats.c.status == WAITING)
        .order_by(store.seats.c.queued_at, store.seats.c.id)
    )
    if event.seats_left is not None:
        query = query.limit(event.seats_left)
    moved = []
    for registration_id in conn.execute(query).scalars().all():
        if _set_seat(conn, registration_id, event_id, WAITING, SEATED):
            mail = store.queue_mail(conn, registration_id, "moved_up", event_id=event_id)
            moved.append(MovedUp(registration_id, mail))
    return moved


def confirm(token: str) -> Registration:
    """Confirm the registration behind ``token`` (idempotent): each requested date gets a
    place, or one on the waiting list when it is full; the confirmation mail says which."""
    registration = links.registration_to_confirm(token)
    now = utcnow()
    outbox = []
    with engine("events").begin() as conn:
        table = store.registrations
        # Conditional: two clicks at once confirm (and mail) only once.
        done = conn.execute(
            table.update()
            .where(
                table.c.id == registration.id, table.c.confirm_nonce == registration.confirm_nonce
            )
            .values(
                status=CONFIRMED, confirm_nonce=None, confirmed_at=registration.confirmed_at or now
            )
        )
        if done.rowcount == 1 and registration.confirm_nonce is not None:
            # A date begun, cancelled or taken off the site meanwhile gives no place.
            live = schedule.get_series(registration.series_id).state == PUBLISHED
            # Events locked in one order (their ids) by everyone: no deadlock between two.
            requested = sorted(
                (s for s in store.seats_of(conn, registration.id) if s.status == REQUESTED),
                key=lambda seat: seat.event_id,
            )
            for seat in requested:
                event = lock_event(conn, seat.event_id)
                if event.cancelled_at is not None or event.starts_at <= now or not live:
                    status = CLOSED
                elif event.seats_left is None or (event.seats_left > 0 and not event.waiting):
                    status = SEATED
                else:
                    status = WAITING
                _set_seat(conn, registration.id, seat.event_id, REQUESTED, status)
            outbox.append(store.queue_mail(conn, registration.id, "registered"))
        confirmed = store.registration(conn, registration.id)
    store.hand_over(outbox)
    assert confirmed is not None
    return confirmed


@dataclass(frozen=True)
class Holding:
    """One date of a registration as its page shows it."""

    event: Event
    status: str
    #: Place on the waiting list (1 = next), for waiting seats.
    position: int | None = None


def holdings(registration: Registration) -> list[Holding]:
    """What a registration holds, date by date in time order."""
    with read_connection("events") as conn:
        found = []
        for seat in store.seats_of(conn, registration.id):
            event = schedule.get_event(seat.event_id, conn)
            position = None
            if seat.status == WAITING:
                position = (
                    1
                    + conn.execute(
                        sa.select(sa.func.count()).where(
                            store.seats.c.event_id == seat.event_id,
                            store.seats.c.status == WAITING,
                            store.seats.c.queued_at < seat.queued_at,
                        )
                    ).scalar_one()
                )
            found.append(Holding(event, seat.status, position))
    return sorted(found, key=lambda holding: (holding.event.starts_at, holding.event.id))


def cancellable(holding: Holding, now: datetime) -> bool:
    """Whether one can still give this date back: held, not begun, not cancelled by the
    organisers (a past date stays on the attendance list)."""
    return (
        holding.status in ACTIVE_SEATS
        and holding.event.cancelled_at is None
        and holding.event.starts_at > now
    )


def cancel(registration: Registration, event_ids: Iterable[int]) -> list[int]:
    """Give back the places (or waiting-list places) at ``event_ids``; whoever waits
    longest moves up. Returns the dates actually given back; a mail confirms them."""
    now = utcnow()
    wanted = sorted(set(event_ids))
    outbox: list[int] = []
    given_back: list[int] = []
    with engine("events").begin() as conn:
        for event_id in wanted:  # the one locking order (see lock_event)
            event = lock_event(conn, event_id)
            if event.cancelled_at is not None or event.starts_at <= now:
                continue
            # Read after the lock: a place given meanwhile is seen as the place it is.
            seat = conn.execute(
                sa.select(store.seats.c.status).where(
                    store.seats.c.registration_id == registration.id,
                    store.seats.c.event_id == event_id,
                )
            ).scalar()
            if seat not in ACTIVE_SEATS or not _set_seat(
                conn, registration.id, event_id, seat, CANCELLED
            ):
                continue
            given_back.append(event_id)
            if seat == SEATED:
                outbox += [moved.outbox_id for moved in fill_free_seats(conn, event_id, now)]
        if given_back and registration.status == CONFIRMED:
            outbox.append(
                store.queue_mail(conn, registration.id, "cancelled", event_ids=given_back)
            )
    store.hand_over(outbox)
    return given_back
