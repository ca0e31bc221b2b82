"""RSS 2.0, Atom 1.0 and JSON Feed 1.1 (and iCalendar) of the visible items.

feedgen builds RSS and Atom; its known pitfalls are handled here: it needs timezone-aware
dates, it does not derive ``updated`` (we set it from the content, so unchanged content
gives byte-identical output and a stable ETag), and the ``self`` link must be the URL
actually served (the app redirects to the canonical query first). How text and HTML go
into each format is :mod:`services.feeds.feed_text`.

Validators: the ETag is weak (responses are gzip-compressed on the way out, so the bytes
on the wire differ from the ones hashed); Last-Modified never goes backwards, because it
includes the moment of the latest change to public content (a retract removes the newest
item but moves the date forward).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlencode, urlsplit

from feedgen.feed import FeedGenerator
from lxml import etree

from services.feeds.downloads import ItemFile, files_of
from services.feeds.feed_text import (
    as_html,
    body_text,
    hex_references_in_titles,
    paragraph,
    printable,
    rss_title,
)
from services.feeds.listing import (
    ItemFilter,
    last_public_change,
    public_items,
    unchanged_until,
)
from services.feeds.store import CONFERENCE_REPORT, NEWS, Item
from shared.config import get_settings
from shared.database import utcnow
from shared.errors import NotFound
from shared.i18n import translate
from shared.sanitize import writable
from shared.web.caching import Rendered, weak_etag
from shared.web.paths import absolute_url_for

#: Items per feed page; older items are reached through the ``next`` link.
FEED_PAGE_SIZE = 50

#: Media types per format.
MEDIA_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
    "ics": "text/calendar; charset=utf-8",
}

#: Before any content exists, feeds say they were last modified at this fixed time.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

ATOM_NS = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

KIND_TITLES = {NEWS: "News", CONFERENCE_REPORT: "Conference reports"}


class PageNotFound(NotFound, LookupError):
    """The feed has fewer pages than the one asked for."""


@dataclass(frozen=True)
class FeedQuery:
    """A feed's selection and page, with its one canonical query string."""

    selection: ItemFilter
    page: int = 1

    @property
    def query_string(self) -> str:
        """The selection and page as a query string, parameters always in the same order."""
        params: list[tuple[str, str]] = []
        s = self.selection
        if s.kind:
            params.append(("type", s.kind))
        if s.tag:
            params.append(("tag", s.tag))
        if s.language:
            params.append(("lang", s.language))
        if s.include_partners:
            params.append(("partners", "1"))
        if self.page > 1:
            params.append(("page", str(self.page)))
        return urlencode(params)

    def url(self, fmt: str, page: int | None = None) -> str:
        """The absolute URL of this selection's feed in ``fmt``, at ``page`` (else this one)."""
        query = FeedQuery(self.selection, page or self.page).query_string
        return absolute_url_for("feeds:feed", fmt=fmt) + ("?" + query if query else "")


def feed_title(selection: ItemFilter) -> str:
    language = selection.language or "de"
    parts = [
        translate(KIND_TITLES.get(selection.kind or "", "News and conference reports"), language)
    ]
    if selection.tag:
        parts.append(f"{translate('Tag', language)}: {writable(selection.tag)}")
    if selection.include_partners:
        parts.append(translate("with partner news", language))
    return "KGI – " + " · ".join(parts)


def item_url(item: Item) -> str:
    """The absolute URL of the item's page on this site (also a partner item's: the
    original is linked from there)."""
    return absolute_url_for("feeds:item", slug=item.slug)


def item_id(item: Item) -> tuple[str, bool]:
    """(stable unique id, whether it is a permalink). Own items: their page URL, which
    never changes. Partner items: a tag URI of ours, since their GUIDs may collide."""
    if item.is_partner:
        host = urlsplit(get_settings().base_url).hostname or "localhost"
        return f"tag:{host},2026:partner-item-{item.id}", False
    return item_url(item), True


