"""OPML, the feed readers' list of subscriptions: partner sources in and out.

Reading takes what feed readers write (OPML 1.0 and 2.0, outlines nested in categories
at any depth, ``xmlUrl`` in any spelling of its case) and refuses what could hurt: a
document type declaration (entities are how XML files read local files or grow a
thousandfold), more than :data:`MAX_OUTLINES` feeds, anything that is not an OPML
document. The parser resolves no entity and opens no network connection either way.

Writing gives OPML 2.0, one outline per source. A web page read with CSS selectors is no
feed; its outline is of type ``link`` and carries the selectors in an attribute of our
own namespace, as does every outline its fetch interval. So an export imported into
another installation gives the same sources, and other readers skip what they do not
know.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from email.utils import format_datetime

from lxml import etree

from services.feeds.partner_sources import DEFAULT_INTERVAL_MINUTES, SourceDefinition
from services.feeds.store import PAGE_SOURCE, Source
from shared.errors import Invalid

#: Largest OPML file read (2 MiB: a list of 2,000 feeds is about 400 KiB).
MAX_OPML_BYTES = 2 * 1024 * 1024

#: Most feeds one file may list: far more than the network follows, far fewer than
#: would keep an import busy.
MAX_OUTLINES = 2000

#: The namespace of this installation's own outline attributes (selectors, interval).
KGI_NAMESPACE = "urn:kgi-infobrief:opml:1"

#: A parser that resolves no entity, loads no DTD and opens no connection.
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=False
)


#: A document type declaration, where entities are declared.
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)

DOCTYPE_REFUSED = "The file declares a document type, which OPML never needs."


class InvalidOpml(Invalid):
    """The file cannot be read as a list of feeds; the message says why."""


def _attributes(outline: etree._Element) -> dict[str, str]:
    """The outline's attributes under lower-case names (readers differ in case)."""
    return {str(name).lower(): value for name, value in outline.attrib.items()}


def _interval(value: str | None) -> int:
    """The fetch interval an outline asks for; the default when none or not a number
    (the range is checked with the rest of the source)."""
    if value and value.isdigit() and len(value) <= 6:
        return int(value)
    return DEFAULT_INTERVAL_MINUTES


def read_opml(data: bytes) -> list[SourceDefinition]:
    """The sources an OPML file lists, in its order; raises InvalidOpml."""
    if len(data) > MAX_OPML_BYTES:
        raise InvalidOpml(f"The file is larger than {MAX_OPML_BYTES // (1024 * 1024)} MiB.")
    # Refused before parsing, to say why in plain words: the parser would refuse the
    # entities too, but in its own terms ("amplification factor exceeded").
    if _DOCTYPE.search(data):
        raise InvalidOpml(DOCTYPE_REFUSED)
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise InvalidOpml(f"The file is not well-formed XML ({exc.msg}).") from None
    if root.getroottree().docinfo.doctype:  # one the byte search missed (UTF-16)
        raise InvalidOpml(DOCTYPE_REFUSED)
    if etree.QName(root).localname.lower() != "opml":
        raise InvalidOpml("The file is not an OPML document (its root is not <opml>).")
    found: list[SourceDefinition] = []
    for outline in root.iter("{*}outline"):
        attributes = _attributes(outline)
        selectors = outline.get(f"{{{KGI_NAMESPACE}}}selectors")
        url = attributes.get("xmlurl") or (attributes.get("url") if selectors else None)
        if not url:
            continue  # a category, or a link to a page that is no source of ours
        if len(found) == MAX_OUTLINES:
            raise InvalidOpml(f"The file lists more than {MAX_OUTLINES} feeds.")
        found.append(
            SourceDefinition(
                url=url.strip(),
                name=attributes.get("title") or attributes.get("text") or None,
                selectors=selectors,
                language=(attributes.get("language") or "").lower()[:2] or None,
                interval_minutes=_interval(outline.get(f"{{{KGI_NAMESPACE}}}interval")),
            )
        )
    if not found:
        raise InvalidOpml("The file lists no feeds (no outline has an xmlUrl).")
    return found


def write_opml(sources: list[Source], title: str, created: datetime) -> bytes:
    """OPML 2.0 listing ``sources``, readable by any feed reader."""
    root = etree.Element("opml", version="2.0", nsmap={"kgi": KGI_NAMESPACE})
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = format_datetime(created, usegmt=True)
    body = etree.SubElement(root, "body")
    for source in sources:
        outline = etree.SubElement(body, "outline", text=source.name, title=source.name)
        if source.kind == PAGE_SOURCE:
            outline.set("type", "link")
            outline.set("url", source.url)
            outline.set(f"{{{KGI_NAMESPACE}}}selectors", json.dumps(source.selectors or {}))
        else:
            outline.set("type", "rss")
            outline.set("xmlUrl", source.url)
        if source.language:
            outline.set("language", source.language)
        outline.set(f"{{{KGI_NAMESPACE}}}interval", str(source.interval_minutes))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
