"""Building mails: multipart/alternative, encoded headers, Message-ID, Date, CRLF line ends."""

from __future__ import annotations

import email.policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from shared.config import get_settings
from shared.database import utcnow

#: RFC 5322 output with CRLF line ends and a 78-character fold, as SMTP expects.
MAIL_POLICY = email.policy.SMTP


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
    ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058).
    Header values with line breaks are refused by the policy, so no header injection.
    """
    settings = get_settings()
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = message_id or make_msgid(domain=settings.mail_domain)
    message["MIME-Version"] = "1.0"
    if unsubscribe_url:
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in (extra_headers or {}).items():
        message[name] = value
    message.set_content(text, cte="quoted-printable")
    if html is not None:
        message.add_alternative(html, subtype="html", cte="quoted-printable")
    return message
