"""Mass mail: a message prepared once and turned into bytes per recipient cheaply.

Headers that are the same for everyone (From, Subject, List-Id, Reply-To) are encoded
once; per recipient only To, Message-ID, List-Unsubscribe and the two bodies change.
Bodies are base64-encoded (a C routine), so 100,000 recipients cost little CPU. The
result is the same RFC 5322 / MIME structure :mod:`shared.mail.message` builds.
"""

from __future__ import annotations

import base64
import secrets
from email.header import Header
from email.utils import format_datetime, formataddr

from shared.config import get_settings
from shared.database import utcnow
from shared.mail.dkim_signing import DkimKey, configured_key


def _header(value: str) -> str:
    """``value`` as an RFC 2047 encoded word when it is not plain ASCII."""
    return value if value.isascii() else Header(value, "utf-8").encode()


#: Base64 line length (RFC 2045 allows at most 76).
_LINE = 76


def _body(data: str) -> bytes:
    # One C call for the encoding, then the lines cut by slicing: several times faster
    # than base64.encodebytes, which calls into C once per 57-byte chunk.
    encoded = base64.b64encode(data.encode("utf-8"))
    lines = [encoded[i : i + _LINE] for i in range(0, len(encoded), _LINE)]
    return b"\r\n".join(lines) + b"\r\n"


class BulkMessage:
    """A prepared message; :meth:`render` gives the bytes for one recipient."""

    def __init__(
        self,
        subject: str,
        extra_headers: dict[str, str] | None = None,
        dkim_key: DkimKey | None = None,
    ) -> None:
        settings = get_settings()
        self.dkim_key = dkim_key or configured_key()
        self.domain = settings.mail_domain
        static = {
            "From": settings.mail_from,
            "Subject": _header(subject),
            "MIME-Version": "1.0",
            "List-Id": settings.list_id,
            **({"Reply-To": settings.reply_to} if settings.reply_to else {}),
            **(extra_headers or {}),
        }
        self._static = "".join(f"{name}: {value}\r\n" for name, value in static.items()).encode()

    def render(
        self,
        to_address: str,
        to_name: str,
        html: str,
        text: str,
        unsubscribe_url: str | None,
        message_id: str | None = None,
    ) -> bytes:
        """The complete message for one recipient, CRLF line ends."""
        boundary = "kgi-" + secrets.token_hex(12)
        message_id = message_id or f"<{secrets.token_hex(12)}@{self.domain}>"
        to = formataddr((to_name, to_address), charset="utf-8") if to_name else to_address
        personal = f"To: {to}\r\nDate: {format_datetime(utcnow())}\r\nMessage-ID: {message_id}\r\n"
        if unsubscribe_url:
            personal += (
                f"List-Unsubscribe: <{unsubscribe_url}>\r\n"
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            )
        personal += f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
        part = (
            '--{b}\r\nContent-Type: text/{kind}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
        )
        message = b"".join(
            (
                self._static,
                personal.encode(),
                part.format(b=boundary, kind="plain").encode(),
                _body(text),
                part.format(b=boundary, kind="html").encode(),
                _body(html),
                f"--{boundary}--\r\n".encode(),
            )
        )
        return self.dkim_key.sign(message) if self.dkim_key else message
