"""The signed session cookie, shared by all services under one origin.

Starlette's SessionMiddleware signs the cookie with itsdangerous; every service uses the
same secret and cookie name, so one login is valid across subscribers, feeds and newsletter.
"""

from __future__ import annotations

from typing import Any

from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection

from shared.config import get_settings

SESSION_COOKIE = "kgi_session"

#: A session lasts 12 hours: a working day, not a week on a shared office computer.
SESSION_MAX_AGE_SECONDS = 12 * 3600


def session_middleware() -> Middleware:
    """The session middleware every service app installs."""
    settings = get_settings()
    return Middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE_SECONDS,
        same_site="lax",
        https_only=settings.https,
    )


def session_of(connection: HTTPConnection) -> dict[str, Any]:
    """The session, or an empty dict where no session middleware ran."""
    return connection.session if "session" in connection.scope else {}


def current_user(connection: HTTPConnection) -> dict[str, Any] | None:
    """``{"id", "email", "role"}`` of the logged-in editor, or None."""
    return session_of(connection).get("user")
