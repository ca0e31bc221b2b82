"""Plain-text mail parts: HTML turned into readable text, and lines wrapped at 72 columns.

Every mail goes out as multipart/alternative, and its text part is what plain-text
readers, screen readers in some clients and spam filters see. Lines are wrapped at
:data:`TEXT_WIDTH` at spaces only, so a URL is never cut (a cut link stops working); a
URL longer than a line stands alone on its own.
"""

from __future__ import annotations

import re
import textwrap

from bs4 import BeautifulSoup, NavigableString, Tag

#: Width of a plain-text line: the usual 72 columns, which leave room for the "> " of a
#: few levels of quoting within the 78 characters RFC 5322 recommends.
TEXT_WIDTH = 72

#: Elements that start and end on a line of their own in the text.
_BLOCKS = {"p", "div", "table", "tr", "ul", "ol", "h1", "h2", "h3", "h4", "blockquote", "section"}

#: What hides an element from the reader: the mail's preheader (shown only in the
#: client's preview line, with its invisible filler), anything hidden from screen readers
#: and anything inlined as ``display: none``.
_HIDDEN = "style, script, head, .preheader, [aria-hidden=true]"
_DISPLAY_NONE = re.compile(r"display\s*:\s*none", re.IGNORECASE)

#: The start of a list item; its continuation lines are indented under its text.
_BULLET = re.compile(r"\s*(?:[*•-] |\d+[.)] )?")


def wrap_text(text: str, width: int = TEXT_WIDTH) -> str:
    """``text`` with every line longer than ``width`` wrapped at spaces.

    Lines are wrapped one at a time, so the text's own line breaks (paragraphs, the
    ``-- `` signature separator, one link per line) stay as they are, and a line that
    fits is returned unchanged: wrapping wrapped text changes nothing. A word is never
    broken, so a URL longer than ``width`` gets a line of its own and may exceed it.
    """
    lines: list[str] = []
    for line in text.split("\n"):
        if len(line) <= width:
            lines.append(line)
            continue
        lead = _BULLET.match(line)
        indent = " " * (lead.end() if lead else 0)
        lines.extend(
            textwrap.wrap(
                line,
                width=width,
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
            or [line]
        )
    return "\n".join(lines)


def html_to_text(document: str, width: int = TEXT_WIDTH) -> str:
    """A readable plain-text version of an HTML mail, wrapped at ``width``.

    Headings are underlined, links written as ``text <url>``, images as their alt text,
    list items as ``* item``; the preheader and other hidden elements are left out.
    """
    soup = BeautifulSoup(document, "html.parser")
    for hidden in soup.select(_HIDDEN):
        hidden.decompose()
    for styled in soup.find_all(style=_DISPLAY_NONE):
        styled.decompose()
    parts: list[str] = []
    _walk(soup.body or soup, parts, width)
    # Indentation of the HTML source is no part of the text.
    text = "\n".join(line.strip() for line in "".join(parts).splitlines())
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return wrap_text(text, width) + "\n"


def _walk(node: Tag, out: list[str], width: int) -> None:
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
            out.append(f"\n\n{title}\n{underline * min(len(title), width)}\n")
        elif name == "li":
            out.append("\n* ")
            _walk(child, out, width)
        elif name == "img":
            alt = child.get("alt")
            if alt:
                out.append(f"[{alt}]")
        elif name == "hr":
            out.append("\n" + "-" * width + "\n")
        elif name in _BLOCKS or name == "td":
            out.append("\n")
            _walk(child, out, width)
            out.append("\n")
        else:
            _walk(child, out, width)
