"""Making outside HTML and text safe for pages, feeds and mails: partner entries, item
bodies, the texts of an issue.

nh3 (ammonia) keeps an allowlist of tags, attributes and URL schemes: no script, event
handler, ``javascript:`` URL, form, iframe or style survives.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import nh3

#: Tags an item body may use: text structure, links, images, simple tables.
ALLOWED_TAGS = {
    "p", "br", "hr", "a", "em", "strong", "b", "i", "u", "s", "sub", "sup", "small",
    "ul", "ol", "li", "dl", "dt", "dd", "blockquote", "q", "cite", "code", "pre",
    "h2", "h3", "h4", "h5", "h6", "figure", "figcaption", "img", "abbr", "time",
    "table", "thead", "tbody", "tr", "th", "td", "caption", "span", "div",
}  # fmt: skip

ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "hreflang"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "time": {"datetime"},
    "th": {"colspan", "rowspan", "scope"},
    "td": {"colspan", "rowspan"},
    "*": {"lang"},
}

#: Removed together with everything inside them, not just unwrapped.
DROPPED_WITH_CONTENT = {
    "script",
    "style",
    "iframe",
    "object",
    "embed",
    "form",
    "noscript",
    "template",
}

URL_SCHEMES = {"http", "https", "mailto"}

#: Longest title kept; feeds that put whole articles in titles are cut here.
MAX_TITLE_LENGTH = 300

_SPACE = re.compile(r"\s+")

#: Characters XML 1.0 does not allow (C0 controls but tab and line ends, lone surrogates,
#: U+FFFE/U+FFFF), plus DEL and the C1 controls, which XML only discourages but no text of
#: ours needs. One such character in a partner entry would otherwise stop every feed that
#: contains it from being written.
_UNWRITABLE = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def writable(text: str) -> str:
    """``text`` without the characters above: safe for XML, JSON, HTML and the database."""
    return _UNWRITABLE.sub("", text)


def clean_html(fragment: str | None) -> str:
    """``fragment`` with only allowlisted markup; links get rel=noopener noreferrer."""
    if not fragment:
        return ""
    cleaned = nh3.clean(
        writable(fragment),
        tags=ALLOWED_TAGS,
        clean_content_tags=DROPPED_WITH_CONTENT,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
    )
    # Character references in the input come out as characters: check again.
    return writable(cleaned).strip()


def plain_text(fragment: str | None, limit: int | None = None) -> str:
    """Text without any markup and with entities decoded: for titles and summaries."""
    if not fragment:
        return ""
    text = nh3.clean(writable(fragment), tags=set(), clean_content_tags=DROPPED_WITH_CONTENT)
    text = _SPACE.sub(" ", writable(html.unescape(text))).strip()
    if limit and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def safe_url(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) URL, else None (no ``javascript:`` links)."""
    if not url:
        return None
    url = url.strip()
    if writable(url) != url:
        return None
    return url if re.match(r"^https?://[^\s<>\"']+$", url, re.IGNORECASE) else None


def web_address(raw: str, limit: int) -> str | None:
    """A link typed by a person: ``None`` when empty, ``https://`` added when the scheme
    is missing (``www.example.org``); ValueError unless it is an http(s) address with a
    host, without spaces, of at most ``limit`` characters."""
    text = raw.strip()
    if not text:
        return None
    if "://" not in text:
        text = "https://" + text
    try:
        parts = urlsplit(text)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 (raises ValueError for a port that is no number)
    except ValueError:
        valid = False
    if not valid or len(text) > limit or any(c.isspace() for c in text) or writable(text) != text:
        raise ValueError("not an http or https address")
    return text


#: An HTML tag's start: text with one is HTML (from the editor); text without is plain.
_TAG = re.compile(r"<[A-Za-z/!]")


def rich_text(text: str | None) -> str:
    """Rich text as safe HTML: what the rich-text editor sends (or HTML typed where it
    is not running) through the allowlist; plain text, such as texts written before the
    editor came, as paragraphs at its blank lines. Clean HTML comes back unchanged, so
    this is safe to apply when saving and again when showing."""
    if not text or not text.strip():
        return ""
    if _TAG.search(text):
        return clean_html(text)
    paragraphs = [part.strip() for part in re.split(r"\n\s*\n", writable(text))]
    return "\n".join(f"<p>{html.escape(part)}</p>" for part in paragraphs if part)
