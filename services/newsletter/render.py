"""Rendering an issue: Jinja2 → premailer (CSS inlined, no network) → plain-text part.

This runs once per issue. What differs per recipient (name, unsubscribe and preference
links) is left as placeholders that :func:`personalise` fills by plain string
replacement, so sending never re-runs Jinja2 or premailer.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass
from typing import Any

from bs4 import BeautifulSoup, NavigableString, Tag
from premailer import Premailer

from services.newsletter.store import Issue
from shared.config import get_settings
from shared.web.templates import render_text

#: Placeholders for the per-recipient parts (plain ASCII, untouched by premailer).
NAME = "KGI0NAME0KGI"
UNSUBSCRIBE_URL = "https://kgi-placeholder.invalid/unsubscribe"
PREFERENCES_URL = "https://kgi-placeholder.invalid/preferences"

#: Sections of an issue, in this order, by content type.
SECTIONS = (("news", "News"), ("conference_report", "Conference reports"))

#: Width of the plain-text part.
TEXT_WIDTH = 72


@dataclass(frozen=True)
class RenderedIssue:
    html: str
    text: str


@dataclass(frozen=True)
class Recipient:
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
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()
    return RenderedIssue(inlined, html_to_text(inlined))


def personalise(rendered: RenderedIssue, recipient: Recipient) -> tuple[str, str]:
    """(html, text) for one recipient: string replacement only."""
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
    page, text = page.replace(" ,", ","), text.replace(" ,", ",")
    return page, text


def public_version(rendered: RenderedIssue) -> tuple[str, str]:
    """The archive's version: no personal name or links (they point to the sign-up page)."""
    signup = get_settings().absolute_url("/subscribers/signup")
    return personalise(rendered, Recipient("", signup, signup))


# --- HTML → text ---------------------------------------------------------------------

_BLOCKS = {"p", "div", "table", "tr", "ul", "ol", "h1", "h2", "h3", "h4", "blockquote", "section"}


def html_to_text(document: str) -> str:
    """A readable plain-text version: headings underlined, links as ``text <url>``."""
    soup = BeautifulSoup(document, "html.parser")
    for hidden in soup.select("style, script, head, .preheader, [aria-hidden=true]"):
        hidden.decompose()
    lines: list[str] = []
    _walk(soup.body or soup, lines)
    text = "\n".join(line.rstrip() for line in "".join(lines).splitlines())
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return text + "\n"


def _walk(node: Tag, out: list[str]) -> None:
    for child in node.children:
        if isinstance(child, NavigableString):
            out.append(re.sub(r"\s+", " ", str(child)))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name
        if name == "br":
            out.append("\n")
        elif name == "a":
            label = child.get_text(" ", strip=True)
            href = child.get("href", "")
            out.append(f"{label} <{href}>" if href and href != label else label)
        elif name in ("h1", "h2", "h3"):
            title = child.get_text(" ", strip=True)
            underline = "=" if name in ("h1", "h2") else "-"
            out.append(f"\n\n{title}\n{underline * min(len(title), TEXT_WIDTH)}\n")
        elif name == "li":
            out.append("\n* ")
            _walk(child, out)
        elif name == "img":
            alt = child.get("alt")
            if alt:
                out.append(f"[{alt}]")
        elif name == "hr":
            out.append("\n" + "-" * TEXT_WIDTH + "\n")
        elif name in _BLOCKS or name == "td":
            out.append("\n")
            _walk(child, out)
            out.append("\n")
        else:
            _walk(child, out)
