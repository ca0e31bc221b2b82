"""Signed tokens: for links in mails (tamper-proof, optionally expiring, one purpose each),
and the bearer token our own services authenticate each other with (last section).

Each purpose has its own salt, so a token made for one link never works for another.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import cache
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.requests import Request

from shared.config import get_settings
from shared.errors import Forbidden


class InvalidToken(Exception):
    """The token was altered, made for another purpose, or is not a token at all."""


class ExpiredToken(InvalidToken):
    """The token was genuine but is older than its lifetime allows."""


@cache
def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(get_settings().secret_key, salt=f"kgi.{purpose}")


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
