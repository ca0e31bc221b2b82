"""The newsletter's figures on the admin dashboard: what became of each sent issue.

Sent and failed are the issue's own outbox; bounces, complaints and the unsubscribes in
the week after come from the subscribers service (over its internal API), which records
what comes back. Nothing about readers is tracked: no opens, no clicks.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from starlette.requests import Request

from services.newsletter import peers, store
from services.newsletter.store import SENT, issues
from shared.database import read_connection
from shared.i18n import request_language, translate
from shared.mail.outbox import COMMITTED, DELIVERED, FAILED
from shared.service import PageSection
from shared.web.charts import Chart
from shared.web.templates import render_text

#: Sent issues shown, the newest.
ISSUES_SHOWN = 8


@dataclass(frozen=True)
class IssueResult:
    """One sent issue and what became of it; the figures from the subscribers service
    are None while it cannot be asked."""

    issue: store.Issue
    sent: int
    failed: int
    bounced: int | None
    complaints: int | None
    unsubscribed: int | None


def issue_results(limit: int = ISSUES_SHOWN) -> list[IssueResult]:
    """The newest sent issues with their results, the oldest of them first."""
    with read_connection("newsletter") as conn:
        rows = conn.execute(
            sa.select(issues)
            .where(issues.c.state == SENT)
            .order_by(issues.c.started_at.desc())
            .limit(limit)
        ).all()
        sent = [(store.Issue(**row._mapping), store.outbox_counts(conn, row.id)) for row in rows]
    results = []
    for issue, counts in reversed(sent):
        try:
            feedback: dict[str, int] | None = peers.issue_feedback(issue.id, issue.started_at)
        except peers.PeerUnavailable:
            feedback = None
        results.append(
            IssueResult(
                issue,
                sent=counts[COMMITTED] + counts[DELIVERED],
                failed=counts[FAILED],
                bounced=None
                if feedback is None
                else feedback.get("hard_bounce", 0) + feedback.get("soft_bounce", 0),
                complaints=None if feedback is None else feedback.get("complaint", 0),
                unsubscribed=None if feedback is None else feedback.get("unsubscribed_in_week", 0),
            )
        )
    return results


def dashboard_sections(request: Request) -> list[PageSection]:
    """The sent issues' results for the admin dashboard: a chart and a table."""
    language = request_language(request)

    def _(text: str) -> str:
        return translate(text, language)

    results = issue_results()
    complete = all(result.bounced is not None for result in results)
    chart = None
    if results and complete:
        chart = Chart(
            "chart-issues",
            _("What became of the last issues"),
            _("Issue"),
            [result.issue.started_at.strftime("%d.%m.%Y") for result in results],
            {
                _("Sent"): [r.sent for r in results],
                _("Failed"): [r.failed for r in results],
                _("Bounced"): [r.bounced or 0 for r in results],
                _("Unsubscribed within a week"): [r.unsubscribed or 0 for r in results],
            },
        )
    html = render_text(
        "newsletter/_dashboard.html", language, results=results, chart=chart, complete=complete
    )
    return [PageSection(20, html)]
