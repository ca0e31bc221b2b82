"""One Jinja2 environment for pages and mails, with the translation function."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from shared.config import get_settings
from shared.i18n import LANGUAGES, request_language, translate
from shared.web import paths
from shared.web.csrf import csrf_token
from shared.web.security_headers import csp_nonce
from shared.web.sessions import current_user

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
        csrf_token=csrf_token(request),
        user=current_user(request),
        csp_nonce=csp_nonce(request),
        **(context or {}),
    )
    return HTMLResponse(body, status_code=status_code, headers=headers)
