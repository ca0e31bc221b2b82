"""Pages that belong to no single service: home, login/logout, the admin overview."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from kgi import registry
from services.subscribers.openapi import openapi_document
from shared.accounts.login import LoginThrottled, authenticate_off_loop
from shared.errors import TooMany
from shared.web import front_end
from shared.web.forms import client_ip, read_form, verify_csrf
from shared.web.paths import path_for
from shared.web.sessions import log_in, log_out, login_required
from shared.web.templates import render_page

#: How long a throttled client waits: the failed logins are counted over 15 minutes.
LOGIN_RETRY_AFTER_SECONDS = 900


def home(request: Request) -> Response:
    """The home page: what the network is, the sign-up box, and what each service shows
    there from its own data (blocking, so Starlette runs it in the threadpool)."""
    return render_page(request, "home.html", {"sections": registry.page_sections("home", request)})


def _safe_next(target: str | None) -> str:
    # Only same-site paths: never redirect a fresh login to another host.
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or urlsplit(target).netloc
    ):
        return path_for("portal:admin")
    return target


async def login(request: Request) -> Response:
    next_url = _safe_next(request.query_params.get("next"))
    if request.method == "GET":
        return render_page(request, "login.html", {"next": next_url, "error": None, "email": ""})
    form = await read_form(request)
    verify_csrf(request, form)
    email = str(form.get("email", ""))[:254]
    try:
        user = await authenticate_off_loop(
            email, str(form.get("password", ""))[:1024], client_ip(request)
        )
    except LoginThrottled:
        raise TooMany(
            "Too many failed logins. Please wait 15 minutes and try again.",
            retry_after=LOGIN_RETRY_AFTER_SECONDS,
        ) from None
    if user is None:
        return render_page(
            request,
            "login.html",
            {"next": next_url, "error": "E-mail address or password is wrong.", "email": email},
            status_code=401,
        )
    await log_in(request, user.id)
    return RedirectResponse(_safe_next(str(form.get("next", ""))), status_code=303)


async def logout(request: Request) -> Response:
    form = await read_form(request)
    verify_csrf(request, form)
    await log_out(request)
    return RedirectResponse(path_for("portal:home"), status_code=303)


@login_required()
def admin(request: Request) -> Response:
    """The admin's landing page: the dashboard, each service's figures from its own data."""
    return render_page(
        request, "admin.html", {"sections": registry.page_sections("dashboard", request)}
    )


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


routes = [
    Route("/", home, methods=["GET"], name="home"),
    Route("/login", login, methods=["GET", "POST"], name="login"),
    Route("/logout", logout, methods=["POST"], name="logout"),
    Route("/admin", admin, methods=["GET"], name="admin"),
    Route("/openapi.json", openapi, methods=["GET"], name="openapi"),
    *front_end.mounts(),
]
