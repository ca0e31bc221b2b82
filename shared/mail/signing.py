"""What we sign in our mails: the addresses that mail comes back to (the VERP bounce
address and the mailto unsubscribe, HMAC-tagged), and the DKIM signature (last section).

With ``KGI_BOUNCE_ADDRESS=bounces@example.org`` every mail to a subscriber goes out with
an envelope sender that names who it was for and, for issues, which issue:
``bounces+42.7.1a2b3c4d5e@example.org`` (subscriber 42, issue 7; 0 for a mail that
belongs to no issue). A bounce arrives at that address, so the receiver knows whom it
is about without trusting anything in the bounce's text. The ``mailto:`` of
List-Unsubscribe is ``bounces+u42.1a2b3c4d5e@example.org``.

The tag ends in an HMAC of its fields under the secret key, so nobody can forge a
bounce or an unsubscribe for an address they do not receive mail at. It is lower-case
hex because some mail systems lower-case local parts, and short (a local part may hold
64 octets: RFC 5321 4.5.3.1.1).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import dkim
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from shared.config import get_settings
from shared.mail.headers import parse_mailbox

#: Hex digits of the HMAC kept in a tag: 40 bits, enough that guessing one takes about
#: 10^12 forged mails, short enough for every mail system's local parts.
SIGNATURE_HEX_DIGITS = 10

#: Key derivation label: tags are signed with a key of their own, not the session key.
_KEY_LABEL = b"kgi return path v1"

#: ``<local>+<tag>@<domain>``; a bounce tag is ``s.i.sig``, an unsubscribe tag ``us.sig``.
_TAGGED = re.compile(
    r"(?P<local>[^+@]+)\+(?:(?P<bounce>(?P<s>\d{1,18})\.(?P<i>\d{1,18}))|u(?P<u>\d{1,18}))"
    rf"\.(?P<sig>[0-9a-f]{{{SIGNATURE_HEX_DIGITS}}})@(?P<domain>[^@]+)",
    re.IGNORECASE,
)

BOUNCE, UNSUBSCRIBE = "bounce", "unsubscribe"

#: Message-IDs of issue mails, ``<issue7.r42.1a2b3c4d@example.org>``: a relay's webhook
#: quotes the Message-ID, and this tells which issue the report is about.
_ISSUE_MESSAGE_ID = re.compile(r"<?issue(\d{1,18})\.r\d{1,18}\.[0-9a-f]+@[^<>@\s]+>?")


@dataclass(frozen=True)
class ReturnTag:
    """What a tagged address says: a bounce of a mail to ``subscriber_id`` (from issue
    ``issue_id``, None for a mail of no issue), or an unsubscribe request."""

    kind: str
    subscriber_id: int
    issue_id: int | None = None


@lru_cache(maxsize=4)
def _key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _signature(fields: str) -> str:
    digest = hmac.new(_key(get_settings().secret_key), fields.encode(), hashlib.sha256)
    return digest.hexdigest()[:SIGNATURE_HEX_DIGITS]


def _base() -> tuple[str, str] | None:
    configured = get_settings().bounce_address
    if not configured:
        return None
    address = parse_mailbox(configured)
    return address.username, address.domain


def enabled() -> bool:
    """Whether KGI_BOUNCE_ADDRESS is set, so tagged addresses exist at all."""
    return _base() is not None


def envelope_sender(subscriber_id: int | None = None, issue_id: int | None = None) -> str:
    """MAIL FROM for one mail: tagged for a subscriber when a bounce address is set,
    else the bounce address itself, else the bare address of KGI_MAIL_FROM."""
    base = _base()
    if base is None:
        return parse_mailbox(get_settings().mail_from).addr_spec
    local, domain = base
    if subscriber_id is None:
        return f"{local}@{domain}"
    fields = f"{subscriber_id}.{issue_id or 0}"
    return f"{local}+{fields}.{_signature(fields)}@{domain}"


def unsubscribe_mailto(subscriber_id: int) -> str | None:
    """The ``mailto:`` URI for List-Unsubscribe (RFC 2369), or None without a bounce
    address: a mailto nobody reads would silently ignore the request."""
    base = _base()
    if base is None:
        return None
    local, domain = base
    fields = f"u{subscriber_id}"
    return f"mailto:{local}+{fields}.{_signature(fields)}@{domain}?subject=unsubscribe"


def issue_message_id(issue_id: int, row_id: int, domain: str) -> str:
    """The Message-ID of one issue mail: unique, and naming the issue."""
    return f"<issue{issue_id}.r{row_id}.{secrets.token_hex(4)}@{domain}>"


def issue_of_message_id(message_id: str | None) -> int | None:
    """The issue an issue mail's Message-ID names, or None for any other Message-ID."""
    match = _ISSUE_MESSAGE_ID.fullmatch((message_id or "").strip())
    return int(match[1]) if match else None


