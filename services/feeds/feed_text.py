"""How an item's plain text and HTML go into each feed format.

Titles, summaries, tags and names are stored as plain text, bodies as allowlisted HTML.
Each format wants them differently: Atom and JSON Feed have explicit text fields; RSS
``description`` is HTML, so text goes in HTML-escaped; an RSS ``title`` is plain text
(RSS Best Practices Profile: single encoding, ``&`` and ``<`` as hexadecimal character
references), but many readers, feedparser among them, render a title as HTML when it
looks like HTML. Such a title is therefore sent HTML-escaped, which both kinds of reader
then show as the text it is.
"""

from __future__ import annotations

import html
import re
from dataclasses import replace

from services.feeds.store import Item
from shared.sanitize import clean_html, plain_text, safe_url, writable

#: What makes a reader that guesses (feedparser's rule, and stricter) take text as HTML:
#: a tag bracket, or anything that reads as a character reference.
_LOOKS_LIKE_HTML = re.compile(r"[<>]|&#?\w+;")

#: ``<title>`` elements in serialised RSS: their text is character data only.
_RSS_TITLE = re.compile(rb"(<title>)(.*?)(</title>)", re.DOTALL)

#: The XML escapes lxml writes, and the hexadecimal references the RSS profile recommends.
_HEX_REFERENCES = ((b"&amp;", b"&#x26;"), (b"&lt;", b"&#x3C;"), (b"&gt;", b"&#x3E;"))


def printable(item: Item) -> Item:
    """``item`` with every text field writable in XML and JSON, and its body sanitised
    again: a feed can always be written, even from rows stored before a cleaning rule."""
    return replace(
        item,
        title=writable(item.title),
        summary=writable(item.summary),
        body=clean_html(item.body),
        tags=[writable(tag) for tag in item.tags],
        author=writable(item.author) if item.author else None,
        source_name=writable(item.source_name) if item.source_name else None,
        link=safe_url(item.link),
        lead_image_url=writable(item.lead_image_url) if item.lead_image_url else None,
        lead_image_alt=writable(item.lead_image_alt) if item.lead_image_alt else None,
        event_location=writable(item.event_location) if item.event_location else None,
        event_organiser=writable(item.event_organiser) if item.event_organiser else None,
    )


def rss_title(text: str) -> str:
    """The text of an RSS ``<title>``: the plain text, or its HTML escape when a reader
    that guesses would otherwise see markup or a character reference in it."""
    if _LOOKS_LIKE_HTML.search(text) or html.unescape(text) != text:
        return html.escape(text, quote=False)
    return text


def as_html(text: str) -> str:
    """Plain ``text`` as HTML text (for RSS ``description``)."""
    return html.escape(text, quote=False)


def paragraph(text: str) -> str:
    """Plain ``text`` as one HTML paragraph (JSON Feed ``content_html`` without a body)."""
    return f"<p>{as_html(text)}</p>" if text else ""


def body_text(item: Item) -> str:
    """The item's content as plain text (JSON Feed ``content_text``)."""
    return plain_text(item.body) or item.summary


def hex_references_in_titles(rss: bytes) -> bytes:
    """Serialised RSS with ``&``, ``<`` and ``>`` in titles written as hexadecimal
    character references, the form that works in the most aggregators."""

    def recode(match: re.Match[bytes]) -> bytes:
        text = match.group(2)
        for escaped, reference in _HEX_REFERENCES:
            text = text.replace(escaped, reference)
        return match.group(1) + text + match.group(3)

    return _RSS_TITLE.sub(recode, rss)
