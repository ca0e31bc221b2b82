"""Plain text stays text in every feed format, judged by an independent parser (feedparser).

Readers differ in what they do with RSS: ``description`` is HTML, ``title`` is plain text
that some readers still render as HTML when it looks like HTML. feedparser is run with
its own sanitizer switched off, so it shows what an unsanitising reader would get.
"""

from __future__ import annotations

import html
import json
from html.parser import HTMLParser
from typing import Any

import feedparser
import httpx
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.feeds import aggregate, content, partner_sources, store, syndication
from services.feeds.item_fields import InvalidItem
from services.feeds.listing import ItemFilter
from services.feeds.syndication import FeedQuery
from shared.database import engine
from tests.partner_server import Resource

HOSTILE_SUMMARY = "Tom & Jerry &lt;img src=x onerror=alert(1)&gt; a < b"
#: What an editor's summary above means as text: the entity is decoded, the tag is text.
HOSTILE_TEXT = "Tom & Jerry <img src=x onerror=alert(1)> a < b"

PARTNER_RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Partner</title><link>https://partner.example.org/</link>
<description>x</description><language>de</language>
<item><title>Tom &amp; Jerry &amp;lt;b&amp;gt;fett&amp;lt;/b&amp;gt;</title>
<link>https://partner.example.org/a</link><guid>a</guid>
<description>Tom &amp;amp; Jerry &amp;lt;img src=x onerror=alert(1)&amp;gt;</description></item>
</channel></rss>"""


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def elements(fragment: str) -> list[tuple[str, dict[str, str | None]]]:
    """The elements a browser would create from ``fragment``."""
    parser = _Elements()
    parser.feed(fragment)
    parser.close()
    return parser.tags


def shown_text(detail: Any) -> str:
    """What a reader shows for a feedparser text construct: HTML is decoded, text is text."""
    value = detail["value"]
    if detail["type"] in ("text/html", "application/xhtml+xml"):
        assert elements(value) == [], f"live markup in {value!r}"
        return html.unescape(value)
    return value


def as_feedparser_reads(text: str) -> str:
    """``text`` as feedparser hands it back from a UTF-8 feed. feedparser "repairs" every
    text that reads as UTF-8 mistaken for ISO-8859-1 (``mixin.py``, "address common error
    where people take data that is already utf-8, presume that it is iso-8859-1, and
    re-encode it"), so a title that really is ``Â¡`` comes back as ``¡``: the checker's
    guess, not a fault of the feed, which carries ``Â¡``."""
    try:
        return text.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def no_live_markup(detail: Any) -> None:
    if detail["type"] in ("text/html", "application/xhtml+xml"):
        assert [tag for tag, _ in elements(detail["value"])] == [], detail


def parse(body: bytes) -> Any:
    parsed = feedparser.parse(body, sanitize_html=False)
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


def publish(fields: dict[str, Any]) -> store.Item:
    item = content.create_item(fields, "editor@example.org")
    return content.transition(item.id, "publish", "admin@example.org", "admin")


def check_xml_feeds(site: str, query: str, title: str, summary: str) -> None:
    for fmt in ("rss", "atom"):
        response = httpx.get(f"{site}/news/feed.{fmt}{query}")
        assert response.status_code == 200
        entry = parse(response.content).entries[0]
        assert shown_text(entry.title_detail) == title, fmt
        assert shown_text(entry.summary_detail) == summary, fmt
        for detail in entry.get("content", []):
            no_live_markup(detail)


def check_json_feed(site: str, query: str, title: str, summary: str) -> None:
    item = httpx.get(f"{site}/news/feed.json{query}").json()["items"][0]
    assert item["title"] == title and item["summary"] == summary
    assert elements(item["content_html"]) == [("p", {})]
    assert html.unescape(item["content_html"]) == f"<p>{summary}</p>"
    assert item["content_text"] == summary


def test_editor_text_is_text_in_every_format(site: str) -> None:
    item = publish({"title": "Tom &amp; Jerry &lt;b&gt;", "summary": HOSTILE_SUMMARY})
    assert (item.title, item.summary) == ("Tom & Jerry <b>", HOSTILE_TEXT)
    check_xml_feeds(site, "", "Tom & Jerry <b>", HOSTILE_TEXT)
    check_json_feed(site, "", "Tom & Jerry <b>", HOSTILE_TEXT)


def test_plain_ampersand_stays_plain_text_in_rss_titles(site: str) -> None:
    publish({"title": "Tom & Jerry", "summary": "Tom & Jerry"})
    rss = httpx.get(f"{site}/news/feed.rss")
    # RSS best practice for plain text: '&' and '<' as hexadecimal character references.
    assert "<title>Tom &#x26; Jerry</title>" in rss.text
    entry = parse(rss.content).entries[0]
    assert entry.title_detail["type"] == "text/plain" and entry.title == "Tom & Jerry"
    # description is HTML: the ampersand is escaped there, so it is valid HTML.
    assert entry.summary_detail["type"] == "text/html" and entry.summary == "Tom &amp; Jerry"


def test_partner_text_is_text_in_every_format(site: str, partner: Any) -> None:
    partner.resources["/feed.rss"] = Resource(PARTNER_RSS)
    source = partner_sources.add_source(partner.url("/feed.rss"), name="Partner")
    assert aggregate.fetch_source(source.id).new == 1
    title, summary = "Tom & Jerry <b>fett</b>", "Tom & Jerry <img src=x onerror=alert(1)>"
    check_xml_feeds(site, "?partners=1", title, summary)
    data = httpx.get(f"{site}/news/feed.json?partners=1").json()["items"][0]
    assert data["title"] == title and data["summary"] == summary
    for fragment in (data["content_html"],):
        assert all(tag != "img" for tag, _ in elements(fragment)), fragment


def test_bodies_stay_sanitised_html(site: str) -> None:
    publish({"title": "Mit Text", "body": '<p>Hallo <a href="https://ok.example/">gut</a></p>'})
    for fmt in ("rss", "atom"):
        entry = parse(httpx.get(f"{site}/news/feed.{fmt}").content).entries[0]
        # Without a summary, RSS carries the body as its description.
        detail = entry.content[0] if "content" in entry else entry.summary_detail
        assert detail["type"] == "text/html" and "<a href=" in detail["value"], fmt
    item = httpx.get(f"{site}/news/feed.json").json()["items"][0]
    assert item["content_html"].startswith("<p>Hallo <a href=")
    assert item["content_text"] == "Hallo gut"


# --- property: any text survives every format ------------------------------------------

#: Fragments that have broken feed writers and readers before.
NASTY = [
    "&",
    "&amp;",
    "&amp;amp;",
    "&lt;",
    "&#x3C;",
    "&#0;",
    "&copy",
    "<",
    ">",
    "<b>",
    "</b>",
    "<img src=x onerror=alert(1)>",
    "]]>",
    "<![CDATA[",
    '"',
    "'",
    "\x00",
    "\x07",
    "\x1b",
    "\ud800",
    "\ufffe",
    "\u2028",
    "\r\n",
    "\t",
    "ä",
    "😀",
    " ",
]

texts = st.lists(
    st.one_of(st.sampled_from(NASTY), st.text(st.characters(codec=None), max_size=8)),
    max_size=12,
).map("".join)


def empty_feeds() -> None:
    with engine("feeds").begin() as conn:
        conn.execute(store.history.delete())
        conn.execute(sa.delete(store.items))


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(title=texts, summary=texts)
def test_any_title_and_summary_round_trip(title: str, summary: str) -> None:
    empty_feeds()
    try:
        item = publish({"title": title, "summary": summary})
    except InvalidItem:
        return  # nothing left of the title: the form says so
    query = FeedQuery(ItemFilter())
    for fmt in ("rss", "atom"):
        entry = parse(syndication.render_feed(fmt, query).body).entries[0]
        assert shown_text(entry.title_detail) == as_feedparser_reads(item.title), fmt
        if item.summary:
            assert shown_text(entry.summary_detail) == as_feedparser_reads(item.summary), fmt
    data = json.loads(syndication.render_feed("json", query).body)["items"][0]
    assert data["title"] == item.title and data["summary"] == item.summary
    if item.summary:
        assert html.unescape(data["content_html"]) == f"<p>{item.summary}</p>"