def is_bounce_address(address: str) -> bool:
    """Whether ``address`` is the configured bounce address itself, without a tag."""
    base = _base()
    return base is not None and address.strip().strip("<>").lower() == "@".join(base).lower()


def read_return_address(address: str) -> ReturnTag | None:
    """The tag of one of our tagged addresses, or None for any other address, a tag
    whose signature does not match, or when no bounce address is configured."""
    base = _base()
    match = _TAGGED.fullmatch(address.strip().strip("<>"))
    if base is None or match is None:
        return None
    if (match["local"].lower(), match["domain"].lower()) != (base[0].lower(), base[1].lower()):
        return None
    fields = match["bounce"] or f"u{match['u']}"
    if not hmac.compare_digest(_signature(fields.lower()), match["sig"].lower()):
        return None
    if match["u"] is not None:
        return ReturnTag(UNSUBSCRIBE, int(match["u"]))
    issue_id = int(match["i"])
    return ReturnTag(BOUNCE, int(match["s"]), issue_id or None)


# --------------------------------------------------------------------------------------
# Optional DKIM signing (dkimpy), configured by KGI_DKIM_KEY_FILE, KGI_DKIM_SELECTOR and
# KGI_DKIM_DOMAIN. The signature covers the List-Unsubscribe headers, as RFC 8058 asks, so
# a one-click unsubscribe link cannot be forged onto our mail.
#
# dkimpy canonicalises and hashes; its RSA step is pure Python (about 10 ms per message
# for a 2048-bit key, which capped dispatch near 100 messages per second per core). That
# step is done by OpenSSL instead (``cryptography``, 40 times faster): PKCS#1 v1.5
# signatures are deterministic, so the bytes are the same as dkimpy's own, which the tests
# compare, and dkimpy still verifies every signature the tests make. Its key parser, also
# pure Python, runs once per key instead of once per message.
# --------------------------------------------------------------------------------------

#: dkimpy's hash names and their OpenSSL counterparts (rsa-sha256; rsa-sha1 for old keys).
OPENSSL_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha1": hashes.SHA1,
}


@lru_cache(maxsize=8)
def _openssl_key(numbers: tuple[int, ...]) -> rsa.RSAPrivateKey:
    n, e, d, p, q, dmp1, dmq1, iqmp = numbers
    return rsa.RSAPrivateNumbers(
        p, q, d, dmp1, dmq1, iqmp, rsa.RSAPublicNumbers(e, n)
    ).private_key()


def openssl_rsassa_sign(hash: Any, private_key: dict[str, int]) -> bytes:
    """dkimpy's ``RSASSA_PKCS1_v1_5_sign(hash, private_key)`` done by OpenSSL: the same
    arguments (a finished hash object, the key as dkimpy parsed it), the same bytes."""
    key = _openssl_key(
        tuple(
            private_key[name]
            for name in (
                "modulus", "publicExponent", "privateExponent", "prime1", "prime2",
                "exponent1", "exponent2", "coefficient",
            )
        )
    )  # fmt: skip
    algorithm = OPENSSL_HASHES[hash.name.lower()]()
    return key.sign(hash.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm))


#: dkimpy's own key parser (pure-Python ASN.1, about 0.25 ms), kept for the cache below.
_parse_pem_private_key = dkim.parse_pem_private_key


@lru_cache(maxsize=8)
def parsed_private_key(pem: bytes) -> dict[str, int]:
    """dkimpy's ``parse_pem_private_key`` once per key instead of once per message."""
    return _parse_pem_private_key(pem)


# dkimpy looks both steps up by these names in its own module at every signature.
dkim.RSASSA_PKCS1_v1_5_sign = openssl_rsassa_sign
dkim.parse_pem_private_key = parsed_private_key

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
        # The header names present, read once (not the whole message lowered per name).
        head = message.split(b"\r\n\r\n", 1)[0].lower()
        present = {
            line.split(b":", 1)[0].rstrip()
            for line in head.split(b"\r\n")
            if line[:1] not in (b" ", b"\t")  # a folded line continues the one before
        }
        signature = dkim.sign(
            message,
            self.selector.encode(),
            self.domain.encode(),
            self.private_key,
            include_headers=[h for h in SIGNED_HEADERS if h in present],
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
