"""CSRF protection for every form that changes state: a per-session token in a hidden field.

Endpoints reached by a secret link (one-click unsubscribe per RFC 8058) carry their own
proof in the URL and must work without a cookie; they do not use this.
"""

from __future__ import annotations

import secrets

from starlette.datastructures import FormData
from starlette.requests import Request

from shared.errors import Forbidden
from shared.tokens import secrets_equal
from shared.web.sessions import session_of

#: Name of the hidden form field that carries the token.
CSRF_FIELD = "csrf_token"


def csrf_token(request: Request) -> str:
    """This session's token, created on first use."""
    if "session" not in request.scope:
        return ""
    session = request.session
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def verify_csrf(request: Request, form: FormData) -> None:
    """Raise 403 unless the form carries this session's token."""
    expected = session_of(request).get("csrf", "")
    given = form.get(CSRF_FIELD, "")
    # An uploaded file in the token field is no token either.
    if not expected or not isinstance(given, str) or not secrets_equal(given, expected):
        raise Forbidden(
            "This form has expired or was sent from another site. "
            "Please reload the page and try again.",
        )
