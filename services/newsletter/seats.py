"""Sender seats: how many senders work on an issue at once, and which of them are alive.

An issue being sent has ``KGI_NEWSLETTER_SENDERS`` seats. A sender takes a free seat
before it sends anything and leaves it when it stops. While it works it renews its seat
and the lease of the rows it claimed, together, every :func:`heartbeat_seconds`: that is
its heartbeat, kept in the newsletter's database. A sender that dies (SIGKILL, a lost
machine, a worker pool restarted) stops renewing; :func:`lease_seconds` after its last
beat its seat is free and its rows are due for the next claim, so the other senders take
them over, and the scheduler replaces it (:func:`services.newsletter.dispatch.supervise`).

Why the database and not Redis: the rows' lease lives there already, and a heartbeat in
Redis vanishes with Redis. When it did, the scheduler counted no living sender and
started more, while the running ones kept going: each paced itself to its share of the
rate (see :class:`shared.ratelimit.SendingRate`), but there were more shares than the
configured number, so the issue went out at two to three times the rate. Seats bound the
senders by what the database says, whatever Redis does.

A sender's owner id survives Dramatiq's retries of its message (it is an argument of the
message), so a sender that failed on a database error and is retried gets its own seat
and rows back at once instead of waiting for its old lease to run out.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from services.newsletter.store import sender_seats
from shared.config import get_settings
from shared.database import engine, read_connection, utcnow

#: How long a sender's seat and claimed rows outlive its last heartbeat: the longest a
#: dead sender's rows wait before another sender may take them over.
LEASE_SECONDS = 10

#: Heartbeats per lease: a sender beats this often within its lease, so one late beat (a
#: slow SMTP reply, a short database hiccup) does not cost it its seat.
BEATS_PER_LEASE = 3


def lease_seconds() -> float:
    """The lease of seats and claimed rows: KGI_NEWSLETTER_LEASE_SECONDS, else LEASE_SECONDS."""
    return get_settings().newsletter_lease_seconds or LEASE_SECONDS


def heartbeat_seconds() -> float:
    """How often a working sender renews its seat and rows."""
    return lease_seconds() / BEATS_PER_LEASE


def take(issue_id: int, owner: str, now: datetime | None = None) -> int | None:
    """A seat for ``owner`` on the issue (the one it holds already, else a free one, else
    one whose holder's lease ran out); None when all are held by living senders."""
    now = now or utcnow()
    until = now + timedelta(seconds=lease_seconds())
    t = sender_seats
    with engine("newsletter").begin() as conn:
        held = conn.execute(
            sa.select(t.c.seat, t.c.owner, t.c.alive_until).where(t.c.issue_id == issue_id)
        ).all()
        by_seat = {row.seat: row for row in held}
        mine = [row.seat for row in held if row.owner == owner]
        free = [
            seat
            for seat in range(get_settings().newsletter_senders)
            if seat not in by_seat
            or by_seat[seat].owner is None
            or by_seat[seat].alive_until is None
            or by_seat[seat].alive_until < now
        ]
        for seat in mine + free:
            if seat in by_seat:
                # The condition again: another sender may have taken it since the read.
                taken = conn.execute(
                    t.update()
                    .where(
                        t.c.issue_id == issue_id,
                        t.c.seat == seat,
                        sa.or_(
                            t.c.owner.is_(None),
                            t.c.owner == owner,
                            t.c.alive_until.is_(None),
                            t.c.alive_until < now,
                        ),
                    )
                    .values(owner=owner, alive_until=until)
                ).rowcount
                if taken == 1:
                    return seat
                continue
            try:
                with conn.begin_nested():
                    conn.execute(
                        t.insert(),
                        {"issue_id": issue_id, "seat": seat, "owner": owner, "alive_until": until},
                    )
                return seat
            except sa.exc.IntegrityError:
                continue  # another sender created this seat first
    return None


def renew(issue_id: int, owner: str, now: datetime | None = None) -> bool:
    """Extend ``owner``'s seat by a lease; False when it no longer holds one (it was
    presumed dead and replaced: it should stop)."""
    now = now or utcnow()
    t = sender_seats
    with engine("newsletter").begin() as conn:
        renewed = conn.execute(
            t.update()
            .where(t.c.issue_id == issue_id, t.c.owner == owner)
            .values(alive_until=now + timedelta(seconds=lease_seconds()))
        ).rowcount
    return renewed == 1


def leave(issue_id: int, owner: str) -> None:
    """Give the seat back (the sender stops)."""
    t = sender_seats
    with engine("newsletter").begin() as conn:
        conn.execute(
            t.update()
            .where(t.c.issue_id == issue_id, t.c.owner == owner)
            .values(owner=None, alive_until=None)
        )


def alive(issue_id: int, now: datetime | None = None, other_than: str | None = None) -> int:
    """How many senders hold a seat of the issue with a heartbeat that has not run out
    (leaving out ``other_than``'s own seat, when it is given)."""
    now = now or utcnow()
    t = sender_seats
    holders = [t.c.owner.is_not(None)] if other_than is None else [t.c.owner != other_than]
    with read_connection("newsletter") as conn:
        return conn.execute(
            sa.select(sa.func.count())
            .select_from(t)
            .where(t.c.issue_id == issue_id, *holders, t.c.alive_until >= now)
        ).scalar_one()
