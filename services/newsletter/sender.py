"""One sender: an SMTP connection working through an issue's outbox.

Senders are Dramatiq actors (see actors.py), at most KGI_NEWSLETTER_SENDERS per issue:
each first takes a seat (:mod:`services.newsletter.seats`). It claims batches of rows
through the outbox engine (:mod:`shared.mail.outbox`), asks the subscribers service which
of them are still subscribed (those who left are skipped), and sends each message exactly
once, at the shared sending pace. Its heartbeat renews its seat and its rows' lease in the
database, so a dead sender's rows are taken over a lease after it died; too many failures
in a row pause the issue.

A database or Redis error anywhere in a send loses nothing: before the final dot the SMTP
transaction is abandoned (the server discards it) and the error ends the actor, whose
message Dramatiq retries with the same owner id, so the retried sender takes its seat and
rows straight back. Only what an SMTP server said makes a row *failed*.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from datetime import datetime, timedelta

import sqlalchemy as sa

from services.newsletter import peers, process_share, seats
from services.newsletter.dispatch import finish_if_done, pause
from services.newsletter.render import Recipient, RenderedIssue, personalise, rendered_of
from services.newsletter.store import SENDING, issue_of, outbox
from shared.config import get_settings
from shared.database import engine, utcnow
from shared.mail import signing
from shared.mail.message import ISSUE, PreparedMessage, Unsubscribe
from shared.mail.outbox import COMMITTED, DELIVERED, FAILED, QUEUED, Outbox, new_owner
from shared.mail.transport import SMTPTransport
from shared.ratelimit import SendingRate

logger = logging.getLogger("kgi.newsletter.sender")

#: Most rows a sender claims at a time. At a slow pace it claims fewer (see
#: Sender.batch_size), so that it looks for a dead sender's rows about once a heartbeat.
BATCH_SIZE = 100


#: A sender works this long, then hands over to a fresh actor message (fairness, and so a
#: pause or a new deployment takes effect).
SENDER_BUDGET_SECONDS = 120


#: How long a batch waits when the subscribers service cannot say who is still
#: subscribed (no attempt is counted: nothing was sent). Short: the usual cause is a
#: restart of that service or of its database, over within seconds.
PEER_RETRY_SECONDS = 5


#: Failures in a row (no success between) that pause an issue automatically.
MAX_CONSECUTIVE_FAILURES = 25


#: The issue recipients' outbox, worked by the shared outbox engine.
OUTBOX = Outbox(outbox, "newsletter")


def claim_batch(issue_id: int, sender: str, now: datetime, size: int = BATCH_SIZE) -> list[sa.Row]:
    """Take up to ``size`` sendable rows of the issue for ``sender`` (see Outbox.claim)."""
    return OUTBOX.claim(sender, outbox.c.issue_id == issue_id, size, seats.lease_seconds(), now)


class SeatLost(Exception):
    """The sender's heartbeat came too late: it was presumed dead and replaced."""


