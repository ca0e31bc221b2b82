"""Building mails: multipart/alternative, encoded headers, Message-ID, Date, CRLF line ends."""

from __future__ import annotations

import email.policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from shared.config import get_settings
from shared.database import utcnow
from shared.mail.headers import (
    HeaderValue,
    UnsafeHeader,
    header_line,
    parse_mailbox,
    recipient_line,
)

#: RFC 5322 output with CRLF line ends, as SMTP expects. Our headers arrive folded and
#: verified from :func:`header_line`; ``refold_source="none"`` makes the policy write them
#: as they are instead of refolding them with its own folder (CVE-2024-6923).
MAIL_POLICY = email.policy.SMTP.clone(refold_source="none")

#: Headers build_message writes itself; ``extra_headers`` may not repeat or replace them.
_OWN_HEADERS = frozenset(
    {
        "from", "to", "subject", "date", "message-id", "mime-version", "list-unsubscribe",
        "list-unsubscribe-post", "content-type", "content-transfer-encoding",
    }
)  # fmt: skip


def envelope_sender() -> str:
    """The bare address of KGI_MAIL_FROM, for MAIL FROM."""
    return parseaddr(get_settings().mail_from)[1] or "infobrief@localhost"


def recipient(address: str, name: str = "") -> Address:
    """A To address; ``address`` must already be validated (ASCII domain)."""
    local, _, domain = address.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def build_message(
    *,
    to: Address | str,
    subject: str,
    text: str,
    html: str | None = None,
    unsubscribe_url: str | None = None,
    extra_headers: dict[str, str] | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    """A ready-to-send message from the configured sender.

    With ``unsubscribe_url`` the message carries ``List-Unsubscribe`` and
    ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058). Every header is
    built and verified by :func:`header_line`, so no value can add a header or a body
    part; one that cannot be written safely raises UnsafeHeader (a ValueError).
    """
    settings = get_settings()
    message = EmailMessage(policy=MAIL_POLICY)
    _set(message, "From", parse_mailbox(settings.mail_from))
    to = to if isinstance(to, Address) else parse_mailbox(to)
    _set_line(message, "To", recipient_line(to.username, to.domain, to.display_name))
    _set(message, "Subject", subject)
    _set(message, "Date", format_datetime(utcnow()))
    _set(message, "Message-ID", message_id or make_msgid(domain=settings.mail_domain))
    _set(message, "MIME-Version", "1.0")
    if unsubscribe_url:
        _set(message, "List-Unsubscribe", f"<{unsubscribe_url}>")
        _set(message, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    for name, value in (extra_headers or {}).items():
        if name.lower() in _OWN_HEADERS or name in message:
            raise UnsafeHeader(f"{name} is set by build_message or given twice")
        _set(message, name, value)
    message.set_content(text, cte="quoted-printable")
    if html is not None:
        message.add_alternative(html, subtype="html", cte="quoted-printable")
    return message


def _set(message: EmailMessage, name: str, value: HeaderValue) -> None:
    _set_line(message, name, header_line(name, value))


def _set_line(message: EmailMessage, name: str, line: str) -> None:
    # set_raw stores the verified, folded value as it is, like a parsed header; the
    # policy (refold_source="none") writes it back unchanged, and reading message[name]
    # still gives the decoded header object.
    message.set_raw(name, line[len(name) + 1 : -2].lstrip(" "))
