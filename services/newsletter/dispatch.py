"""Sending an issue to its audience, exactly once per recipient: the issue's states.

This module moves an issue through draft → sending → sent (or paused, cancelled,
overdue); the work between lives elsewhere:

1. ``start``: render the issue once, snapshot the confirmed audience into the outbox (one
   row per recipient, one transaction), mark the issue *sending*, start the senders.
2. Senders (:mod:`services.newsletter.sender`, Dramatiq actors with their own reused SMTP
   connection) claim batches of rows through the outbox engine
   (:mod:`shared.mail.outbox`), skip who left, and send at the shared pace
   (:mod:`shared.ratelimit`).
3. Per message, the row is marked *committed* after the whole message went to the SMTP
   server but *before* the final dot. A server discards a message whose dot never
   arrived, so a sender killed before that commit sent nothing (its rows return after the
   lease), and one killed after it has sent the message (the kernel still delivers the dot
   it was handed). Committed rows are never sent again. This is why a SIGKILL, a restart of
   everything or a Redis restart leaves every recipient with one copy.
4. Temporary failures (4xx, timeouts, dropped connections) go back to the queue with
   backoff; permanent ones (5xx) are recorded. Too many failures in a row pause the issue.
5. When no row is left, the issue is *sent* and the editor gets a summary mail
   (:mod:`services.newsletter.render`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from services.newsletter import archive, peers, render, seats, store
from services.newsletter.render import render_issue
from services.newsletter.store import (
    CANCELLED,
    DRAFT,
    OVERDUE,
    PAUSED,
    SCHEDULED,
    SENDING,
    SENT,
    issues,
    outbox,
)
from shared import tasks
from shared.config import get_settings
from shared.database import after_commit, engine, read_connection, utcnow
from shared.errors import Conflict
from shared.mail.outbox import (
    CLAIMED,
    COMMITTED,
    DELIVERED,
    FAILED,
    QUEUED,
    SKIPPED,
    new_owner,
)

logger = logging.getLogger("kgi.newsletter.dispatch")


#: Recipients written to the outbox per INSERT when sending starts.
AUDIENCE_INSERT_CHUNK = 1000


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


def start(issue_id: int, actor: str) -> int:
    """Snapshot the audience and start sending; returns the number of recipients."""
    issue = store.issue_of(issue_id)
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
    """Enqueue sender actors for the issue (only for the seats without a living sender
    with ``missing_only``). One too many costs nothing: it finds no seat and ends."""
    # By name: the actors module imports this one, so this one must not import it.
    from shared.tasks import enqueue

    wanted = get_settings().newsletter_senders
    if missing_only:
        wanted -= seats.alive(issue_id)
    for _ in range(max(0, wanted)):
        # Each message names its sender, so Dramatiq's retries of it continue its work.
        enqueue("send_issue", issue_id, new_owner())
    return max(0, wanted)


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
            # The archive shows the issue from now on: at once in this process.
            after_commit(conn, archive.RENDERINGS.distrust)
    if finished.rowcount == 1:
        tasks.publish_event("newsletter.sent", {})
        render.send_summary(issue_id)
    return True


def _summary_line(counts: dict[str, int]) -> str:
    return (
        f"{counts[COMMITTED] + counts[DELIVERED]} sent, {counts[FAILED]} failed, "
        f"{counts[SKIPPED]} skipped"
    )


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
    issue = store.issue_of(issue_id)
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