class Sender:
    """One sender: one SMTP connection working through an issue's outbox.

    ``owner`` names the sender in its seat and rows; an actor passes the one its message
    carries, so a retried message continues where it failed.
    """

    def __init__(self, issue_id: int, owner: str | None = None) -> None:
        self.issue_id = issue_id
        self.id = owner or new_owner()
        self.transport = SMTPTransport(get_settings().effective_smtp_url)
        settings = get_settings()
        # One pace for all senders of all workers; each keeps its share without Redis.
        self.limiter = SendingRate(
            "newsletter",
            settings.newsletter_rate_per_second,
            settings.newsletter_rate_per_hour,
            share=settings.newsletter_senders,
        )
        self.consecutive_failures = 0
        self._next_beat = 0.0
        # Its own connection for the per-message commit: no pool checkout per message.
        self.connection = engine("newsletter").connect()

    def batch_size(self) -> int:
        """Rows per claim: about one heartbeat's worth at this sender's share of the
        pace (at least one), at most BATCH_SIZE."""
        pace = self.limiter.share_per_second
        if pace is None:
            return BATCH_SIZE
        return max(1, min(BATCH_SIZE, math.ceil(pace * seats.heartbeat_seconds())))

    def keep_alive(self) -> None:
        """The heartbeat, when one is due: renew the seat and the claimed rows' lease.
        Raises SeatLost when the seat went to another sender meanwhile."""
        if time.monotonic() < self._next_beat:
            return
        now = utcnow()
        if not seats.renew(self.issue_id, self.id, now):
            raise SeatLost()
        OUTBOX.extend(self.id, outbox.c.issue_id == self.issue_id, seats.lease_seconds(), now)
        self._next_beat = time.monotonic() + seats.heartbeat_seconds()

    def run(self, budget_seconds: float = SENDER_BUDGET_SECONDS, hops: int = 0) -> str:
        """Send until the outbox is empty, the issue stops, or the budget is used up.

        Returns the issue's state when it stopped being sent, ``done``, ``idle`` (rows
        wait for later), ``budget``, ``surplus`` (every seat is held by a living
        sender, or this one's was given away while it was late), or ``elsewhere`` (this
        process runs its share of the issue's senders already: see
        :mod:`services.newsletter.process_share`); ``hops`` says how often it was so.
        """
        insist = hops >= process_share.MOST_HOPS
        with process_share.place(self.issue_id, insist) as placed:
            if placed:
                return self._run_seated(budget_seconds)
        self._close()
        # Its own seat counts as free: a retried sender whose seat still lives takes it back.
        others = seats.alive(self.issue_id, other_than=self.id)
        return "elsewhere" if others < get_settings().newsletter_senders else "surplus"

    def _run_seated(self, budget_seconds: float) -> str:
        if seats.take(self.issue_id, self.id) is None:
            self._close()
            return "surplus"
        deadline = time.monotonic() + budget_seconds
        self._next_beat = time.monotonic() + seats.heartbeat_seconds()
        issue = issue_of(self.issue_id)
        message = PreparedMessage(issue.subject, ISSUE, campaign=f"issue{issue.id}")
        rendered = rendered_of(issue)
        try:
            while time.monotonic() < deadline:
                self.keep_alive()
                state = issue_of(self.issue_id).state
                if state != SENDING:
                    return state
                batch = claim_batch(self.issue_id, self.id, utcnow(), self.batch_size())
                if not batch:
                    return "done" if finish_if_done(self.issue_id) else "idle"
                self._send_batch(batch, message, rendered)
            return "budget"
        except SeatLost:
            logger.warning("issue %s: sender %s was replaced; stopping", self.issue_id, self.id)
            return "surplus"
        finally:
            # After a database error these may fail too: the seat and rows then come free
            # when their lease runs out (or at once, when this message is retried).
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                seats.leave(self.issue_id, self.id)
            self._close()

    def _close(self) -> None:
        self.transport.close()
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            self.connection.close()

    def _send_batch(
        self, batch: list[sa.Row], message: PreparedMessage, rendered: RenderedIssue
    ) -> None:
        try:
            subscribed = peers.still_confirmed([row.subscriber_id for row in batch])
        except peers.PeerUnavailable as exc:
            logger.warning("issue %s: %s; retrying the batch later", self.issue_id, exc)
            OUTBOX.postpone(
                [row.id for row in batch], self.id, timedelta(seconds=PEER_RETRY_SECONDS)
            )
            return
        gone = [row.id for row in batch if row.subscriber_id not in subscribed]
        OUTBOX.skip(gone, self.id, "unsubscribed before their turn")
        delivered: list[int] = []
        sendable = [row for row in batch if row.subscriber_id in subscribed]
        for n, row in enumerate(sendable):
            # Look at the issue now and then, so a pause or cancel takes effect within seconds.
            if n and n % 20 == 0 and issue_of(self.issue_id).state != SENDING:
                break
            self.keep_alive()
            self.limiter.wait(self.keep_alive)
            outcome = self._send_one(row, message, rendered)
            if outcome == DELIVERED:
                delivered.append(row.id)
            if self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                pause(
                    self.issue_id,
                    "system",
                    f"{self.consecutive_failures} failures in a row; last: {row.email}",
                )
                break
        # Committed rows count as sent already; "delivered" only adds the server's 250.
        OUTBOX.settle(delivered, self.id, status=DELIVERED)
        # Whatever this sender still holds (paused midway) goes back to the queue.
        OUTBOX.release(self.id, outbox.c.issue_id == self.issue_id)

    def _send_one(self, row: sa.Row, message: PreparedMessage, rendered: RenderedIssue) -> str:
        html, text = personalise(
            rendered, Recipient(row.name, row.unsubscribe_url, row.preferences_url)
        )
        data = message.render(
            row.email,
            row.name,
            text,
            html,
            Unsubscribe(row.unsubscribe_url, signing.unsubscribe_mailto(row.subscriber_id)),
            message_id=signing.issue_message_id(self.issue_id, row.id, message.domain),
        )
        envelope = signing.envelope_sender(row.subscriber_id, self.issue_id)
        state = OUTBOX.send(
            self.transport, self.connection, row, self.id, (envelope, row.email, data)
        )
        if state in (QUEUED, FAILED):
            self.consecutive_failures += 1
        elif state in (DELIVERED, COMMITTED):
            self.consecutive_failures = 0
        return state
