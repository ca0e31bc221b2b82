"""Signed tokens: for links in mails (tamper-proof, optionally expiring, one purpose each),
and the bearer token our own services authenticate each other with (last section).

Each purpose has its own salt, so a token made for one link never works for another.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import cache, cached_property
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.signer import HMACAlgorithm
from starlette.requests import Request

from shared.config import get_settings
from shared.errors import Forbidden


class InvalidToken(Exception):
    """The token was altered, made for another purpose, or is not a token at all."""


class ExpiredToken(InvalidToken):
    """The token was genuine but is older than its lifetime allows."""


# An issue to 100,000 subscribers makes 100,000 manage tokens in its audience snapshot.
# itsdangerous builds a signer object, derives the signing key again (a SHA-1) and builds
# an HMAC object for every token: a third of the token's cost. The classes below keep
# the signer and its key, and sign with the one-shot HMAC of OpenSSL: the same
# HMAC-SHA1 over the same bytes, so the tokens are byte for byte what itsdangerous
# makes (tests/test_tokens.py checks that against plain itsdangerous), and every link
# already sent keeps working.


class _OneShotHMAC(HMACAlgorithm):
    """itsdangerous's default signature, HMAC-SHA1, computed in one call."""

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        return hmac.digest(key, value, "sha1")


class _KeptKeySigner(TimestampSigner):
    """itsdangerous's timestamp signer, with the key of its newest secret derived once."""

    @cached_property
    def _newest_key(self) -> bytes:
        return super().derive_key()

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        if secret_key is None:
            return self._newest_key
        return super().derive_key(secret_key)


class _KeptSignerSerializer(URLSafeTimedSerializer):
    """URL-safe timed tokens whose signer is made once (itsdangerous makes one per token)."""

    default_signer = _KeptKeySigner

    @cached_property
    def _own_signer(self) -> _KeptKeySigner:
        return super().make_signer()  # type: ignore[return-value]

    def make_signer(self, salt: str | bytes | None = None) -> TimestampSigner:
        if salt is None:
            return self._own_signer
        return super().make_signer(salt)


@cache
def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return _KeptSignerSerializer(
        get_settings().secret_key,
        salt=f"kgi.{purpose}",
        signer_kwargs={"algorithm": _OneShotHMAC()},
    )


def make_token(purpose: str, payload: Any) -> str:
    """Sign ``payload`` (JSON-serialisable) for ``purpose``."""
    return _serializer(purpose).dumps(payload)


def read_token(purpose: str, token: str, max_age_seconds: int | None = None) -> Any:
    """The payload of a token made for ``purpose``; raises InvalidToken or ExpiredToken."""
    try:
        return _serializer(purpose).loads(token, max_age=max_age_seconds)
    except SignatureExpired:
        raise ExpiredToken(purpose) from None
    except BadSignature:
        raise InvalidToken(purpose) from None


def secrets_equal(given: str, expected: str) -> bool:
    """Compare a secret a client sent with ours in constant time.

    ``hmac.compare_digest`` refuses ``str`` with non-ASCII characters (TypeError, so a
    500 for ``csrf_token=%C3%A4`` or a Latin-1 ``Authorization`` header); compared as
    UTF-8 bytes any text, lone surrogates included, is simply unequal.
    """
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


# --------------------------------------------------------------------------------------
# Authentication between our own services on internal endpoints: a bearer token derived
# from the shared secret key, so no extra secret needs distributing.
# --------------------------------------------------------------------------------------


def service_token() -> str:
    """The token every service of this installation sends and accepts."""
    key = get_settings().secret_key.encode()
    return hmac.new(key, b"kgi internal service api", hashlib.sha256).hexdigest()


def service_headers() -> dict[str, str]:
    """The headers a service sends on every call to another service's internal API."""
    return {"Authorization": f"Bearer {service_token()}"}


def require_service(request: Request) -> None:
    """Raise 403 unless the request carries the service token."""
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not secrets_equal(given, service_token()):
        raise Forbidden("This endpoint is for the platform's own services.")
