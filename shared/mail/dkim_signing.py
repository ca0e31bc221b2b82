"""Optional DKIM signing (dkimpy), configured by KGI_DKIM_KEY_FILE, KGI_DKIM_SELECTOR and
KGI_DKIM_DOMAIN. The signature covers the List-Unsubscribe headers, as RFC 8058 asks, so
a one-click unsubscribe link cannot be forged onto our mail."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import dkim

from shared.config import get_settings

#: Headers the signature covers.
SIGNED_HEADERS = (
    b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
    b"list-id", b"list-unsubscribe", b"list-unsubscribe-post", b"reply-to", b"feedback-id",
    b"auto-submitted",
)  # fmt: skip


@dataclass(frozen=True)
class DkimKey:
    selector: str
    domain: str
    private_key: bytes

    def sign(self, message: bytes) -> bytes:
        """``message`` with a DKIM-Signature header in front."""
        signature = dkim.sign(
            message,
            self.selector.encode(),
            self.domain.encode(),
            self.private_key,
            include_headers=[
                h for h in SIGNED_HEADERS if h + b":" in message.lower().split(b"\r\n\r\n", 1)[0]
            ],
        )
        return signature + message


@cache
def configured_key() -> DkimKey | None:
    """The key from the configuration, or None when DKIM signing is off."""
    settings = get_settings()
    if not (settings.dkim_key_file and settings.dkim_selector and settings.dkim_domain):
        return None
    return DkimKey(
        settings.dkim_selector, settings.dkim_domain, Path(settings.dkim_key_file).read_bytes()
    )
