"""What comes back about our mail, applied to the subscribers it is about.

Policy (the bulk senders' rules that Gmail and Yahoo enforce since 2024):

- a hard bounce (the address does not exist) ends the subscription as *bounced* at once;
- soft bounces (mailbox full, server busy) are counted: ``KGI_SOFT_BOUNCE_LIMIT`` of them
  within ``KGI_SOFT_BOUNCE_WINDOW_DAYS`` days count as a hard bounce;
- a complaint (the reader pressed "this is spam") unsubscribes at once;
- a mail to the List-Unsubscribe ``mailto:`` unsubscribes at once;
- auto-replies and anything unreadable change nothing.

Only a new double opt-in brings a bounced address back (a sign-up; an import skips it).
Each report is recorded once, keyed by ``report_key``, in the same transaction as its
effect: a report that arrives twice (a poller that died before deleting it, a relay
repeating its webhook) changes nothing the second time, and one that arrives while the
database is away is refused (and retried by its sender) without a half-done effect.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.subscribers import store
from services.subscribers.store import BOUNCED, UNSUBSCRIBED, Context, delivery_feedback
from shared.addresses import InvalidInput, parse_address
from shared.config import get_settings
from shared.database import engine, read_connection, utcnow
from shared.mail.reports import DeliveryReport, ReportKind
from shared.mail.signing import ReturnTag

logger = logging.getLogger("kgi.subscribers.feedback")

#: Report kinds that change something; the others are only logged.
EFFECTIVE_KINDS = (
    ReportKind.HARD_BOUNCE,
    ReportKind.SOFT_BOUNCE,
    ReportKind.COMPLAINT,
    ReportKind.UNSUBSCRIBE,
)


@dataclass(frozen=True)
class FeedbackOutcome:
    """What one report did to one subscriber (``subscriber_id`` None: nobody we know)."""

    subscriber_id: int | None
    action: str


def report_key(*parts: str | bytes) -> str:
    """A stable identity for a report: the SHA-256 of what identifies it (the raw mail,
    a relay's event id), so the same report is recognised when it arrives again."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode("utf-8", "replace"))
        digest.update(b"\0")
    return digest.hexdigest()


def record(
    report: DeliveryReport, tag: ReturnTag | None, key: str, issue_id: int | None = None
) -> list[FeedbackOutcome]:
    """Apply ``report`` to the subscribers it is about and remember it under ``key``.

    ``tag`` (from the address the report came back to) names the subscriber and issue
    reliably; without one (a relay's signed webhook) the reported addresses are looked
    up, and ``issue_id`` says which issue, when known. Raises the database's errors, so
    the caller can ask the sender to try again.
    """
    if report.kind not in EFFECTIVE_KINDS:
        logger.info("ignored %s report (%s)", report.kind, report.source)
        return [FeedbackOutcome(None, f"ignored {report.kind}")]
    with engine("subscribers").begin() as conn:
        targets = _subscribers_of(conn, report, tag)
        if not targets:
            logger.info("%s report for an unknown address: %s", report.kind, report.recipients)
            return [FeedbackOutcome(None, "unknown recipient")]
        if tag is not None:
            issue_id = tag.issue_id
        return [
            _apply(conn, subscriber_id, report, issue_id, report_key(key, str(subscriber_id)))
            for subscriber_id in targets
        ]


def _subscribers_of(conn: Connection, report: DeliveryReport, tag: ReturnTag | None) -> list[int]:
    if tag is not None:
        return [tag.subscriber_id] if store.get(conn, tag.subscriber_id) else []
    found: list[int] = []
    for address in report.recipients:
        try:
            key = parse_address(address).key
        except InvalidInput:
            continue
        subscriber = store.find_by_key(conn, key)
        if subscriber is not None and subscriber.id not in found:
            found.append(subscriber.id)
    return found


def _apply(
    conn: Connection, subscriber_id: int, report: DeliveryReport, issue_id: int | None, key: str
) -> FeedbackOutcome:
    now = utcnow()
    detail = " ".join(part for part in (report.status, report.diagnostic) if part) or None
    seen = conn.execute(
        sa.select(delivery_feedback.c.id).where(delivery_feedback.c.report_key == key)
    ).first()
    if seen is not None:
        return FeedbackOutcome(subscriber_id, "duplicate")
    # Two copies processed at the very same moment: the unique key makes one of the two
    # transactions fail, and its sender's retry then finds the report recorded.
    conn.execute(
        delivery_feedback.insert(),
        {
            "subscriber_id": subscriber_id,
            "kind": str(report.kind),
            "issue_id": issue_id,
            "status": (report.status or "")[:16] or None,
            "detail": detail,
            "source": report.source[:32],
            "report_key": key,
            "occurred_at": now,
        },
    )
    context = Context(source=f"{report.kind} via {report.source}"[: store.CONTEXT_TEXT_LENGTH])
    if report.kind in (ReportKind.COMPLAINT, ReportKind.UNSUBSCRIBE):
        action = "complaint" if report.kind == ReportKind.COMPLAINT else "unsubscribed"
        changed = store.end_subscription(conn, subscriber_id, UNSUBSCRIBED, context, action, detail)
        return FeedbackOutcome(subscriber_id, "unsubscribed" if changed else "recorded")
    if report.kind == ReportKind.SOFT_BOUNCE:
        settings = get_settings()
        window = now - timedelta(days=settings.soft_bounce_window_days)
        soft = conn.execute(
            sa.select(sa.func.count())
            .select_from(delivery_feedback)
            .where(
                delivery_feedback.c.subscriber_id == subscriber_id,
                delivery_feedback.c.kind == str(ReportKind.SOFT_BOUNCE),
                delivery_feedback.c.occurred_at >= window,
            )
        ).scalar_one()
        if soft < settings.soft_bounce_limit:
            return FeedbackOutcome(
                subscriber_id, f"soft bounce {soft} of {settings.soft_bounce_limit}"
            )
        detail = (
            f"{soft} soft bounces within {settings.soft_bounce_window_days} days; last: {detail}"
        )
    changed = store.end_subscription(conn, subscriber_id, BOUNCED, context, "bounced", detail)
    return FeedbackOutcome(subscriber_id, "bounced" if changed else "recorded")


def history(conn: Connection, subscriber_id: int) -> list[sa.Row]:
    """Every report about one subscriber, oldest first (the admin's detail page)."""
    return list(
        conn.execute(
            sa.select(delivery_feedback)
            .where(delivery_feedback.c.subscriber_id == subscriber_id)
            .order_by(delivery_feedback.c.id)
        )
    )


#: The key of :func:`issue_counts` for those who unsubscribed in the week after an issue.
UNSUBSCRIBED_IN_WEEK = "unsubscribed_in_week"


def issue_counts(issue_id: int, since: datetime | None = None) -> dict[str, int]:
    """Subscribers with a bounce or complaint about ``issue_id``, by kind of report; with
    ``since`` (when the issue went out) also how many unsubscribed in the week after, by
    any way (link, mail, one click): an unsubscribe link names no issue, so the week is
    what ties them to it."""
    with read_connection("subscribers") as conn:
        rows = conn.execute(
            sa.select(
                delivery_feedback.c.kind,
                sa.func.count(sa.distinct(delivery_feedback.c.subscriber_id)),
            )
            .where(delivery_feedback.c.issue_id == issue_id)
            .group_by(delivery_feedback.c.kind)
        )
        counts = {str(kind): 0 for kind in EFFECTIVE_KINDS}
        counts.update({kind: int(n) for kind, n in rows})
        if since is not None:
            left = store.subscribers.c.unsubscribed_at
            counts[UNSUBSCRIBED_IN_WEEK] = conn.execute(
                sa.select(sa.func.count()).where(left >= since, left < since + timedelta(weeks=1))
            ).scalar_one()
    return counts
