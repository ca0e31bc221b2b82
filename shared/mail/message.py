"""Building every mail we send: prepared once, turned into bytes per recipient cheaply.

One builder for all kinds (issues, test sends, confirmation, welcome, the editor's
summary), so every mail gets the same sender headers, the same checks and, when
configured, the same DKIM signature. What differs between the kinds is said once, in
:class:`MailKind`.

Headers that are the same for everyone (From, Subject, List-Id, Reply-To, Feedback-ID)
are encoded once; per recipient only To, Date, Message-ID, List-Unsubscribe and the
bodies change. Bodies are base64-encoded (a C routine), so 100,000 recipients cost
little CPU. Every header line comes from :func:`header_line`, which refuses
(UnsafeHeader, a ValueError) any value it cannot write so that it parses back the same:
CRLF only, no line over 998 octets, encoded words only where needed and never inside a
URI.

The text part of every mail is made by :func:`html_to_text` or :func:`wrap_text` (last
section below).
"""

from __future__ import annotations

import base64
import re
import secrets
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import format_datetime

from bs4 import BeautifulSoup, NavigableString, Tag

from shared.config import get_settings
from shared.database import utcnow
from shared.mail.headers import (
    HeaderValue,
    UnsafeHeader,
    header_line,
    parse_mailbox,
    recipient_line,
)
from shared.mail.signing import DkimKey, configured_key

#: Base64 line length (RFC 2045 allows at most 76).
_LINE = 76

#: The last field of every Feedback-ID: who sends (Gmail's feedback loop groups by it).
FEEDBACK_SENDER_ID = "kgi-infobrief"


@dataclass(frozen=True)
class MailKind:
    """What sets one kind of mail apart from the others.

    ``list_mail``: part of the newsletter list, so it carries List-Id (RFC 2919) and,
    when the recipient has links, List-Unsubscribe with one-click (RFC 8058).
    ``auto_submitted``: a mail the system writes by itself (RFC 3834), so vacation
    responders do not answer it.
    """

    name: str
    list_mail: bool
    auto_submitted: bool


ISSUE = MailKind("newsletter", list_mail=True, auto_submitted=False)
CONFIRMATION = MailKind("confirmation", list_mail=False, auto_submitted=True)
WELCOME = MailKind("welcome", list_mail=True, auto_submitted=True)
SUMMARY = MailKind("summary", list_mail=False, auto_submitted=True)


@dataclass(frozen=True)
class Unsubscribe:
    """A recipient's ways out: the one-click https URI and, when mail can come back to
    us, the ``mailto:`` one (see :mod:`shared.mail.signing`)."""

    url: str
    mailto: str | None = None

    def header_value(self) -> str:
        """The List-Unsubscribe value: mailto first, as RFC 2369 lists by preference
        and Gmail/Yahoo accept either; the https one is what one-click posts to."""
        if self.mailto:
            return f"<{self.mailto}>, <{self.url}>"
        return f"<{self.url}>"


#: The same for every recipient, so built (and verified) once.
_ONE_CLICK = header_line("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")

#: The headers of each body part; the boundary line in front of them varies.
_PART_HEADERS = {
    kind: (
        header_line("Content-Type", f'text/{kind}; charset="utf-8"')
        + header_line("Content-Transfer-Encoding", "base64")
    )
    for kind in ("plain", "html")
}

