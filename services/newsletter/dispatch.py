"""Sending an issue to its audience, exactly once per recipient.

1. ``start``: render the issue once, snapshot the confirmed audience into the outbox (one
   row per recipient, one transaction), mark the issue *sending*, start the senders.
2. Senders (Dramatiq actors, each with its own reused SMTP connection) claim batches of
   rows for a lease, ask the subscribers service which of them are still subscribed
   (those who left are skipped), and send.
3. Per message, the row is marked *committed* after the whole message went to the SMTP
   server but *before* the final dot. A server discards a message whose dot never
   arrived, so a sender killed before that commit sent nothing (its rows return after the
   lease), and one killed after it has sent the message (the kernel still delivers the dot
   it was handed). Committed rows are never sent again. This is why a SIGKILL, a restart of
   everything or a Redis restart leaves every recipient with one copy.
4. Temporary failures (4xx, timeouts, dropped connections) go back to the queue with
   backoff; permanent ones (5xx) are recorded. Too many failures in a row pause the issue.
5. When no row is left, the issue is *sent* and the editor gets a summary mail.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
import sqlalchemy as sa

from services.newsletter import peers, store
from services.newsletter.render import Recipient, RenderedIssue, personalise, render_issue
from services.newsletter.store import (
    CANCELLED,
    DRAFT,
    OVERDUE,
    PAUSED,
    SCHEDULED,
    SENDING,
    SENT,
    Issue,
    issues,
    outbox,
)
from shared.config import get_settings
from shared.database import engine, read_connection, utcnow
from shared.errors import Conflict, NotFound
from shared.i18n import translate
from shared.mail import return_paths
from shared.mail.message import ISSUE, SUMMARY, PreparedMessage, Unsubscribe
from shared.mail.outbox import (
    CLAIMED,
    COMMITTED,
    DELIVERED,
    FAILED,
    QUEUED,
    SKIPPED,
    Outbox,
    new_owner,
)
from shared.mail.transport import PermanentMailError, SMTPTransport, TemporaryMailError
from shared.ratelimit import SendingRate
from shared.redis_client import get_redis
from shared.web.templates import render_text

logger = logging.getLogger("kgi.newsletter.dispatch")

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

#: A sender's heartbeat key lives this long; the scheduler restarts missing senders.
HEARTBEAT_SECONDS = 30

AUDIENCE_INSERT_CHUNK = 1000

#: The issue recipients' outbox, worked by the shared outbox engine.
OUTBOX = Outbox(outbox, "newsletter")


class DispatchError(Conflict):
    """The issue cannot be sent (or paused, resumed, cancelled) now; the message says why."""


@dataclass(frozen=True)
class Progress:
    state: str
    audience: int
    sent: int
    failed: int
    skipped: int
    remaining: int
    rate_per_minute: float
    eta_seconds: float | None
    pause_reason: str | None

    @property
    def percent(self) -> float:
        done = self.sent + self.failed + self.skipped
        return 100.0 * done / self.audience if self.audience else 0.0


def lease_seconds() -> int:
    """The claim lease: KGI_NEWSLETTER_LEASE_SECONDS, else LEASE_SECONDS."""
    return get_settings().newsletter_lease_seconds or LEASE_SECONDS


def _log(issue_id: int, actor: str, action: str, detail: str | None = None) -> None:
    with engine("newsletter").begin() as conn:
        store.log(conn, issue_id, actor, action, detail, utcnow())


def _issue(issue_id: int) -> Issue:
    with read_connection("newsletter") as conn:
        issue = store.get_issue(conn, issue_id)
    if issue is None:
        raise NotFound("There is no such issue.")
    return issue


def rendered_of(issue: Issue) -> RenderedIssue:
    """The issue rendered once at the start of dispatch (or now, for previews)."""
    if issue.rendered_html and issue.rendered_text:
        return RenderedIssue(issue.rendered_html, issue.rendered_text)
    with read_connection("newsletter") as conn:
        contents = store.issue_contents(conn, issue.id)
    return render_issue(issue, contents)


def start(issue_id: int, actor: str) -> int:
    """Snapshot the audience and start sending; returns the number of recipients."""
    issue = _issue(issue_id)
    if issue.state not in (DRAFT, SCHEDULED, OVERDUE):
        raise DispatchError(
            f"The issue is {issue.state}; only a draft or scheduled issue can be sent."
        )
    with read_connection("newsletter") as conn:
        contents = store.issue_contents(conn, issue_id)
    if not contents:
        raise DispatchError("The issue has no items yet.")
    rendered = render_issue(issue, contents)
    now = utcnow()
    count = 0
    with engine("newsletter").begin() as conn:
        # Claim the issue first: a second click or a second scheduler changes nothing.
        claimed = conn.execute(
            issues.update()
            .where(issues.c.id == issue_id, issues.c.state.in_((DRAFT, SCHEDULED, OVERDUE)))
            .values(
                state=SENDING,
                started_at=now,
                updated_at=now,
                rendered_html=rendered.html,
                rendered_text=rendered.text,
                consecutive_failures=0,
                pause_reason=None,
            )
        )
        if claimed.rowcount != 1:
            raise DispatchError("The issue is already being sent.")
        chunk: list[dict] = []
        seen: set[str] = set()
        for record in peers.audience(issue.language):
            key = record["email"].lower()
            if key in seen:
                continue
            seen.add(key)
            chunk.append(
                {
                    "issue_id": issue_id,
                    "subscriber_id": record["id"],
                    "email": record["email"],
                    "name": record.get("name") or "",
                    "unsubscribe_url": record["unsubscribe_url"],
                    "preferences_url": record["preferences_url"],
                    "status": QUEUED,
                    "attempts": 0,
                }
            )
            if len(chunk) >= AUDIENCE_INSERT_CHUNK:
                conn.execute(outbox.insert(), chunk)
                count += len(chunk)
                chunk = []
        if chunk:
            conn.execute(outbox.insert(), chunk)
            count += len(chunk)
        conn.execute(issues.update().where(issues.c.id == issue_id).values(audience_count=count))
        store.log(conn, issue_id, actor, "sending started", f"{count} recipients", now)
    if count == 0:
        finish_if_done(issue_id)
    else:
        wake_senders(issue_id)
    return count


def wake_senders(issue_id: int, missing_only: bool = False) -> int:
    """Enqueue sender actors for the issue (only the missing ones with ``missing_only``)."""
    # By name: the actors module imports this one, so this one must not import it.
    from shared.tasks import enqueue

    wanted = get_settings().newsletter_senders
    if missing_only:
        wanted -= live_senders(issue_id)
    for _ in range(max(0, wanted)):
        enqueue("send_issue", issue_id)
    return max(0, wanted)


def live_senders(issue_id: int) -> int:
    try:
        return sum(
            1 for _ in get_redis().scan_iter(f"kgi:newsletter:sender:{issue_id}:*", count=100)
        )
    except (redis.ConnectionError, redis.TimeoutError):
        return 0


def _heartbeat(issue_id: int, sender: str) -> None:
    with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
        get_redis().set(f"kgi:newsletter:sender:{issue_id}:{sender}", 1, ex=HEARTBEAT_SECONDS)


def _stop_heartbeat(issue_id: int, sender: str) -> None:
    with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
        get_redis().delete(f"kgi:newsletter:sender:{issue_id}:{sender}")


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
        issue = _issue(self.issue_id)
        message = PreparedMessage(issue.subject, ISSUE, campaign=f"issue{issue.id}")
        rendered = rendered_of(issue)
        try:
            while time.monotonic() < deadline:
                _heartbeat(self.issue_id, self.id)
                state = _issue(self.issue_id).state
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
            if n and n % 20 == 0 and _issue(self.issue_id).state != SENDING:
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


def finish_if_done(issue_id: int) -> bool:
    """Mark the issue sent when no row is left to send, and mail the editor a summary."""
    with engine("newsletter").begin() as conn:
        open_rows = conn.execute(
            sa.select(sa.func.count())
            .select_from(outbox)
            .where(outbox.c.issue_id == issue_id, outbox.c.status.in_((QUEUED, CLAIMED)))
        ).scalar_one()
        if open_rows:
            return False
        finished = conn.execute(
            issues.update()
            .where(issues.c.id == issue_id, issues.c.state == SENDING)
            .values(state=SENT, finished_at=utcnow(), updated_at=utcnow())
        )
        if finished.rowcount == 1:
            counts = store.outbox_counts(conn, issue_id)
            store.log(conn, issue_id, "system", "sent", _summary_line(counts), utcnow())
    if finished.rowcount == 1:
        _publish_archive_change()
        send_summary(issue_id)
    return True


def _summary_line(counts: dict[str, int]) -> str:
    return (
        f"{counts[COMMITTED] + counts[DELIVERED]} sent, {counts[FAILED]} failed, "
        f"{counts[SKIPPED]} skipped"
    )


def _publish_archive_change() -> None:
    from shared import events

    events.publish("newsletter.sent", {})


def send_summary(issue_id: int) -> None:
    """Mail the editor who created the issue what happened (once)."""
    with engine("newsletter").begin() as conn:
        claimed = conn.execute(
            issues.update()
            .where(issues.c.id == issue_id, issues.c.summary_sent.is_(False))
            .values(summary_sent=True)
        )
        issue = store.get_issue(conn, issue_id)
        counts = store.outbox_counts(conn, issue_id)
        failures = conn.execute(
            sa.select(outbox.c.email, outbox.c.error)
            .where(outbox.c.issue_id == issue_id, outbox.c.status == FAILED)
            .limit(50)
        ).all()
    if claimed.rowcount != 1 or issue is None or "@" not in issue.created_by:
        return
    language = issue.creator_language or issue.language
    text = render_text(
        "mail/newsletter/summary.txt",
        language,
        issue=issue,
        sent=counts[COMMITTED] + counts[DELIVERED],
        failed=counts[FAILED],
        skipped=counts[SKIPPED],
        failures=failures,
        issue_url=get_settings().absolute_url(f"/newsletter/admin/{issue_id}"),
    )
    subject = f"{translate('Sent', language)}: {issue.subject}"
    data = PreparedMessage(subject, SUMMARY).render(issue.created_by, "", text)
    try:
        with SMTPTransport(get_settings().effective_smtp_url) as transport:
            transport.send(return_paths.envelope_sender(), issue.created_by, data)
    except (TemporaryMailError, PermanentMailError) as exc:
        logger.warning("summary mail for issue %s not sent: %s", issue_id, exc)


def pause(issue_id: int, actor: str, reason: str | None = None) -> None:
    with engine("newsletter").begin() as conn:
        result = conn.execute(
            issues.update()
            .where(issues.c.id == issue_id, issues.c.state == SENDING)
            .values(state=PAUSED, pause_reason=reason, updated_at=utcnow())
        )
        if result.rowcount != 1:
            raise DispatchError("Only an issue that is being sent can be paused.")
        store.log(conn, issue_id, actor, "paused", reason, utcnow())


def resume(issue_id: int, actor: str) -> None:
    with engine("newsletter").begin() as conn:
        result = conn.execute(
            issues.update()
            .where(issues.c.id == issue_id, issues.c.state == PAUSED)
            .values(state=SENDING, pause_reason=None, consecutive_failures=0, updated_at=utcnow())
        )
        if result.rowcount != 1:
            raise DispatchError("Only a paused issue can be resumed.")
        store.log(conn, issue_id, actor, "resumed", None, utcnow())
    wake_senders(issue_id)


def cancel(issue_id: int, actor: str) -> None:
    """Stop for good: recipients not yet reached get nothing."""
    with engine("newsletter").begin() as conn:
        result = conn.execute(
            issues.update()
            .where(
                issues.c.id == issue_id,
                issues.c.state.in_((SENDING, PAUSED, SCHEDULED, OVERDUE, DRAFT)),
            )
            .values(state=CANCELLED, updated_at=utcnow(), finished_at=utcnow())
        )
        if result.rowcount != 1:
            raise DispatchError("This issue can no longer be cancelled.")
        conn.execute(
            outbox.update()
            .where(outbox.c.issue_id == issue_id, outbox.c.status.in_((QUEUED, CLAIMED)))
            .values(status=SKIPPED, error="issue cancelled", done_at=utcnow())
        )
        store.log(conn, issue_id, actor, "cancelled", None, utcnow())


def progress(issue_id: int) -> Progress:
    issue = _issue(issue_id)
    now = utcnow()
    with read_connection("newsletter") as conn:
        counts = store.outbox_counts(conn, issue_id)
        recent = conn.execute(
            sa.select(sa.func.count())
            .select_from(outbox)
            .where(
                outbox.c.issue_id == issue_id,
                outbox.c.status.in_((COMMITTED, DELIVERED)),
                outbox.c.done_at > now - timedelta(seconds=60),
            )
        ).scalar_one()
    sent = counts[COMMITTED] + counts[DELIVERED]
    remaining = counts[QUEUED] + counts[CLAIMED]
    rate = float(recent)
    eta = remaining / (rate / 60) if rate and remaining and issue.state == SENDING else None
    return Progress(
        issue.state,
        issue.audience_count,
        sent,
        counts[FAILED],
        counts[SKIPPED],
        remaining,
        rate,
        eta,
        issue.pause_reason,
    )


def supervise() -> None:
    """Scheduler duty: start due issues, flag missed schedules, restart missing senders."""
    grace = timedelta(seconds=get_settings().schedule_grace_seconds)
    now = utcnow()
    with read_connection("newsletter") as conn:
        due = conn.execute(
            sa.select(issues.c.id, issues.c.scheduled_at).where(
                issues.c.state == SCHEDULED, issues.c.scheduled_at <= now
            )
        ).all()
        sending = (
            conn.execute(sa.select(issues.c.id).where(issues.c.state == SENDING)).scalars().all()
        )
    for issue_id, scheduled_at in due:
        if now - scheduled_at > grace:
            # The system was down at the scheduled time: ask instead of sending late, silently.
            with engine("newsletter").begin() as conn:
                conn.execute(
                    issues.update()
                    .where(issues.c.id == issue_id, issues.c.state == SCHEDULED)
                    .values(state=OVERDUE, updated_at=now)
                )
                store.log(
                    conn,
                    issue_id,
                    "system",
                    "overdue",
                    f"scheduled for {scheduled_at.isoformat()}; needs confirmation",
                    now,
                )
            continue
        try:
            start(issue_id, "scheduler")
        except (DispatchError, peers.PeerUnavailable) as exc:
            logger.warning("scheduled issue %s not started: %s", issue_id, exc)
    for issue_id in sending:
        if not finish_if_done(issue_id):
            wake_senders(issue_id, missing_only=True)


def send_test(issue_id: int, addresses: list[str], actor: str) -> None:
    """Send the issue, marked as a test, to ``addresses`` (no personal links)."""
    issue = _issue(issue_id)
    rendered = rendered_of(issue)
    signup = get_settings().absolute_url("/subscribers/signup")
    html, text = personalise(rendered, Recipient("Test", signup, signup))
    message = PreparedMessage(
        f"[TEST] {issue.subject}",
        ISSUE,
        campaign=f"issue{issue.id}-test",
        extra_headers={"X-KGI-Test": "yes"},
    )
    with SMTPTransport(get_settings().effective_smtp_url) as transport:
        for address in addresses:
            transport.send(
                return_paths.envelope_sender(), address, message.render(address, "", text, html)
            )
    _log(issue_id, actor, "test sent", ", ".join(addresses))
