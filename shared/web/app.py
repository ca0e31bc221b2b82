"""The factory every service app is built with, so all share middleware and error pages."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

from shared.config import get_settings
from shared.i18n import LANGUAGE_COOKIE, normalise_language
from shared.web import paths  # noqa: F401  (registers the {name:id} path convertor)
from shared.web.caching import GZIP_MINIMUM_BYTES
from shared.web.errors import EXCEPTION_HANDLERS
from shared.web.sessions import session_middleware
from shared.web.templates import SecurityHeadersMiddleware

#: Largest request body any service accepts (25 MiB: room for a 20 MiB PDF attached to
#: an item); each endpoint holds its own to less (shared.web.forms: ordinary forms 16 KiB).
MAX_BODY_BYTES = 25 * 1024 * 1024

#: How long an explicit language choice is remembered (one year).
LANGUAGE_COOKIE_MAX_AGE = 365 * 24 * 3600


class LanguageCookieMiddleware:
    """Remember ``?lang=de|en`` in a cookie so the choice holds on the next pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        chosen = None
        for part in query.split("&"):
            if part.startswith("lang="):
                chosen = normalise_language(part[5:])
        if chosen is None:
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                cookie = f"{LANGUAGE_COOKIE}={chosen}; Path=/; SameSite=Lax"
                headers.append("set-cookie", f"{cookie}; Max-Age={LANGUAGE_COOKIE_MAX_AGE}")
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def create_service_app(
    routes: Sequence[BaseRoute], lifespan: Lifespan[Starlette] | None = None
) -> Starlette:
    """A Starlette app with the platform's session, language and error handling."""
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeadersMiddleware, https=get_settings().https),
            # Feeds and pages are text: compressed they are a fifth of the size. The
            # middleware adds ``Vary: Accept-Encoding``; ETags are weak for this reason.
            Middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_BYTES),
            *session_middleware(),
            Middleware(LanguageCookieMiddleware),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        max_body_size=MAX_BODY_BYTES,
        lifespan=lifespan,
    )