#: Headers the builder writes itself; extra headers may not repeat or replace them.
_OWN_HEADERS = frozenset(
    {
        "from", "to", "subject", "date", "message-id", "mime-version", "list-id", "reply-to",
        "list-unsubscribe", "list-unsubscribe-post", "content-type", "content-transfer-encoding",
        "feedback-id", "auto-submitted",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Attachment:
    """A file sent along (an iCalendar invitation): its ASCII file name, its full
    Content-Type value and its bytes."""

    filename: str
    content_type: str
    data: bytes

    def part(self) -> bytes:
        """The MIME part: headers and the base64 body."""
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", self.filename):
            raise UnsafeHeader("an attachment's file name must be a short ASCII name")
        headers = (
            header_line("Content-Type", self.content_type)
            + header_line("Content-Disposition", f'attachment; filename="{self.filename}"')
            + header_line("Content-Transfer-Encoding", "base64")
        )
        return headers.encode("ascii") + b"\r\n" + _body(self.data)


def _body(data: str | bytes) -> bytes:
    # One C call for the encoding, then the lines cut by slicing: several times faster
    # than base64.encodebytes, which calls into C once per 57-byte chunk.
    encoded = base64.b64encode(data.encode("utf-8") if isinstance(data, str) else data)
    lines = [encoded[i : i + _LINE] for i in range(0, len(encoded), _LINE)]
    return b"\r\n".join(lines) + b"\r\n"


class PreparedMessage:
    """A mail prepared once; :meth:`render` gives the bytes for one recipient."""

    def __init__(
        self,
        subject: str,
        kind: MailKind,
        campaign: str | None = None,
        extra_headers: dict[str, str] | None = None,
        dkim_key: DkimKey | None = None,
    ) -> None:
        """``campaign`` names this mailing in Feedback-ID (``issue7``; default: the
        kind's name), so complaint rates are reported per issue."""
        settings = get_settings()
        self.kind = kind
        self.dkim_key = dkim_key or configured_key()
        self.domain = settings.mail_domain
        static: list[tuple[str, HeaderValue]] = [
            ("From", parse_mailbox(settings.mail_from)),
            ("Subject", subject),
            ("MIME-Version", "1.0"),
        ]
        if kind.list_mail:
            static.append(("List-Id", settings.list_id))
        if settings.reply_to:
            static.append(("Reply-To", parse_mailbox(settings.reply_to)))
        static.append(("Feedback-ID", f"{campaign or kind.name}:{kind.name}:{FEEDBACK_SENDER_ID}"))
        if kind.auto_submitted:
            static.append(("Auto-Submitted", "auto-generated"))
        extra = extra_headers or {}
        if len({name.lower() for name in extra} | _OWN_HEADERS) != len(extra) + len(_OWN_HEADERS):
            raise UnsafeHeader("extra headers repeat a header the builder writes, or each other")
        static += extra.items()
        self._static = "".join(header_line(name, value) for name, value in static).encode("ascii")

    def render(
        self,
        to_address: str,
        to_name: str,
        text: str,
        html: str | None = None,
        unsubscribe: Unsubscribe | None = None,
        message_id: str | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> bytes:
        """The complete message for one recipient, CRLF line ends, DKIM-signed when a
        key is configured.

        ``to_address`` must be validated (ASCII domain); a display name that cannot be
        written safely is left out (see :func:`recipient_line`). Without ``html`` the
        mail is plain text only; ``attachments`` make it multipart/mixed, the texts
        first. Raises UnsafeHeader when another value cannot be
        written safely.
        """
        message_id = message_id or f"<{secrets.token_hex(12)}@{self.domain}>"
        local, _, domain = to_address.rpartition("@")
        personal = (
            recipient_line(local, domain, to_name)
            + header_line("Date", format_datetime(utcnow()))
            + header_line("Message-ID", message_id)
        )
        if unsubscribe is not None and self.kind.list_mail:
            personal += header_line("List-Unsubscribe", unsubscribe.header_value()) + _ONE_CLICK
        if html is None:
            content = _PART_HEADERS["plain"]
            parts = [b"\r\n", _body(text)]
        else:
            boundary = "kgi-" + secrets.token_hex(12)
            content = header_line("Content-Type", f'multipart/alternative; boundary="{boundary}"')
            separator = f"--{boundary}\r\n".encode()
            parts = [
                b"\r\n",
                separator,
                _PART_HEADERS["plain"].encode("ascii"),
                b"\r\n",
                _body(text),
                separator,
                _PART_HEADERS["html"].encode("ascii"),
                b"\r\n",
                _body(html),
                f"--{boundary}--\r\n".encode(),
            ]
        if attachments:
            # The texts become the first part of a multipart/mixed, the files follow.
            outer = "kgi-" + secrets.token_hex(12)
            parts = [b"\r\n", f"--{outer}\r\n{content}".encode("ascii"), *parts]
            for attachment in attachments:
                parts += [f"--{outer}\r\n".encode(), attachment.part()]
            parts.append(f"--{outer}--\r\n".encode())
            content = header_line("Content-Type", f'multipart/mixed; boundary="{outer}"')
        personal += content
        message = b"".join((self._static, personal.encode("ascii"), *parts))
        return self.dkim_key.sign(message) if self.dkim_key else message


# --------------------------------------------------------------------------------------
# Plain-text mail parts: HTML turned into readable text, and lines wrapped at 72 columns.
#
# Every mail goes out as multipart/alternative, and its text part is what plain-text
# readers, screen readers in some clients and spam filters see. Lines are wrapped at
# :data:`TEXT_WIDTH` at spaces only, so a URL is never cut (a cut link stops working); a
# URL longer than a line stands alone on its own.
# --------------------------------------------------------------------------------------

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