def last_modified(items: list[Item]) -> datetime:
    """The feed's Last-Modified: the newest item shown or the latest change to what the
    public sees, whichever is later (to the second, as HTTP dates are)."""
    candidates = [item.updated_at for item in items]
    changed = last_public_change(utcnow())
    if changed is not None:
        candidates.append(changed)
    return max(candidates, default=EPOCH).replace(microsecond=0)


def render_feed(fmt: str, query: FeedQuery) -> Rendered:
    """Render one page of a feed in ``fmt`` (rss, atom or json); raises PageNotFound for a
    page past the last (page 1 always exists, empty or not)."""
    offset = (query.page - 1) * FEED_PAGE_SIZE
    found, total = public_items(query.selection, FEED_PAGE_SIZE, offset)
    if query.page > 1 and offset >= total:
        raise PageNotFound("There is no such page.")
    items = [printable(item) for item in found]
    has_next = offset + len(items) < total
    modified = last_modified(items)
    files = files_of([item.id for item in items])
    if fmt == "json":
        body = _json_feed(query, items, has_next, files)
    else:
        body = _feedgen(fmt, query, items, has_next, modified, files)
    return Rendered(body, MEDIA_TYPES[fmt], weak_etag(body), modified, unchanged_until())


def file_url(file: ItemFile) -> str:
    """The absolute address a feed gives for an attached file."""
    return absolute_url_for("feeds:download", id=file.id, name=quote(file.name, safe=""))


def _feedgen(
    fmt: str,
    query: FeedQuery,
    items: list[Item],
    has_next: bool,
    modified: datetime,
    files: dict[int, list[ItemFile]],
) -> bytes:
    rss = fmt == "rss"
    fg = FeedGenerator()
    fg.load_extension("dc")
    fg.id(query.url("atom", 1).replace("/feed.atom", "/feed"))
    title = feed_title(query.selection)
    fg.title(rss_title(title) if rss else title)
    fg.subtitle(
        translate("News and conference reports from the network", query.selection.language or "de")
    )
    fg.link(href=query.url(fmt), rel="self", type=MEDIA_TYPES[fmt].split(";")[0])
    fg.link(href=absolute_url_for("feeds:news"), rel="alternate", type="text/html")
    if fmt == "atom":
        fg.link(href=query.url(fmt, 1), rel="first")
        if query.page > 1:
            fg.link(href=query.url(fmt, query.page - 1), rel="previous")
        if has_next:
            fg.link(href=query.url(fmt, query.page + 1), rel="next")
    fg.language(query.selection.language or "de")
    fg.author({"name": "KGI-Infobrief"})
    fg.generator("KGI-Infobrief")
    fg.updated(modified)
    fg.lastBuildDate(modified)
    # feedgen prepends entries: add oldest first so the newest ends up on top.
    for item in reversed(items):
        entry = fg.add_entry()
        identifier, permalink = item_id(item)
        entry.id(identifier)
        entry.guid(identifier, permalink=permalink)
        entry.title(rss_title(item.title) if rss else item.title)
        link = item.link if item.is_partner and item.link else item_url(item)
        entry.link(href=link, rel="alternate")
        entry.published(item.published_at or item.created_at)
        entry.updated(item.updated_at)
        if item.summary:
            # RSS description is HTML; Atom summary is text (type="text").
            entry.summary(as_html(item.summary) if rss else item.summary)
        if item.body:
            # Escaped, not CDATA: nothing in a body can then end the section early.
            entry.content(item.body, type=None if rss else "html")
        for tag in item.tags:
            entry.category(term=tag)
        # RSS has no per-item language but dc:language; Atom gets xml:lang below.
        entry.dc.dc_language(item.language)
        author = item.author or (item.source_name if item.is_partner else None)
        if author:
            entry.author({"name": author})
            entry.dc.dc_creator(author)
        if rss and files.get(item.id):
            # RSS has room for one enclosure: the first file.
            first = files[item.id][0]
            entry.enclosure(file_url(first), first.size, first.media_type)
    if fmt == "atom":
        return _with_entry_details(fg.atom_str(pretty=True), items, files)
    return hex_references_in_titles(_with_rss_paging(fg.rss_str(pretty=True), query, has_next))


