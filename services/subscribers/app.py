"""Routes of the subscribers service (mounted where its descriptor says).

Endpoints that touch the database or Redis are plain functions (Starlette runs them in
the threadpool) or read their body on the event loop and hand the rest to the
threadpool (``form_endpoint``), so no request waits for another one's queries.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from services.subscribers import (
    feedback,
    internal_api,
    optin,
    privacy,
    relay_webhooks,
    store,
    transfer,
)
from services.subscribers.openapi import openapi_document
from services.subscribers.store import STATUSES, Context, Subscriber
from shared.addresses import InvalidInput
from shared.database import read_connection
from shared.errors import Gone, Invalid, NotFound
from shared.i18n import request_language
from shared.spreadsheets import decode_csv
from shared.web.caching import RenderingCache
from shared.web.forms import (
    HONEYPOT_FIELD,
    client_ip,
    form_endpoint,
    form_text,
    page_number,
    read_json,
)
from shared.web.paths import path_for
from shared.web.sessions import login_required
from shared.web.templates import render_page

#: Subscribers per page in the admin list.
ADMIN_PAGE_SIZE = 50

#: Largest CSV file accepted by the admin import (5 MiB, about 50,000 rows).
IMPORT_BODY_LIMIT = 5 * 1024 * 1024


def _context(request: Request, source: str) -> Context:
    """The consent log's context of a request. ``source`` says where it came from in
    words or as a page address, never as the request's own URL: a link from a mail
    carries its secret token, which the log must not keep."""
    return Context(
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        source=source,
        consent_version=optin.CONSENT_TEXT_VERSION,
    )


#: Why a personal link stopped working: the subscription behind it was erased or purged.
SUBSCRIPTION_GONE = "This link is no longer valid: the subscription no longer exists."

# --- sign-up -------------------------------------------------------------------------


#: The public pages of the sign-up show no data of this service (its form carries no
#: token: :func:`shared.web.forms.verify_same_origin`), so one rendering per language and
#: URL serves every visitor for as long as the process runs.
PUBLIC_PAGES = RenderingCache(lambda: "templates only")


async def signup_page(request: Request) -> Response:
    # The home page's sign-up box brings the address along.
    values = {"email": request.query_params.get("email", "")[:254]}
    return await PUBLIC_PAGES.page(
        request,
        lambda: render_page(request, "subscribers/signup.html", {"values": values, "errors": {}}),
    )


@form_endpoint(public=True)
def signup_submit(request: Request, form: FormData) -> Response:
    fields = {key: form_text(form, key) for key in ("email", "name", "language")}
    if form.get(HONEYPOT_FIELD):
        # A bot filled the invisible field: answer as for everyone, do nothing.
        return RedirectResponse(path_for("subscribers:signup_sent"), status_code=303)
    try:
        checked = optin.check_signup(fields, request_language(request))
    except InvalidInput as exc:
        return render_page(
            request,
            "subscribers/signup.html",
            {"values": fields, "errors": {exc.field: exc.message}},
            status_code=422,
        )
    optin.check_client_allowance(client_ip(request))
    source = request.headers.get("referer") or str(request.url)
    optin.sign_up(checked, _context(request, source))
    return RedirectResponse(path_for("subscribers:signup_sent"), status_code=303)


async def signup_sent(request: Request) -> Response:
    return await PUBLIC_PAGES.page(request, lambda: render_page(request, "subscribers/sent.html"))


async def api_subscribe(request: Request) -> Response:
    data = await read_json(request)
    return await run_in_threadpool(_subscribe_from_api, request, data)


def _subscribe_from_api(request: Request, data: dict[str, object]) -> Response:
    checked = optin.check_signup(data)
    optin.check_client_allowance(client_ip(request))
    source = str(data.get("source") or request.headers.get("referer") or request.url)
    optin.sign_up(checked, _context(request, source))
    return JSONResponse(
        {
            "status": "accepted",
            "message": "If the address can be subscribed, a confirmation mail is on its way.",
        },
        status_code=202,
    )


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


# --- links from mails --------------------------------------------------------------


def confirm_page(request: Request) -> Response:
    """The confirmation button: a mail scanner that follows the link must not confirm."""
    subscriber = optin.subscriber_for_confirmation(request.path_params["token"])
    return render_page(
        request, "subscribers/confirm.html", {"subscriber": subscriber, "done": False}
    )


@form_endpoint()
def confirm_submit(request: Request, form: FormData) -> Response:
    subscriber = optin.confirm(request.path_params["token"], _context(request, "confirmation link"))
    return render_page(
        request, "subscribers/confirm.html", {"subscriber": subscriber, "done": True}
    )


def _managed(request: Request) -> Subscriber | None:
    return optin.subscriber_for_manage_link(request.path_params["token"])


def unsubscribe(request: Request) -> Response:
    """GET shows a button; POST (the button, or an RFC 8058 one-click POST) unsubscribes.

    The POST needs no cookie or CSRF token: the signed link is the proof, and mail
    providers send the one-click POST without any session.
    """
    subscriber = _managed(request)
    if request.method == "POST":
        if subscriber is not None:
            optin.unsubscribe(subscriber, _context(request, "unsubscribe link"))
        return render_page(request, "subscribers/unsubscribed.html", {"subscriber": subscriber})
    return render_page(request, "subscribers/unsubscribe.html", {"subscriber": subscriber})


def _subscription(request: Request) -> Subscriber:
    subscriber = _managed(request)
    if subscriber is None:
        raise Gone(SUBSCRIPTION_GONE)
    return subscriber


def preferences_page(request: Request) -> Response:
    return _preferences(request, _subscription(request))


@form_endpoint()
def preferences_submit(request: Request, form: FormData) -> Response:
    subscriber = _subscription(request)
    try:
        changed = optin.update_preferences(
            subscriber,
            {"name": form_text(form, "name"), "language": form_text(form, "language")},
            _context(request, "preferences link"),
        )
    except InvalidInput as exc:
        return _preferences(request, subscriber, errors={exc.field: exc.message})
    return _preferences(request, changed, saved=True)


def _preferences(
    request: Request,
    subscriber: Subscriber,
    saved: bool = False,
    errors: dict[str, str] | None = None,
) -> Response:
    return render_page(
        request,
        "subscribers/preferences.html",
        {
            "subscriber": subscriber,
            "token": request.path_params["token"],
            "saved": saved,
            "errors": errors or {},
        },
        status_code=422 if errors else 200,
    )


def privacy_export(request: Request) -> Response:
    subscriber = _managed(request)
    data = privacy.export_data(subscriber.id) if subscriber else None
    if data is None:
        raise Gone(SUBSCRIPTION_GONE)
    return JSONResponse(
        data, headers={"Content-Disposition": 'attachment; filename="kgi-infobrief-data.json"'}
    )


@form_endpoint()
def privacy_erase(request: Request, form: FormData) -> Response:
    subscriber = _managed(request)
    if subscriber is None:
        return render_page(request, "subscribers/erased.html")
    if form.get("confirm") != "yes":
        raise Invalid(
            "Please tick the box to confirm that all your data should be deleted.", "confirm"
        )
    privacy.erase(subscriber)
    return render_page(request, "subscribers/erased.html")


# --- admin -------------------------------------------------------------------------


def _status_filter(request: Request) -> str | None:
    """``?status=`` when it names a status; anything else means all subscribers."""
    status = request.query_params.get("status")
    return status if status in STATUSES else None


@login_required()
def admin_list(request: Request) -> Response:
    # NUL cannot be stored or searched for (PostgreSQL refuses it in text).
    query = request.query_params.get("q", "").replace("\x00", "").strip()[:200]
    status = _status_filter(request)
    page = page_number(request)
    with read_connection("subscribers") as conn:
        rows, total = store.search(
            conn, query, status, ADMIN_PAGE_SIZE, (page - 1) * ADMIN_PAGE_SIZE
        )
        counts = store.counts_by_status(conn)
    pages = max(1, -(-total // ADMIN_PAGE_SIZE))
    if page > pages:
        raise NotFound("There is no such page.")
    return render_page(
        request,
        "subscribers/admin/list.html",
        {
            "rows": rows,
            "total": total,
            "counts": counts,
            "query": query,
            "status": status,
            "statuses": STATUSES,
            "page": page,
            "pages": pages,
        },
    )


@login_required()
def admin_detail(request: Request) -> Response:
    with read_connection("subscribers") as conn:
        subscriber = store.get(conn, request.path_params["id"])
        if subscriber is None:
            raise NotFound("There is no such subscriber.")
        events = store.history(conn, subscriber.id)
        reports = feedback.history(conn, subscriber.id)
    return render_page(
        request,
        "subscribers/admin/detail.html",
        {"subscriber": subscriber, "events": events, "reports": reports},
    )


@login_required()
def admin_export(request: Request) -> Response:
    return Response(
        transfer.export_csv(_status_filter(request)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="kgi-subscribers.csv"'},
    )


@login_required(role="admin")
async def admin_import_page(request: Request) -> Response:
    return render_page(request, "subscribers/admin/import.html", {"report": None, "error": None})


@login_required(role="admin")
@form_endpoint(limit=IMPORT_BODY_LIMIT)
def admin_import(request: Request, form: FormData) -> Response:
    upload = form.get("file")
    if upload is None or isinstance(upload, str) or not upload.filename:
        return render_page(
            request,
            "subscribers/admin/import.html",
            {"report": None, "error": "Please choose a CSV file."},
            status_code=422,
        )
    # The spooled upload may sit on disk: reading it here, in the threadpool, is fine.
    data = upload.file.read()
    try:
        report = transfer.import_csv(decode_csv(data), upload.filename)
    except transfer.ImportRefused as exc:
        return render_page(
            request,
            "subscribers/admin/import.html",
            {"report": None, "error": str(exc)},
            status_code=422,
        )
    return render_page(request, "subscribers/admin/import.html", {"report": report, "error": None})


routes = [
    Route("/signup", signup_page, methods=["GET"], name="signup"),
    Route("/signup", signup_submit, methods=["POST"], name="signup"),
    Route("/signup/sent", signup_sent, methods=["GET"], name="signup_sent"),
    Route("/api/subscriptions", api_subscribe, methods=["POST"], name="api_subscriptions"),
    Route(
        "/api/hooks/mailgun", relay_webhooks.mailgun_webhook, methods=["POST"], name="hook_mailgun"
    ),
    Route(
        "/api/hooks/sendgrid",
        relay_webhooks.sendgrid_webhook,
        methods=["POST"],
        name="hook_sendgrid",
    ),
    Route("/openapi.json", openapi, methods=["GET"], name="openapi"),
    Route("/confirm/{token}", confirm_page, methods=["GET"], name="confirm"),
    Route("/confirm/{token}", confirm_submit, methods=["POST"], name="confirm"),
    Route("/unsubscribe/{token}", unsubscribe, methods=["GET", "POST"], name="unsubscribe"),
    Route("/preferences/{token}", preferences_page, methods=["GET"], name="preferences"),
    Route("/preferences/{token}", preferences_submit, methods=["POST"], name="preferences"),
    Route("/privacy/{token}/export", privacy_export, methods=["GET"], name="privacy_export"),
    Route("/privacy/{token}/erase", privacy_erase, methods=["POST"], name="privacy_erase"),
    Route("/admin/", admin_list, methods=["GET"], name="admin"),
    Route("/admin/export.csv", admin_export, methods=["GET"], name="admin_export"),
    Route("/admin/import", admin_import_page, methods=["GET"], name="admin_import"),
    Route("/admin/import", admin_import, methods=["POST"], name="admin_import"),
    Route("/admin/{id:id}", admin_detail, methods=["GET"], name="admin_subscriber"),
    Route("/internal/audience", internal_api.audience, methods=["GET"], name="internal_audience"),
    Route(
        "/internal/confirmed", internal_api.confirmed, methods=["POST"], name="internal_confirmed"
    ),
    Route(
        "/internal/issues/{id:id}/feedback",
        internal_api.issue_feedback,
        methods=["GET"],
        name="internal_issue_feedback",
    ),
]
