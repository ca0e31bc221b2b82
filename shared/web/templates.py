"""One Jinja2 environment for pages and mails, with the translation function; and the
security headers every response gets, whose CSP nonce the templates ask for (first
section below).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.config import get_settings
from shared.i18n import LANGUAGES, WORKFLOW_STATE_LABELS, request_language, translate
from shared.web import paths
from shared.web.forms import csrf_token
from shared.web.sessions import current_user

# --------------------------------------------------------------------------------------
# Security headers on every response: CSP with a per-request nonce, nosniff, framing,
# referrer.
#
# The pages use no inline script except where a template marks it with the request's
# nonce (``<script nonce="{{ csp_nonce }}">``), so an injected ``<script>`` or event
# handler attribute does not run even if escaping failed somewhere. Inline ``style``
# attributes stay allowed: they cannot run code.
# --------------------------------------------------------------------------------------

#: Scope key under which the request's CSP nonce is kept for the templates.
NONCE_SCOPE_KEY = "kgi.csp_nonce"

#: The policy; ``{nonce}`` is replaced per request. Images may come from partner sites
#: (lead images by URL); everything else only from this origin. ``frame-ancestors
#: 'self'`` lets the newsletter admin show its own previews in frames and nobody else
#: frame our pages (clickjacking).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; "
    "script-src 'self' 'nonce-{nonce}'; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' https: http: data:; "
    "object-src 'none'; "
    "base-uri 'none'; "
    "form-action 'self'; "
    "frame-src 'self'; "
    "frame-ancestors 'self'"
)

#: Headers that are the same on every response.
STATIC_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # For browsers older than CSP level 2's frame-ancestors.
    "X-Frame-Options": "SAMEORIGIN",
    # Confirmation and unsubscribe links carry tokens in their path: never send a path to
    # another site.
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}

#: Sent over HTTPS only: browsers ignore it on plain HTTP, and a development site on
#: localhost must not be pinned to HTTPS.
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


def csp_nonce(connection: HTTPConnection) -> str:
    """The nonce of this request's Content-Security-Policy, made on first use ('' outside
    the middleware). A response that never asked for one (a feed, an image, JSON) gets a
    policy without a nonce: it has no inline script to allow."""
    if NONCE_SCOPE_KEY not in connection.scope:
        return ""
    nonce = connection.scope[NONCE_SCOPE_KEY]
    if nonce is None:
        nonce = connection.scope[NONCE_SCOPE_KEY] = secrets.token_urlsafe(16)
    return nonce


#: The policy of a response without inline script, as ASGI wants it.
_RAW_POLICY_WITHOUT_NONCE = CONTENT_SECURITY_POLICY.replace(" 'nonce-{nonce}'", "").encode()

#: The fixed headers as ASGI wants them, for the check and append below.
_RAW_STATIC_HEADERS = [
    (name.lower().encode(), value.encode()) for name, value in STATIC_HEADERS.items()
]


class SecurityHeadersMiddleware:
    """Adds the headers above to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp, https: bool = False) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[NONCE_SCOPE_KEY] = None  # made by csp_nonce() when a page asks for it

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message["headers"] = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(raw for raw in _RAW_STATIC_HEADERS if raw[0] not in present)
                if b"content-security-policy" not in present:
                    nonce = scope[NONCE_SCOPE_KEY]
                    policy = (
                        CONTENT_SECURITY_POLICY.format(nonce=nonce).encode()
                        if nonce
                        else _RAW_POLICY_WITHOUT_NONCE
                    )
                    headers.append((b"content-security-policy", policy))
                if self.https and b"strict-transport-security" not in present:
                    headers.append(
                        (b"strict-transport-security", STRICT_TRANSPORT_SECURITY.encode())
                    )
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --------------------------------------------------------------------------------------

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates"


@cache
def environment() -> jinja2.Environment:
    """The shared environment; autoescaping on for HTML, off for ``.txt`` mail parts."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["languages"] = LANGUAGES
    env.globals["workflow_state"] = WORKFLOW_STATE_LABELS
    # Links by route name (``url_for("feeds:item", slug=...)``): never a literal path.
    env.globals["url_for"] = paths.path_for
    env.globals["absolute_url_for"] = paths.absolute_url_for
    return env


def render_text(name: str, language: str, **context: Any) -> str:
    """Render ``name`` in ``language`` to a string (used for mails)."""
    return (
        environment()
        .get_template(name)
        .render(
            _=lambda message: translate(message, language),
            lang=language,
            settings=get_settings(),
            **context,
        )
    )


#: Scope key set when a page used a value of its visitor's own (see :class:`PerVisitor`).
PERSONAL_SCOPE_KEY = "kgi.personal"


class PerVisitor:
    """A value of this visitor's own that a template may print (the CSRF token, the CSP
    nonce), made only when printed. A page that never prints one sets no session cookie
    and can be shown to every visitor alike (:func:`is_personal` tells which it was)."""

    def __init__(self, request: Request, make: Callable[[Request], str]) -> None:
        self._request = request
        self._make = make

    def __str__(self) -> str:
        # Autoescaping reads the value through here, and escapes it like any text.
        self._request.scope[PERSONAL_SCOPE_KEY] = True
        return self._make(self._request)

    def __bool__(self) -> bool:
        return bool(str(self))


def is_personal(request: Request) -> bool:
    """Whether a page rendered for ``request`` printed a value of this visitor's own."""
    return bool(request.scope.get(PERSONAL_SCOPE_KEY))


def render_page(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render a page for ``request`` in the visitor's language."""
    language = request_language(request)
    body = render_text(
        name,
        language,
        request=request,
        csrf_token=PerVisitor(request, csrf_token),
        user=current_user(request),
        csp_nonce=PerVisitor(request, csp_nonce),
        **(context or {}),
    )
    return HTMLResponse(body, status_code=status_code, headers=headers)
