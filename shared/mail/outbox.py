"""The outbox: every mail is a row that is claimed, sent exactly once, and settled.

One engine for every outbox table (the subscribers' mails, the newsletter's issue
recipients): the table is a parameter, the states and the retry policy are the same.

1. A sender *claims* rows for a lease: rows whose previous owner's lease ran out first,
   then queued rows that are due, in id order.
2. Per message, the row is marked *committed* after the whole message went to the SMTP
   server but *before* the final dot (see :meth:`shared.mail.transport.SMTPTransport.send`).
   A server discards a message whose dot never came, so a sender killed before the mark
   sent nothing (its rows come back when the lease ends) and one killed after it has
   sent the message. Committed rows are never sent again.
3. The server's 250 makes the row *delivered*; a temporary failure puts it back in the
   queue with a growing delay until :data:`MAX_ATTEMPTS`; a permanent one (what an SMTP
   server said) makes it *failed*; a row that no longer needs sending is *skipped*.

The engine's columns are :func:`outbox_columns`; each table adds what its service needs.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shared.database import UTCDateTime, engine, utcnow
from shared.mail.transport import (
    Abandoned,
    Delivery,
    PermanentMailError,
    SMTPTransport,
    TemporaryMailError,
    thread_transport,
)

logger = logging.getLogger(__name__)

#: The states of a row. ``claimed``: a sender owns it until ``claimed_until``;
#: ``committed``: the message went out up to the final dot, so it counts as sent.
QUEUED, CLAIMED, COMMITTED, DELIVERED, FAILED, SKIPPED = (
    "queued",
    "claimed",
    "committed",
    "delivered",
    "failed",
    "skipped",
)
OUTBOX_STATES = (QUEUED, CLAIMED, COMMITTED, DELIVERED, FAILED, SKIPPED)

#: Attempts per row before a temporary failure counts as final.
MAX_ATTEMPTS = 10

#: Delay after a temporary failure: 15 s, doubling, at most an hour; ten attempts span
#: about two hours, long enough for greylisting and short outages of a relay, and the
#: first retry comes soon enough for someone waiting for a confirmation mail.
RETRY_BASE_SECONDS, RETRY_MAX_SECONDS = 15, 3600

#: Longest error text kept on a row.
ERROR_LENGTH = 1000


def outbox_columns() -> list[sa.Column]:
    """The columns the engine reads and writes, for a service's outbox table."""
    return [
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("not_before", UTCDateTime),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("claimed_until", UTCDateTime),
        sa.Column("done_at", UTCDateTime),
        sa.Column("error", sa.Text),
    ]


def retry_delay(attempts: int) -> timedelta:
    """How long a row waits after its ``attempts``-th attempt failed temporarily."""
    return timedelta(seconds=min(RETRY_BASE_SECONDS * 2 ** (attempts - 1), RETRY_MAX_SECONDS))


@dataclass(frozen=True)
class Outgoing:
    """One outbox row's message, ready to go: envelope sender, recipient, bytes, and what
    to do once it counts as sent (a log entry)."""

    envelope_from: str
    recipient: str
    data: bytes
    on_sent: Callable[[], None] | None = None


@dataclass(frozen=True)
class Delivered:
    """What :meth:`Outbox.deliver_one` did: the row's new state, and for QUEUED the
    engine's delay until the next attempt."""

    state: str
    retry_after: timedelta | None = None


