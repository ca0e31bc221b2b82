"""Authentication between our own services on internal endpoints: a bearer token derived
from the shared secret key, so no extra secret needs distributing."""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from shared.config import get_settings
from shared.errors import Forbidden
from shared.tokens import secrets_equal


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
