"""Mails about an issue to its editors: a test send, and the summary after sending.

Both go through the same builder and transport as every mail; neither counts towards
the issue's audience or outbox.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from services.newsletter import store
from services.newsletter.render import Recipient, personalise, rendered_of
from services.newsletter.store import issues, outbox
from shared.config import get_settings
from shared.database import engine
from shared.i18n import translate
from shared.mail import return_paths
from shared.mail.message import ISSUE, SUMMARY, PreparedMessage
from shared.mail.outbox import COMMITTED, DELIVERED, FAILED, SKIPPED
from shared.mail.transport import PermanentMailError, SMTPTransport, TemporaryMailError
from shared.web.paths import absolute_url_for
from shared.web.templates import render_text

logger = logging.getLogger("kgi.newsletter.editor_mails")


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
        issue_url=absolute_url_for("newsletter:admin_issue", id=issue_id),
    )
    subject = f"{translate('Sent', language)}: {issue.subject}"
    data = PreparedMessage(subject, SUMMARY).render(issue.created_by, "", text)
    try:
        with SMTPTransport(get_settings().effective_smtp_url) as transport:
            transport.send(return_paths.envelope_sender(), issue.created_by, data)
    except (TemporaryMailError, PermanentMailError) as exc:
        logger.warning("summary mail for issue %s not sent: %s", issue_id, exc)


def send_test(issue_id: int, addresses: list[str], actor: str) -> None:
    """Send the issue, marked as a test, to ``addresses`` (no personal links)."""
    issue = store.issue_of(issue_id)
    rendered = rendered_of(issue)
    signup = absolute_url_for("subscribers:signup")
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
    store.record(issue_id, actor, "test sent", ", ".join(addresses))
