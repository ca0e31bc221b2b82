"""Optional DKIM signing (dkimpy), configured by KGI_DKIM_KEY_FILE, KGI_DKIM_SELECTOR and
KGI_DKIM_DOMAIN. The signature covers the List-Unsubscribe headers, as RFC 8058 asks, so
a one-click unsubscribe link cannot be forged onto our mail.

dkimpy canonicalises and hashes; its RSA step is pure Python (about 10 ms per message
for a 2048-bit key, which capped dispatch near 100 messages per second per core). That
step is done by OpenSSL instead (``cryptography``, 40 times faster): PKCS#1 v1.5
signatures are deterministic, so the bytes are the same as dkimpy's own, which the tests
compare, and dkimpy still verifies every signature the tests make. Its key parser, also
pure Python, runs once per key instead of once per message.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import dkim
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from shared.config import get_settings

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
