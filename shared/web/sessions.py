"""The session cookie, shared by all services under one origin, and who is logged in.

Starlette's SessionMiddleware keeps a small signed cookie (the CSRF token and, once
logged in, a random session token); every service uses the same secret and cookie name.
Whether that token still means a login is decided on the server on every request
(:mod:`shared.accounts.login`): the cookie alone never grants access, and the role
comes from the accounts table, not from the cookie.

The guard of ``/admin`` pages, :func:`login_required`, is here too (last section).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.accounts.login import (
    SESSION_LIFETIME,
    end_session,
    resolve_session,
    start_session,
)
from shared.accounts.store import ROLES
from shared.config import get_settings
from shared.errors import Forbidden
from shared.web.paths import path_for

SESSION_COOKIE = "kgi_session"

#: The cookie lives no longer than a server-side session can.
SESSION_MAX_AGE_SECONDS = int(SESSION_LIFETIME.total_seconds())

#: Key of the server-side session token inside the signed cookie.
TOKEN_KEY = "sid"

#: Scope key under which :class:`SessionUserMiddleware` leaves the logged-in account.
USER_SCOPE_KEY = "kgi.user"


class SessionUserMiddleware:
    """Resolve the session token to the account once per request, off the event loop.

    Runs inside SessionMiddleware. A token whose session has ended (logout elsewhere,
    password or role change, account removed, lifetime or idle time over) is dropped
    from the cookie, so the browser is simply logged out.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            session = scope.get("session")
            user = None
            token = session.get(TOKEN_KEY) if session is not None else None
            if isinstance(token, str) and token:
                found = await run_in_threadpool(resolve_session, token)
                if found is None:
                    session.pop(TOKEN_KEY, None)
                else:
                    user = found.as_dict()
            scope[USER_SCOPE_KEY] = user
        await self.app(scope, receive, send)


def session_middleware() -> list[Middleware]:
    """The session middleware every service app installs, outermost first."""
    settings = get_settings()
    return [
        Middleware(
            SessionMiddleware,
            secret_key=settings.secret_key,
            session_cookie=SESSION_COOKIE,
            max_age=SESSION_MAX_AGE_SECONDS,
            same_site="lax",
            https_only=settings.https,
        ),
        Middleware(SessionUserMiddleware),
    ]


def session_of(connection: HTTPConnection) -> dict[str, Any]:
    """The session, or an empty dict where no session middleware ran."""
    return connection.session if "session" in connection.scope else {}


def current_user(connection: HTTPConnection) -> dict[str, Any] | None:
    """``{"id", "email", "role"}`` of the logged-in account, read from the database for
    this request; None for visitors."""
    return connection.scope.get(USER_SCOPE_KEY)


async def log_in(connection: HTTPConnection, user_id: int) -> None:
    """Start a server-side session and a fresh cookie (new CSRF token: no fixation)."""
    token = await run_in_threadpool(start_session, user_id)
    session = session_of(connection)
    session.clear()
    session[TOKEN_KEY] = token


async def log_out(connection: HTTPConnection) -> None:
    """End this browser's session on the server and empty its cookie."""
    session = session_of(connection)
    token = session.get(TOKEN_KEY)
    if isinstance(token, str) and token:
        await run_in_threadpool(end_session, token)
    session.clear()
    connection.scope[USER_SCOPE_KEY] = None


# --------------------------------------------------------------------------------------
# Access control for ``/admin`` pages: a logged-in editor, or an admin where required.
# --------------------------------------------------------------------------------------

#: An endpoint as Starlette accepts it: ``async def`` for work that awaits, or a plain
#: ``def`` for blocking work (database, Redis), which then runs in the threadpool.
Endpoint = Callable[[Request], Awaitable[Response]] | Callable[[Request], Response]


def login_required(
    role: str = "editor",
) -> Callable[[Endpoint], Callable[[Request], Awaitable[Response]]]:
    """Send anonymous visitors to the login page; refuse roles weaker than ``role``."""

    def decorate(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            user = current_user(request)
            if user is None:
                target = quote(
                    request.url.path + ("?" + request.url.query if request.url.query else "")
                )
                login = path_for("portal:login")
                return RedirectResponse(f"{login}?next={target}", status_code=303)
            if ROLES.index(user["role"]) < ROLES.index(role):
                raise Forbidden("Only an administrator may do this.")
            if inspect.iscoroutinefunction(endpoint):
                return await endpoint(request)
            # A plain function blocks: keep it off the event loop, as Starlette would.
            return await run_in_threadpool(endpoint, request)

        return guarded

    return decorate
