"""One sender: an SMTP connection working through an issue's outbox.

Senders are Dramatiq actors (see actors.py), several per issue. Each claims batches of
rows for a lease through the outbox engine (:mod:`shared.mail.outbox`), asks the
subscribers service which of them are still subscribed (those who left are skipped),
and sends each message exactly once, at the shared sending pace. It keeps a heartbeat
while it works, so the scheduler can tell a dead sender from a busy one; too many
failures in a row pause the issue.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime, timedelta

import redis
import sqlalchemy as sa

from services.newsletter import peers
from services.newsletter.dispatch import HEARTBEAT_SECONDS, finish_if_done, pause, sender_key
from services.newsletter.render import Recipient, RenderedIssue, personalise, rendered_of
from services.newsletter.store import SENDING, issue_of, outbox
from shared.config import get_settings
from shared.database import engine, utcnow
from shared.mail import return_paths
from shared.mail.message import ISSUE, PreparedMessage, Unsubscribe
from shared.mail.outbox import COMMITTED, DELIVERED, FAILED, QUEUED, Outbox, new_owner
from shared.mail.transport import SMTPTransport
from shared.ratelimit import SendingRate
from shared.redis_client import get_redis

logger = logging.getLogger("kgi.newsletter.sender")

#: Rows a sender claims at a time.
BATCH_SIZE = 100


#: How long claimed rows belong to a sender before another may take them over (a sender
#: killed mid-batch); longer than a batch takes even at a slow relay.
LEASE_SECONDS = 120


#: A sender works this long, then hands over to a fresh actor message (fairness, and so a
#: pause or a new deployment takes effect).
SENDER_BUDGET_SECONDS = 120


#: How long a batch waits when the subscribers service cannot say who is still
#: subscribed (no attempt is counted: nothing was sent).
PEER_RETRY_SECONDS = 30


#: Failures in a row (no success between) that pause an issue automatically.
MAX_CONSECUTIVE_FAILURES = 25


#: The issue recipients' outbox, worked by the shared outbox engine.
OUTBOX = Outbox(outbox, "newsletter")


def lease_seconds() -> int:
    """The claim lease: KGI_NEWSLETTER_LEASE_SECONDS, else LEASE_SECONDS."""
    return get_settings().newsletter_lease_seconds or LEASE_SECONDS


def _heartbeat(issue_id: int, sender: str) -> None:
    with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
        get_redis().set(sender_key(issue_id, sender), 1, ex=HEARTBEAT_SECONDS)


def _stop_heartbeat(issue_id: int, sender: str) -> None:
    with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
        get_redis().delete(sender_key(issue_id, sender))


def claim_batch(issue_id: int, sender: str, now: datetime) -> list[sa.Row]:
    """Take up to BATCH_SIZE sendable rows of the issue for ``sender`` (see Outbox.claim)."""
    return OUTBOX.claim(sender, outbox.c.issue_id == issue_id, BATCH_SIZE, lease_seconds(), now)


class Sender:
    """One sender: one SMTP connection working through an issue's outbox."""

    def __init__(self, issue_id: int) -> None:
        self.issue_id = issue_id
        self.id = new_owner()
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
        # Its own connection for the per-message commit: no pool checkout per message.
        self.connection = engine("newsletter").connect()

    def run(self, budget_seconds: float = SENDER_BUDGET_SECONDS) -> str:
        """Send until the outbox is empty, the issue stops, or the budget is used up."""
        deadline = time.monotonic() + budget_seconds
        issue = issue_of(self.issue_id)
        message = PreparedMessage(issue.subject, ISSUE, campaign=f"issue{issue.id}")
        rendered = rendered_of(issue)
        try:
            while time.monotonic() < deadline:
                _heartbeat(self.issue_id, self.id)
                state = issue_of(self.issue_id).state
                if state != SENDING:
                    return state
                batch = claim_batch(self.issue_id, self.id, utcnow())
                if not batch:
                    return "done" if finish_if_done(self.issue_id) else "idle"
                self._send_batch(batch, message, rendered)
            return "budget"
        finally:
            _stop_heartbeat(self.issue_id, self.id)
            self.transport.close()
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
            self.limiter.wait()
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
            Unsubscribe(row.unsubscribe_url, return_paths.unsubscribe_mailto(row.subscriber_id)),
            message_id=return_paths.issue_message_id(self.issue_id, row.id, message.domain),
        )
        envelope = return_paths.envelope_sender(row.subscriber_id, self.issue_id)
        state = OUTBOX.send(
            self.transport, self.connection, row, self.id, (envelope, row.email, data)
        )
        if state in (QUEUED, FAILED):
            self.consecutive_failures += 1
        elif state in (DELIVERED, COMMITTED):
            self.consecutive_failures = 0
        return state
