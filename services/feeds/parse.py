"""Turning fetched bytes into entries: feeds with feedparser, feedless pages with CSS
selectors (BeautifulSoup). Every text field comes out as plain text and every body as
allowlisted HTML, with relative URLs resolved against the document's own URL."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser
from bs4 import BeautifulSoup

from shared.sanitize import MAX_TITLE_LENGTH, clean_html, plain_text, safe_url, writable

#: feedparser's "bozo" reasons that are no fault of the document itself.
_HARMLESS = (feedparser.NonXMLContentType, feedparser.CharacterEncodingOverride)

#: Selector keys a page source needs; ``link`` defaults to the link inside ``title``.
REQUIRED_SELECTORS = ("item", "title")
SELECTOR_KEYS = ("item", "title", "link", "date", "summary")


class ParseError(Exception):
    """Nothing usable in the document (malformed, hostile or empty)."""


@dataclass
class Entry:
    """One item as the source published it, already made safe."""

    title: str
    link: str | None
    guid: str | None = None
    summary: str = ""
    body: str = ""
    published: datetime | None = None
    updated: datetime | None = None
    tags: list[str] = field(default_factory=list)
    author: str | None = None


@dataclass
class Parsed:
    entries: list[Entry]
    language: str | None = None
    #: A problem that did not stop parsing (e.g. malformed XML read leniently).
    warning: str | None = None


def _when(entry: Any, *names: str) -> datetime | None:
    for name in names:
        value = entry.get(f"{name}_parsed")
        if value:
            return datetime.fromtimestamp(calendar.timegm(value), UTC)
    return None


def _language(value: str | None) -> str | None:
    value = (value or "").strip().lower()[:2]
    return value if value in ("de", "en") else None


def _alternate_link(entry: Any, language: str | None) -> str | None:
    """The entry's page: the rel=alternate link in the feed's language, else the first."""
    alternates = [
        link for link in entry.get("links", []) if link.get("rel", "alternate") == "alternate"
    ]
    for link in alternates:
        if not link.get("hreflang") or _language(link.get("hreflang")) == language:
            return link.get("href")
    return alternates[0].get("href") if alternates else entry.get("link")


def parse_feed(body: bytes, url: str, content_type: str = "") -> Parsed:
    """Entries of an RSS 0.9x/1.0/2.0 or Atom document fetched from ``url``."""
    document = feedparser.parse(
        body,
        response_headers={
            "content-location": url,
            "content-type": content_type or "application/xml",
        },
        resolve_relative_uris=True,
        sanitize_html=False,  # nh3 does this, with our allowlist
    )
    warning = None
    if document.bozo and not isinstance(document.get("bozo_exception"), _HARMLESS):
        warning = f"the document is not well-formed XML ({document.get('bozo_exception')})"
    language = _language(document.feed.get("language"))
    if not document.entries:
        if warning or not document.get("version"):
            raise ParseError(warning or "the document is not an RSS or Atom feed")
        # A well-formed feed with nothing in it yet is a fine feed, not a failure to back
        # off from.
        return Parsed([], language)
    entries = []
    for raw in document.entries:
        link = safe_url(urljoin(url, _alternate_link(raw, language) or ""))
        contents = raw.get("content") or []
        body_html = contents[0].get("value", "") if contents else ""
        summary_source = raw.get("summary", "")
        entries.append(
            Entry(
                title=plain_text(raw.get("title"), MAX_TITLE_LENGTH)
                or plain_text(summary_source, 80)
                or "–",
                link=link,
                guid=writable(raw.get("id") or "").strip()[:1000] or None,
                summary=plain_text(summary_source, 1000),
                body=clean_html(body_html or summary_source),
                published=_when(raw, "published", "updated", "created"),
                updated=_when(raw, "updated", "published"),
                tags=[plain_text(t.get("term"), 40) for t in raw.get("tags", []) if t.get("term")][
                    :12
                ],
                author=plain_text(raw.get("author"), 200) or None,
            )
        )
    return Parsed(entries, language, warning)


def _date_of(element: Any) -> datetime | None:
    if element is None:
        return None
    raw = element.get("datetime") or element.get_text(" ", strip=True)
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_page(body: bytes, url: str, selectors: dict[str, str]) -> Parsed:
    """Entries of a feedless HTML page read with CSS selectors; teasers without a link are
    skipped (there would be nothing to link to)."""
    soup = BeautifulSoup(body, "html.parser")
    language = _language((soup.html or {}).get("lang") if soup.html else None)
    entries = []
    for block in soup.select(selectors["item"]):
        title_element = block.select_one(selectors["title"])
        if title_element is None:
            continue
        link_element = (
            block.select_one(selectors["link"]) if selectors.get("link") else title_element
        )
        if link_element is not None and link_element.name != "a":
            link_element = link_element.find("a")
        href = link_element.get("href") if link_element is not None else None
        link = safe_url(urljoin(url, href)) if href else None
        if not link:
            continue
        summary_element = (
            block.select_one(selectors["summary"]) if selectors.get("summary") else None
        )
        published = _date_of(block.select_one(selectors["date"])) if selectors.get("date") else None
        summary = (
            plain_text(summary_element.get_text(" ", strip=True), 1000) if summary_element else ""
        )
        entries.append(
            Entry(
                title=plain_text(title_element.get_text(" ", strip=True), MAX_TITLE_LENGTH),
                link=link,
                summary=summary,
                body=clean_html(f"<p>{summary}</p>") if summary else "",
                published=published,
                updated=published,
            )
        )
    if not entries:
        raise ParseError("no teaser on the page matched the selectors")
    return Parsed(entries, language)


def check_selectors(selectors: Any) -> dict[str, str]:
    """Validated selectors for a page source; raises ValueError with a clear message."""
    if not isinstance(selectors, dict):
        raise ValueError(
            'Selectors must be a JSON object such as {"item": "article", "title": "h2 a"}.'
        )
    unknown = set(selectors) - set(SELECTOR_KEYS)
    if unknown:
        raise ValueError(f"Unknown selector keys: {', '.join(sorted(unknown))}.")
    for key in REQUIRED_SELECTORS:
        if not selectors.get(key):
            raise ValueError(f"The selector '{key}' is required.")
    cleaned = {key: str(value).strip() for key, value in selectors.items() if value}
    probe = BeautifulSoup("<div></div>", "html.parser")
    for key, value in cleaned.items():
        try:
            probe.select(value)
        except Exception:
            raise ValueError(f"The selector for '{key}' is not valid CSS: {value}") from None
    return cleaned
