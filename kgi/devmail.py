"""The mail catcher's page: every captured mail with its HTML, text and headers."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from shared.config import get_settings
from shared.errors import NotFound
from shared.mail.catcher import find_caught, list_caught
from shared.web.app import create_service_app
from shared.web.templates import render_page


async def mail_list(request: Request) -> Response:
    mails = list_caught(get_settings().mail_catcher_dir)
    return render_page(request, "devmail/list.html", {"mails": mails})


def _mail(request: Request):  # type: ignore[no-untyped-def]
    mail = find_caught(get_settings().mail_catcher_dir, request.path_params["id"])
    if mail is None:
        raise NotFound("There is no such mail.")
    return mail


async def mail_detail(request: Request) -> Response:
    return render_page(request, "devmail/detail.html", {"mail": _mail(request)})


async def mail_html(request: Request) -> Response:
    # Shown in a sandboxed iframe: a mail's HTML must not run script on our origin.
    html = _mail(request).part("html") or "<p>(no HTML part)</p>"
    policy = "sandbox; default-src 'none'; img-src * data:; style-src 'unsafe-inline'"
    return HTMLResponse(html, headers={"Content-Security-Policy": policy})


routes = [
    Route("/", mail_list, methods=["GET"], name="mails"),
    Route("/{id}", mail_detail, methods=["GET"], name="mail"),
    Route("/{id}/html", mail_html, methods=["GET"], name="mail_html"),
]


def create_app() -> Starlette:
    return create_service_app(routes)