def _with_entry_details(body: bytes, items: list[Item], files: dict[int, list[ItemFile]]) -> bytes:
    """Mark each Atom entry with its item's language (xml:lang), since a feed without a
    language filter mixes German and English, and give it a link per attached file.
    (feedgen 1.0 writes entry links without their rel, type and length, so an
    enclosure would come out as a second alternate link.)"""
    by_id = {item_id(item)[0]: item for item in items}
    root = etree.fromstring(body)
    for entry in root.iter(f"{{{ATOM_NS}}}entry"):
        item = by_id.get(entry.findtext(f"{{{ATOM_NS}}}id") or "")
        if item is None:
            continue
        entry.set(XML_LANG, item.language)
        for file in files.get(item.id, []):
            etree.SubElement(
                entry,
                f"{{{ATOM_NS}}}link",
                rel="enclosure",
                href=file_url(file),
                type=file.media_type,
                length=str(file.size),
                title=file.name,
            )
    return etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")


def _with_rss_paging(body: bytes, query: FeedQuery, has_next: bool) -> bytes:
    """Add RFC 5005 paging links to RSS as atom:link elements. (feedgen would turn any
    extra link into the channel's <link>, so they are added to its output.)"""
    paging = [("first", 1)]
    if query.page > 1:
        paging.append(("previous", query.page - 1))
    if has_next:
        paging.append(("next", query.page + 1))
    root = etree.fromstring(body)
    channel = root.find("channel")
    self_link = channel.find(f"{{{ATOM_NS}}}link")
    position = list(channel).index(self_link) + 1 if self_link is not None else len(channel)
    for offset, (rel, page) in enumerate(paging):
        link = etree.Element(f"{{{ATOM_NS}}}link", href=query.url("rss", page), rel=rel)
        link.tail = self_link.tail if self_link is not None else None
        channel.insert(position + offset, link)
    return etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")


def _json_feed(
    query: FeedQuery, items: list[Item], has_next: bool, files: dict[int, list[ItemFile]]
) -> bytes:
    settings = get_settings()
    feed: dict[str, object] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": feed_title(query.selection),
        "home_page_url": absolute_url_for("feeds:news"),
        "feed_url": query.url("json"),
        "language": query.selection.language or "de",
        "authors": [{"name": "KGI-Infobrief"}],
    }
    entries: list[dict[str, object]] = []
    feed["items"] = entries
    if has_next:
        feed["next_url"] = query.url("json", query.page + 1)
    for item in items:
        identifier, _ = item_id(item)
        entry: dict[str, object] = {
            "id": identifier,
            "url": item_url(item),
            "title": item.title,
            "summary": item.summary,
            "content_html": item.body or paragraph(item.summary),
            "content_text": body_text(item),
            "date_published": (item.published_at or item.created_at).isoformat(),
            "date_modified": item.updated_at.isoformat(),
            "tags": item.tags,
            "language": item.language,
            "_kgi": {"kind": item.kind, "origin": item.origin, "source": item.source_name},
        }
        if item.is_partner and item.link:
            entry["external_url"] = item.link
        if item.lead_image_url:
            image = item.lead_image_url
            entry["image"] = settings.absolute_url(image) if image.startswith("/") else image
        author = item.author or (item.source_name if item.is_partner else None)
        if author:
            entry["authors"] = [{"name": author}]
        if files.get(item.id):
            entry["attachments"] = [
                {
                    "url": file_url(file),
                    "mime_type": file.media_type,
                    "title": file.name,
                    "size_in_bytes": file.size,
                }
                for file in files[item.id]
            ]
        entries.append(entry)
    return json.dumps(feed, ensure_ascii=False, indent=1).encode()
