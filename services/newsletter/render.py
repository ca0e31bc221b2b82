"""Rendering an issue: Jinja2 → premailer (CSS inlined, no network) → plain-text part.

The text part is made by :func:`shared.mail.message.html_to_text`, wrapped at 72
columns like every mail's text part.

This runs once per issue. What differs per recipient (name, unsubscribe and preference
links) is left as placeholders that :func:`personalise` fills by plain string
replacement (re-wrapping only the text lines that grew), so sending never re-runs Jinja2
or premailer.

The editors' own mails about an issue (a test send, the summary after sending) are built
here too (last section).
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from markupsafe import Markup
from premailer import Premailer

from services.newsletter import store
from services.newsletter.store import Issue, issues, outbox
from shared.config import get_settings
from shared.database import engine, read_connection
from shared.i18n import translate
from shared.mail import signing
from shared.mail.message import ISSUE, SUMMARY, PreparedMessage, html_to_text, wrap_text
from shared.mail.outbox import COMMITTED, DELIVERED, FAILED, SKIPPED
from shared.mail.transport import PermanentMailError, SMTPTransport, TemporaryMailError
from shared.sanitize import rich_text
from shared.web.paths import absolute_url_for
from shared.web.templates import render_text

#: Placeholders for the per-recipient parts (plain ASCII, untouched by premailer).
NAME = "KGI0NAME0KGI"
UNSUBSCRIBE_URL = "https://kgi-placeholder.invalid/unsubscribe"
PREFERENCES_URL = "https://kgi-placeholder.invalid/preferences"

#: Sections of an issue, in this order, by content type.
SECTIONS = (("news", "News"), ("conference_report", "Conference reports"), ("event", "Events"))

#: Put back in front of the rendered issue: premailer keeps lxml's doctype only when the
#: source starts with exactly this spelling, so the template's ``<!doctype html>`` is
#: lost, and without a doctype clients render the mail in quirks mode.
DOCTYPE = "<!DOCTYPE html>"


@dataclass(frozen=True)
class RenderedIssue:
    """An issue's HTML and text parts with the recipient placeholders still in them."""

    html: str
    text: str


@dataclass(frozen=True)
class Recipient:
    """What :func:`personalise` puts in for the placeholders."""

    name: str
    unsubscribe_url: str
    preferences_url: str


def sections(contents: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The issue's items grouped by type, keeping the editor's order inside each group."""
    grouped = []
    for kind, title in SECTIONS:
        members = [item for item in contents if item.get("kind") == kind]
        if members:
            grouped.append((title, members))
    return grouped


def render_issue(issue: Issue, contents: list[dict[str, Any]]) -> RenderedIssue:
    """The HTML and text of ``issue`` with placeholders for the recipient."""
    settings = get_settings()
    page = render_text(
        "mail/newsletter/issue.html",
        issue.language,
        issue=issue,
        # Rich text: what the editor saved (cleaned again), or paragraphs of plain text.
        intro=Markup(rich_text(issue.intro)),
        closing=Markup(rich_text(issue.closing)),
        sections=sections(contents),
        name_placeholder=NAME,
        unsubscribe_url=UNSUBSCRIBE_URL,
        preferences_url=PREFERENCES_URL,
        archive_url=settings.absolute_url(issue.archive_path),
    )
    inlined = Premailer(
        page,
        allow_network=False,
        keep_style_tags=True,  # media queries (narrow screens, dark mode) cannot be inlined
        # The kept rules must beat the inlined styles, and only !important does that: by
        # default premailer strips it, and the phone and dark-mode rules never apply.
        strip_important=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()
    return RenderedIssue(with_doctype(inlined), html_to_text(inlined))


def with_doctype(document: str) -> str:
    """``document`` starting with the HTML5 doctype, so that it renders in standards mode."""
    if document.lstrip()[:9].lower() == "<!doctype":
        return document
    return f"{DOCTYPE}\n{document.lstrip()}"


def rendered_of(issue: Issue) -> RenderedIssue:
    """The issue rendered once at the start of dispatch (or now, for previews)."""
    if issue.rendered_html and issue.rendered_text:
        return RenderedIssue(issue.rendered_html, issue.rendered_text)
    with read_connection("newsletter") as conn:
        contents = store.issue_contents(conn, issue.id)
    return render_issue(issue, contents)


def personalise(rendered: RenderedIssue, recipient: Recipient) -> tuple[str, str]:
    """(html, text) for one recipient: string replacement, then re-wrapping the text.

    Only the text's lines that the replacement changes are wrapped again (a personal
    link is much longer than its placeholder): the others were wrapped when the issue
    was rendered, and wrapping wrapped text changes nothing. Wrapping every line for
    every recipient was a tenth of a sender's time.
    """
    name_html = html.escape(recipient.name)
    page = (
        rendered.html.replace(NAME, name_html)
        .replace(UNSUBSCRIBE_URL, html.escape(recipient.unsubscribe_url))
        .replace(PREFERENCES_URL, html.escape(recipient.preferences_url))
    )
    # A greeting without a name must not keep the space before the comma.
    lines = rendered.text.split("\n")
    for number in _personal_lines(rendered.text):
        line = (
            lines[number]
            .replace(NAME, recipient.name)
            .replace(UNSUBSCRIBE_URL, recipient.unsubscribe_url)
            .replace(PREFERENCES_URL, recipient.preferences_url)
        )
        lines[number] = wrap_text(line.replace(" ,", ","))
    return page.replace(" ,", ","), "\n".join(lines)


@lru_cache(maxsize=8)
def _personal_lines(text: str) -> tuple[int, ...]:
    """The numbers of the lines of a rendered text that personalising may change (found
    once per rendering: a dispatch personalises the same text for every recipient)."""
    return tuple(
        number
        for number, line in enumerate(text.split("\n"))
        if any(mark in line for mark in (NAME, UNSUBSCRIBE_URL, PREFERENCES_URL, " ,"))
    )


def public_version(rendered: RenderedIssue) -> tuple[str, str]:
    """The archive's version: no personal name or links (they point to the sign-up page)."""
    signup = absolute_url_for("subscribers:signup")
    return personalise(rendered, Recipient("", signup, signup))


# --------------------------------------------------------------------------------------
# Mails about an issue to its editors: a test send, and the summary after sending.
#
# Both go through the same builder and transport as every mail; neither counts towards
# the issue's audience or outbox.
# --------------------------------------------------------------------------------------

logger = logging.getLogger("kgi.newsletter.render")


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
            transport.send(signing.envelope_sender(), issue.created_by, data)
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
                signing.envelope_sender(), address, message.render(address, "", text, html)
            )
    store.record(issue_id, actor, "test sent", ", ".join(addresses))
