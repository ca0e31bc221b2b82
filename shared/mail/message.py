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
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from email.utils import format_datetime

from shared.config import get_settings
from shared.database import utcnow
from shared.mail.dkim_signing import DkimKey, configured_key
from shared.mail.headers import (
    HeaderValue,
    UnsafeHeader,
    header_line,
    parse_mailbox,
    recipient_line,
)

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
    us, the ``mailto:`` one (see :mod:`shared.mail.return_paths`)."""

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


def _body(data: str) -> bytes:
    # One C call for the encoding, then the lines cut by slicing: several times faster
    # than base64.encodebytes, which calls into C once per 57-byte chunk.
    encoded = base64.b64encode(data.encode("utf-8"))
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
    ) -> bytes:
        """The complete message for one recipient, CRLF line ends, DKIM-signed when a
        key is configured.

        ``to_address`` must be validated (ASCII domain); a display name that cannot be
        written safely is left out (see :func:`recipient_line`). Without ``html`` the
        mail is plain text only. Raises UnsafeHeader when another value cannot be
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
            personal += _PART_HEADERS["plain"]
            parts = [b"\r\n", _body(text)]
        else:
            boundary = "kgi-" + secrets.token_hex(12)
            personal += header_line("Content-Type", f'multipart/alternative; boundary="{boundary}"')
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
        message = b"".join((self._static, personal.encode("ascii"), *parts))
        return self.dkim_key.sign(message) if self.dkim_key else message