def new_owner() -> str:
    """An id for one sender, written into the rows it claims."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Outbox:
    """The engine for one outbox ``table`` in the database of ``owner_service``."""

    table: sa.Table
    owner_service: str

    def claim(
        self,
        owner: str,
        scope: sa.ColumnElement[bool],
        limit: int,
        lease_seconds: float,
        now: datetime | None = None,
    ) -> list[sa.Row]:
        """Take up to ``limit`` sendable rows within ``scope`` for ``owner``: rows whose
        sender's lease ran out (or that ``owner`` itself still holds from an attempt that
        failed), then queued rows that are due, in id order.

        Each kind is one equality on the status within the scope, so an index on
        (scope, status) is walked in id order instead of scanning the rows already
        done: the cost per claim stays flat in the outbox's size.
        """
        t = self.table
        now = now or utcnow()
        expired = sa.and_(
            scope,
            t.c.status == CLAIMED,
            sa.or_(t.c.claimed_until < now, t.c.claimed_by == owner),
        )
        due = sa.and_(
            scope, t.c.status == QUEUED, sa.or_(t.c.not_before.is_(None), t.c.not_before <= now)
        )
        with engine(self.owner_service).begin() as conn:
            ids: list[int] = []
            for condition in (expired, due):
                ids += (
                    conn.execute(
                        sa.select(t.c.id).where(condition).order_by(t.c.id).limit(limit - len(ids))
                    )
                    .scalars()
                    .all()
                )
                if len(ids) >= limit:
                    break
            if not ids:
                return []
            conn.execute(
                t.update()
                .where(t.c.id.in_(ids), sa.or_(expired, due))
                .values(
                    status=CLAIMED,
                    claimed_by=owner,
                    claimed_until=now + timedelta(seconds=lease_seconds),
                )
            )
            return list(
                conn.execute(
                    sa.select(t)
                    .where(t.c.id.in_(ids), t.c.claimed_by == owner, t.c.status == CLAIMED)
                    .order_by(t.c.id)
                )
            )

    def deliver_one(
        self, outbox_id: int, lease_seconds: float, prepare: Callable[[sa.Row], Outgoing | str]
    ) -> Delivered:
        """Send the row ``outbox_id`` exactly once, on this thread's SMTP connection.

        ``prepare`` turns the claimed row into its message, or into the reason it need
        not go out any more (the row is then skipped). The state returned is "not
        claimed" when the row was sent, failed, not yet due or owned by another sender.
        """
        owner = new_owner()
        claimed = self.claim(owner, self.table.c.id == outbox_id, 1, lease_seconds)
        if not claimed:
            return Delivered("not claimed")
        [row] = claimed
        try:
            outgoing = prepare(row)
        except Exception as exc:
            # A mail that cannot be composed (a template error, a row its service cannot
            # read) counts as a failed attempt: it is tried again with the engine's
            # delay and ends as failed, instead of coming back with every sweep.
            logger.exception("outbox %s row %s could not be composed", self.table.name, row.id)
            state = self._retry_or_fail(row, owner, f"could not be composed: {exc!r}")
            return Delivered(state, retry_delay(row.attempts + 1) if state == QUEUED else None)
        if isinstance(outgoing, str):
            self.skip([row.id], owner, outgoing)
            return Delivered(SKIPPED)
        message = (outgoing.envelope_from, outgoing.recipient, outgoing.data)
        with engine(self.owner_service).connect() as conn:
            state = self.send(thread_transport(), conn, row, owner, message)
        if state == DELIVERED:
            self.settle([row.id], owner, status=DELIVERED)
        if state in (DELIVERED, COMMITTED) and outgoing.on_sent is not None:
            outgoing.on_sent()
        if state == QUEUED:
            return Delivered(state, retry_delay(row.attempts + 1))
        return Delivered(state)

    def settle(self, ids: list[int], owner: str, **values: object) -> None:
        """Set ``values`` on those of ``ids`` that ``owner`` still holds."""
        if not ids:
            return
        t = self.table
        with engine(self.owner_service).begin() as conn:
            conn.execute(
                t.update().where(t.c.id.in_(ids), t.c.claimed_by == owner).values(**values)
            )

    def skip(self, ids: list[int], owner: str, reason: str) -> None:
        """Rows that no longer need sending (the person left, the mail is obsolete)."""
        self.settle(ids, owner, status=SKIPPED, done_at=utcnow(), error=reason[:ERROR_LENGTH])

    def extend(
        self, owner: str, scope: sa.ColumnElement[bool], lease_seconds: float, now: datetime
    ) -> None:
        """Renew the lease of every row ``owner`` holds in ``scope`` (its heartbeat)."""
        t = self.table
        with engine(self.owner_service).begin() as conn:
            conn.execute(
                t.update()
                .where(scope, t.c.claimed_by == owner, t.c.status == CLAIMED)
                .values(claimed_until=now + timedelta(seconds=lease_seconds))
            )

    def release(self, owner: str, scope: sa.ColumnElement[bool]) -> None:
        """Give back what ``owner`` still holds in ``scope`` (stopping midway)."""
        t = self.table
        with engine(self.owner_service).begin() as conn:
            conn.execute(
                t.update()
                .where(scope, t.c.claimed_by == owner, t.c.status == CLAIMED)
                .values(status=QUEUED, claimed_by=None, claimed_until=None)
            )

    def postpone(self, ids: list[int], owner: str, delay: timedelta) -> None:
        """Put rows back in the queue for later without counting an attempt (the
        subscribers service could not be asked whether they are still subscribed)."""
        self.settle(ids, owner, status=QUEUED, claimed_by=None, not_before=utcnow() + delay)

    @cached_property
    def _commit_row(self) -> sa.Update:
        # Built once: the per-message commit reuses its compiled form.
        t = self.table
        return (
            t.update()
            .where(
                t.c.id == sa.bindparam("row"),
                t.c.claimed_by == sa.bindparam("owner"),
                t.c.status == CLAIMED,
            )
            .values(status=COMMITTED, done_at=sa.bindparam("done"), attempts=sa.bindparam("n"))
        )

    def send(
        self,
        transport: SMTPTransport,
        connection: Connection,
        row: sa.Row,
        owner: str,
        message: tuple[str, str, bytes],
    ) -> str:
        """Send one claimed row's message (envelope sender, recipient, bytes) exactly once
        and return the row's new state.

        The row is committed on ``connection`` (the sender's own, so no pool checkout
        per message) just before the final dot. DELIVERED is returned but not yet
        written: callers mark delivered rows in one statement per batch (committed rows
        already count as sent). CLAIMED means another sender took the row over. A
        database error in the commit propagates; the row stays claimed and returns to
        the queue when the lease ends.
        """
        envelope_from, recipient, data = message
        attempts = row.attempts + 1

        def commit() -> bool:
            with connection.begin():
                result = connection.execute(
                    self._commit_row,
                    {"row": row.id, "owner": owner, "done": utcnow(), "n": attempts},
                )
            return result.rowcount == 1

        try:
            delivery = transport.send(envelope_from, recipient, data, commit)
        except Abandoned:
            return CLAIMED
        except TemporaryMailError as exc:
            return self._retry_or_fail(row, owner, str(exc))
        except PermanentMailError as exc:
            self.settle(
                [row.id],
                owner,
                status=FAILED,
                done_at=utcnow(),
                error=str(exc)[:ERROR_LENGTH],
                attempts=attempts,
            )
            return FAILED
        # COMMITTED: the dot went out, the reply did not come back; it counts as sent.
        return DELIVERED if delivery == Delivery.ACCEPTED else COMMITTED

    def _retry_or_fail(self, row: sa.Row, owner: str, error: str) -> str:
        attempts = row.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            self.settle(
                [row.id],
                owner,
                status=FAILED,
                done_at=utcnow(),
                error=f"gave up after {attempts} attempts: {error}"[:ERROR_LENGTH],
                attempts=attempts,
            )
            return FAILED
        self.settle(
            [row.id],
            owner,
            status=QUEUED,
            claimed_by=None,
            claimed_until=None,
            attempts=attempts,
            error=error[:ERROR_LENGTH],
            not_before=utcnow() + retry_delay(attempts),
        )
        return QUEUED

    def stale(self, older_than: timedelta, created: sa.Column) -> list[int]:
        """Rows that should be with a sender but may have lost their queue message:
        queued and due for longer than ``older_than`` (``created`` when never tried),
        or claimed by a sender whose lease ran out."""
        t = self.table
        now = utcnow()
        waiting_since = sa.func.coalesce(t.c.not_before, created)
        with engine(self.owner_service).connect() as conn:
            return list(
                conn.execute(
                    sa.select(t.c.id).where(
                        sa.or_(
                            sa.and_(t.c.status == QUEUED, waiting_since < now - older_than),
                            sa.and_(t.c.status == CLAIMED, t.c.claimed_until < now),
                        )
                    )
                ).scalars()
            )
