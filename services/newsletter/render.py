"""Rendering an issue: Jinja2 → premailer (CSS inlined, no network) → plain-text part.

The text part is made by :func:`shared.mail.plain_text.html_to_text`, wrapped at 72
columns like every mail's text part.

This runs once per issue. What differs per recipient (name, unsubscribe and preference
links) is left as placeholders that :func:`personalise` fills by plain string
replacement (re-wrapping only the text lines that grew), so sending never re-runs Jinja2
or premailer.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from typing import Any

from premailer import Premailer

from services.newsletter import store
from services.newsletter.store import Issue
from shared.config import get_settings
from shared.database import read_connection
from shared.mail.plain_text import html_to_text, wrap_text
from shared.web.paths import absolute_url_for
from shared.web.templates import render_text

#: Placeholders for the per-recipient parts (plain ASCII, untouched by premailer).
NAME = "KGI0NAME0KGI"
UNSUBSCRIBE_URL = "https://kgi-placeholder.invalid/unsubscribe"
PREFERENCES_URL = "https://kgi-placeholder.invalid/preferences"

#: Sections of an issue, in this order, by content type.
SECTIONS = (("news", "News"), ("conference_report", "Conference reports"))

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

    Only lines the replacement made longer than the text width are wrapped again (a
    personal link is much longer than its placeholder), so this stays cheap per recipient.
    """
    name_html = html.escape(recipient.name)
    page = (
        rendered.html.replace(NAME, name_html)
        .replace(UNSUBSCRIBE_URL, html.escape(recipient.unsubscribe_url))
        .replace(PREFERENCES_URL, html.escape(recipient.preferences_url))
    )
    text = (
        rendered.text.replace(NAME, recipient.name)
        .replace(UNSUBSCRIBE_URL, recipient.unsubscribe_url)
        .replace(PREFERENCES_URL, recipient.preferences_url)
    )
    # A greeting without a name must not keep the space before the comma.
    page, text = page.replace(" ,", ","), wrap_text(text.replace(" ,", ","))
    return page, text


def public_version(rendered: RenderedIssue) -> tuple[str, str]:
    """The archive's version: no personal name or links (they point to the sign-up page)."""
    signup = absolute_url_for("subscribers:signup")
    return personalise(rendered, Recipient("", signup, signup))
