"""Routes of the newsletter service (prefix in service.py): the public archive with
its feeds, and the admin where issues are composed, previewed, tested and sent.

Editors compose: they create issues, edit texts and items, preview them and send a test
to their own address. Sending reaches every subscriber, so scheduling, sending, pausing,
resuming and cancelling are for administrators only.

Every endpoint that touches the database, another service or SMTP is a plain function
(run in the threadpool) or reads its form on the event loop and does the rest in the
threadpool (``form_endpoint``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from services.newsletter import archive as archive_feeds
from services.newsletter import compose, dispatch, peers, render, store
from services.newsletter.render import public_version
from services.newsletter.store import ISSUE_STATES, SENT, issues
from shared.addresses import parse_address
from shared.database import read_connection
from shared.errors import BadRequest, Forbidden, Invalid, NotFound, Unavailable
from shared.i18n import request_language
from shared.mail.transport import PermanentMailError
from shared.web.caching import Rendered, conditional
from shared.web.forms import form_endpoint, form_text, parse_row_id
from shared.web.paths import path_for
from shared.web.sessions import current_user, login_required
from shared.web.templates import render_page

#: At most this many test addresses per test send.
MAX_TEST_ADDRESSES = 10

#: Largest texts or items form (64 KiB: intro and closing hold up to 5,000 characters).
TEXT_FORM_LIMIT = 64 * 1024

#: Seconds feed readers may keep an archive feed before asking again.
FEED_MAX_AGE = 600

#: Content types the candidate list can be filtered by (the feeds service's ``type``).
CONTENT_KINDS = ("news", "conference_report")

#: Longest tag filter passed on to the feeds service.
MAX_TAG_LENGTH = 100


# --- public archive -------------------------------------------------------------------


async def archive(request: Request) -> Response:
    """The list of sent issues, kept for readers until the next issue is sent."""
    return await archive_feeds.RENDERINGS.page(request, lambda: _archive_page(request))


def _archive_page(request: Request) -> Response:
    language = request.query_params.get("lang")
    return render_page(
        request, "newsletter/archive.html", {"issues": archive_feeds.sent_issues(language)}
    )


async def archive_issue(request: Request) -> Response:
    """A sent issue as its web version, the same for every reader."""
    issue_id = request.path_params["id"]

    def web_version() -> Rendered:
        with read_connection("newsletter") as conn:
            issue = store.get_issue(conn, issue_id)
        if issue is None or issue.state != SENT or not issue.rendered_html:
            raise NotFound("There is no such issue in the archive.")
        page, _ = public_version(render.rendered_of(issue))
        return Rendered(page.encode(), "text/html; charset=utf-8")

    kept = await archive_feeds.RENDERINGS.served(f"issue {issue_id}", web_version)
    return Response(
        kept.body, media_type=kept.media_type, headers={"Cache-Control": "public, max-age=3600"}
    )


async def archive_feed(request: Request) -> Response:
    fmt = request.path_params["fmt"]
    if fmt not in archive_feeds.FEED_MEDIA_TYPES:
        raise NotFound("There is nothing at this address.")
    feed = await archive_feeds.RENDERINGS.served(
        f"feed {fmt}", lambda: archive_feeds.build_feed(fmt)
    )
    return conditional(request, feed, FEED_MAX_AGE)


# --- admin ----------------------------------------------------------------------------


def _actor(request: Request) -> str:
    return current_user(request)["email"]


def _is_admin(request: Request) -> bool:
    return current_user(request)["role"] == "admin"


def _issue_or_404(issue_id: int) -> store.Issue:
    with read_connection("newsletter") as conn:
        issue = store.get_issue(conn, issue_id)
    if issue is None:
        raise NotFound("There is no such issue.")
    return issue


def _back(issue_id: int, message: str | None = None) -> RedirectResponse:
    suffix = f"?message={message}" if message else ""
    return RedirectResponse(
        path_for("newsletter:admin_issue", id=issue_id) + suffix, status_code=303
    )


@login_required()
def admin_list(request: Request) -> Response:
    with read_connection("newsletter") as conn:
        rows = conn.execute(issues.select().order_by(issues.c.created_at.desc()).limit(200))
        found = [store.Issue(**row._mapping) for row in rows]
    return render_page(
        request, "newsletter/admin/list.html", {"issues": found, "states": ISSUE_STATES}
    )


@login_required()
@form_endpoint()
def admin_new(request: Request, form: FormData) -> Response:
    issue = compose.create_issue(
        form_text(form, "language") or "de",
        _actor(request),
        form_text(form, "subject") or None,
        creator_language=request_language(request),
    )
    return RedirectResponse(path_for("newsletter:admin_issue", id=issue.id), status_code=303)


@dataclass(frozen=True)
class Candidates:
    """What may still be added to an issue, and why a list is missing (its service did
    not answer)."""

    items: list[dict[str, Any]]
    dates: list[dict[str, Any]]
    errors: list[str]


def _candidates(request: Request, issue: store.Issue, contents: list[dict[str, Any]]) -> Candidates:
    """Published items (filtered by ``?type=`` and ``?tag=``) and the series' coming dates
    not yet in the issue."""
    kind = request.query_params.get("type")
    tag = request.query_params.get("tag", "").strip()[:MAX_TAG_LENGTH] or None
    present = {(item["service"], item["id"]) for item in contents}
    found = Candidates([], [], [])
    try:
        available = peers.published_items(
            issue.language, kind=kind if kind in CONTENT_KINDS else None, tag=tag
        )
        found.items.extend(i for i in available if (store.FEEDS, i["id"]) not in present)
    except peers.PeerUnavailable as exc:
        found.errors.append(str(exc))
    try:
        dates = peers.upcoming_dates(issue.language)
        found.dates.extend(d for d in dates if (store.EVENTS, d["id"]) not in present)
    except peers.PeerUnavailable as exc:
        found.errors.append(str(exc))
    return found


@login_required()
def admin_issue(request: Request) -> Response:
    issue = _issue_or_404(request.path_params["id"])
    with read_connection("newsletter") as conn:
        contents = store.issue_contents(conn, issue.id)
        history = store.issue_history(conn, issue.id)
    editable = issue.state in compose.EDITABLE
    candidates = _candidates(request, issue, contents) if editable else Candidates([], [], [])
    progress = (
        dispatch.progress(issue.id)
        if issue.audience_count or issue.state in ("sending", "paused")
        else None
    )
    feedback = None
    if progress is not None:
        # Bounces and complaints arrive for days after sending; the subscribers service
        # records them. Without it the page still shows everything else.
        with contextlib.suppress(peers.PeerUnavailable):
            feedback = peers.issue_feedback(issue.id)
    return render_page(
        request,
        "newsletter/admin/issue.html",
        {
            "issue": issue,
            "contents": contents,
            "history": history,
            "candidates": candidates,
            "progress": progress,
            "feedback": feedback,
            "editable": editable,
            "may_send": _is_admin(request),
            "since_last": compose.last_issue_start(issue.language, issue.id),
            "message": request.query_params.get("message"),
            "local_zone": compose.LOCAL_ZONE,
        },
    )


@login_required()
@form_endpoint(limit=TEXT_FORM_LIMIT)
def admin_texts(request: Request, form: FormData) -> Response:
    issue_id = request.path_params["id"]
    compose.update_texts(
        issue_id,
        {k: form_text(form, k) for k in ("subject", "preheader", "intro", "closing")},
        _actor(request),
    )
    return _back(issue_id, "saved")


def _row_ids(raw: list[Any]) -> list[int]:
    return [parse_row_id(value) for value in raw]


@login_required()
@form_endpoint(limit=TEXT_FORM_LIMIT)
def admin_items(request: Request, form: FormData) -> Response:
    issue_id = request.path_params["id"]
    action = form_text(form, "action")
    actor = _actor(request)
    if action == "add":
        compose.add_items_by_id(issue_id, _row_ids(form.getlist("content_id")), actor)
    elif action == "add_dates":
        compose.add_dates_by_id(issue_id, _row_ids(form.getlist("date_id")), actor)
    elif action == "add_since_last":
        compose.add_since(issue_id, actor)
    elif action in ("up", "down"):
        row_id = parse_row_id(form.get("row_id"))
        compose.move_item(issue_id, row_id, -1 if action == "up" else 1, actor)
    elif action == "remove":
        compose.remove_item(issue_id, parse_row_id(form.get("row_id")), actor)
    elif action == "order":
        order = form_text(form, "order")
        compose.set_order(issue_id, _row_ids(order.split(",") if order else []), actor)
    else:
        raise BadRequest("Unknown action.")
    return _back(issue_id)


@login_required()
def admin_preview(request: Request) -> Response:
    fmt = request.path_params["fmt"]
    if fmt not in ("html", "txt"):
        raise NotFound("There is nothing at this address.")
    issue = _issue_or_404(request.path_params["id"])
    page, text = public_version(render.rendered_of(issue))
    return PlainTextResponse(text) if fmt == "txt" else HTMLResponse(page)


def _test_addresses(request: Request, form: FormData) -> list[str]:
    """The addresses a test goes to: up to MAX_TEST_ADDRESSES for an administrator, only
    their own for an editor (a test is a real mail; editors send no mail to others)."""
    raw = [
        part.strip()
        for part in form_text(form, "addresses").replace(";", ",").split(",")
        if part.strip()
    ]
    if not raw or len(raw) > MAX_TEST_ADDRESSES:
        raise Invalid(f"Please give one to {MAX_TEST_ADDRESSES} addresses.", "addresses")
    addresses = [parse_address(address) for address in raw]
    own = parse_address(_actor(request)).key
    if not _is_admin(request) and any(address.key != own for address in addresses):
        raise Forbidden("Editors may send a test only to their own address.")
    return [address.ascii for address in addresses]


@login_required()
@form_endpoint()
def admin_test(request: Request, form: FormData) -> Response:
    issue_id = request.path_params["id"]
    _issue_or_404(issue_id)
    addresses = _test_addresses(request, form)
    try:
        render.send_test(issue_id, addresses, _actor(request))
    except PermanentMailError as exc:
        # The relay refuses this address or message: the editor's input, not an outage.
        raise Invalid(f"The mail server refused the test mail: {exc}", "addresses") from None
    except Exception as exc:  # a mail server problem must reach the editor as a message
        raise Unavailable(f"The test mail could not be sent: {exc}") from None
    return _back(issue_id, "test-sent")


@login_required(role="admin")
@form_endpoint()
def admin_schedule(request: Request, form: FormData) -> Response:
    issue_id = request.path_params["id"]
    when = compose.parse_send_time(form_text(form, "scheduled_at"))
    compose.schedule(issue_id, when, _actor(request))
    return _back(issue_id, "scheduled" if when else None)


@login_required(role="admin")
@form_endpoint()
def admin_control(request: Request, form: FormData) -> Response:
    issue_id = request.path_params["id"]
    action = request.path_params["action"]
    actor = _actor(request)
    if action == "send":
        dispatch.start(issue_id, actor)
    elif action == "pause":
        dispatch.pause(issue_id, actor, "paused by an administrator")
    elif action == "resume":
        dispatch.resume(issue_id, actor)
    elif action == "cancel":
        dispatch.cancel(issue_id, actor)
    else:
        raise NotFound("There is nothing at this address.")
    return _back(issue_id)


@login_required()
def admin_progress(request: Request) -> Response:
    _issue_or_404(request.path_params["id"])
    p = dispatch.progress(request.path_params["id"])
    return JSONResponse({**p.__dict__, "percent": round(p.percent, 1)})


routes = [
    Route("/archive/", archive, methods=["GET"], name="archive"),
    Route("/archive/feed.{fmt}", archive_feed, methods=["GET"], name="archive_feed"),
    Route("/archive/{id:id}", archive_issue, methods=["GET"], name="archive_issue"),
    Route("/admin/", admin_list, methods=["GET"], name="admin"),
    Route("/admin/new", admin_new, methods=["POST"], name="admin_new"),
    Route("/admin/{id:id}", admin_issue, methods=["GET"], name="admin_issue"),
    Route("/admin/{id:id}/texts", admin_texts, methods=["POST"], name="admin_texts"),
    Route("/admin/{id:id}/items", admin_items, methods=["POST"], name="admin_items"),
    Route("/admin/{id:id}/preview.{fmt}", admin_preview, methods=["GET"], name="admin_preview"),
    Route("/admin/{id:id}/test", admin_test, methods=["POST"], name="admin_test"),
    Route("/admin/{id:id}/schedule", admin_schedule, methods=["POST"], name="admin_schedule"),
    Route("/admin/{id:id}/progress.json", admin_progress, methods=["GET"], name="admin_progress"),
    Route("/admin/{id:id}/{action}", admin_control, methods=["POST"], name="admin_control"),
]
