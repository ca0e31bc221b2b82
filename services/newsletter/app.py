"""Routes of the newsletter service, mounted at ``/newsletter``: the public archive with
its feeds, and the admin where issues are composed, previewed, tested and sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from feedgen.feed import FeedGenerator
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from services.newsletter import compose, dispatch, peers, store
from services.newsletter.render import public_version
from services.newsletter.store import ISSUE_STATES, SENT, issues
from shared.addresses import InvalidInput, parse_address
from shared.config import get_settings
from shared.database import read_connection
from shared.i18n import LANGUAGES
from shared.web.app import create_service_app
from shared.web.auth import login_required
from shared.web.csrf import verify_csrf
from shared.web.forms import read_form
from shared.web.sessions import current_user
from shared.web.templates import render_page

#: Editors type times in the office's zone.
LOCAL_ZONE = ZoneInfo("Europe/Berlin")

#: At most this many test addresses per test send.
MAX_TEST_ADDRESSES = 10


def _sent_issues(language: str | None = None) -> list[store.Issue]:
    condition = issues.c.state == SENT
    if language in LANGUAGES:
        condition = sa.and_(condition, issues.c.language == language)
    with read_connection("newsletter") as conn:
        rows = conn.execute(sa.select(issues).where(condition).order_by(issues.c.started_at.desc()))
        return [store.Issue(**row._mapping) for row in rows]


# --- public archive -------------------------------------------------------------------


async def archive(request: Request) -> Response:
    language = request.query_params.get("lang")
    return render_page(request, "newsletter/archive.html", {"issues": _sent_issues(language)})


async def archive_issue(request: Request) -> Response:
    with read_connection("newsletter") as conn:
        issue = store.get_issue(conn, request.path_params["id"])
    if issue is None or issue.state != SENT or not issue.rendered_html:
        raise HTTPException(404, "There is no such issue in the archive.")
    page, _ = public_version(dispatch.rendered_of(issue))
    return HTMLResponse(page, headers={"Cache-Control": "public, max-age=3600"})


async def archive_feed(request: Request) -> Response:
    fmt = request.path_params["fmt"]
    if fmt not in ("rss", "atom"):
        raise HTTPException(404, "There is nothing at this address.")
    settings = get_settings()
    sent = _sent_issues()[:50]
    feed = FeedGenerator()
    feed.id(settings.absolute_url("/newsletter/archive/"))
    feed.title("KGI-Infobrief – Archiv")
    feed.subtitle("Alle Ausgaben des KGI-Infobriefs")
    feed.link(href=settings.absolute_url(f"/newsletter/archive/feed.{fmt}"), rel="self")
    feed.link(href=settings.absolute_url("/newsletter/archive/"), rel="alternate")
    feed.language("de")
    feed.updated(
        max(
            (i.finished_at or i.updated_at for i in sent),
            default=datetime(2026, 1, 1, tzinfo=LOCAL_ZONE),
        )
    )
    for issue in reversed(sent):
        entry = feed.add_entry()
        url = settings.absolute_url(issue.archive_path)
        entry.id(url)
        entry.guid(url, permalink=True)
        entry.title(issue.subject)
        entry.link(href=url)
        entry.published(issue.started_at)
        entry.updated(issue.finished_at or issue.updated_at)
        entry.summary(issue.preheader or issue.subject)
    body = feed.rss_str(pretty=True) if fmt == "rss" else feed.atom_str(pretty=True)
    media = "application/rss+xml" if fmt == "rss" else "application/atom+xml"
    return Response(
        body, media_type=f"{media}; charset=utf-8", headers={"Cache-Control": "public, max-age=600"}
    )


# --- admin ----------------------------------------------------------------------------


def _actor(request: Request) -> str:
    return current_user(request)["email"]


def _issue_or_404(issue_id: int) -> store.Issue:
    with read_connection("newsletter") as conn:
        issue = store.get_issue(conn, issue_id)
    if issue is None:
        raise HTTPException(404, "There is no such issue.")
    return issue


@login_required()
async def admin_list(request: Request) -> Response:
    with read_connection("newsletter") as conn:
        rows = conn.execute(sa.select(issues).order_by(issues.c.created_at.desc()).limit(200))
        found = [store.Issue(**row._mapping) for row in rows]
    return render_page(
        request, "newsletter/admin/list.html", {"issues": found, "states": ISSUE_STATES}
    )


@login_required()
async def admin_new(request: Request) -> Response:
    form = await read_form(request)
    verify_csrf(request, form)
    try:
        issue = compose.create_issue(
            str(form.get("language", "de")), _actor(request), str(form.get("subject", "")) or None
        )
    except compose.ComposeError as exc:
        raise HTTPException(422, str(exc)) from None
    return RedirectResponse(f"/newsletter/admin/{issue.id}", status_code=303)


@login_required()
async def admin_issue(request: Request) -> Response:
    issue = _issue_or_404(request.path_params["id"])
    with read_connection("newsletter") as conn:
        contents = store.issue_contents(conn, issue.id)
        history = store.issue_history(conn, issue.id)
    candidates: list[dict[str, Any]] = []
    candidates_error = None
    if issue.state in compose.EDITABLE:
        kind = request.query_params.get("type") or None
        tag = request.query_params.get("tag") or None
        try:
            present = {item["id"] for item in contents}
            # In a thread: the feeds service may be this very process (kgi run).
            available = await run_in_threadpool(
                peers.published_items, issue.language, kind=kind, tag=tag
            )
            candidates = [item for item in available if item["id"] not in present]
        except peers.PeerUnavailable as exc:
            candidates_error = str(exc)
    progress = (
        dispatch.progress(issue.id)
        if issue.audience_count or issue.state in ("sending", "paused")
        else None
    )
    return render_page(
        request,
        "newsletter/admin/issue.html",
        {
            "issue": issue,
            "contents": contents,
            "history": history,
            "candidates": candidates,
            "candidates_error": candidates_error,
            "progress": progress,
            "editable": issue.state in compose.EDITABLE,
            "since_last": compose.last_issue_start(issue.language, issue.id),
            "message": request.query_params.get("message"),
            "local_zone": LOCAL_ZONE,
        },
    )


def _back(issue_id: int, message: str | None = None) -> RedirectResponse:
    suffix = f"?message={message}" if message else ""
    return RedirectResponse(f"/newsletter/admin/{issue_id}{suffix}", status_code=303)


@login_required()
async def admin_texts(request: Request) -> Response:
    form = await read_form(request, 64 * 1024)
    verify_csrf(request, form)
    issue_id = request.path_params["id"]
    try:
        compose.update_texts(
            issue_id,
            {k: form.get(k) for k in ("subject", "preheader", "intro", "closing")},
            _actor(request),
        )
    except compose.ComposeError as exc:
        raise HTTPException(422, str(exc)) from None
    return _back(issue_id, "saved")


@login_required()
async def admin_items(request: Request) -> Response:
    form = await read_form(request, 64 * 1024)
    verify_csrf(request, form)
    issue_id = request.path_params["id"]
    action = form.get("action")
    actor = _actor(request)
    try:
        if action == "add":
            ids = [int(v) for v in form.getlist("content_id") if str(v).isdigit()]
            await run_in_threadpool(compose.add_items_by_id, issue_id, ids, actor)
        elif action == "add_since_last":
            await run_in_threadpool(compose.add_since, issue_id, actor)
        elif action in ("up", "down"):
            compose.move_item(
                issue_id, int(str(form.get("row_id"))), -1 if action == "up" else 1, actor
            )
        elif action == "remove":
            compose.remove_item(issue_id, int(str(form.get("row_id"))), actor)
        elif action == "order":
            compose.set_order(
                issue_id,
                [int(v) for v in str(form.get("order", "")).split(",") if v.isdigit()],
                actor,
            )
        else:
            raise HTTPException(400, "Unknown action.")
    except (compose.ComposeError, peers.PeerUnavailable) as exc:
        raise HTTPException(422, str(exc)) from None
    except ValueError:
        raise HTTPException(400, "The request could not be understood") from None
    return _back(issue_id)


@login_required()
async def admin_preview(request: Request) -> Response:
    issue = _issue_or_404(request.path_params["id"])
    page, text = public_version(dispatch.rendered_of(issue))
    if request.path_params["fmt"] == "txt":
        return PlainTextResponse(text)
    return HTMLResponse(page)


@login_required()
async def admin_test(request: Request) -> Response:
    form = await read_form(request)
    verify_csrf(request, form)
    issue_id = request.path_params["id"]
    raw = [
        part.strip()
        for part in str(form.get("addresses", "")).replace(";", ",").split(",")
        if part.strip()
    ]
    if not raw or len(raw) > MAX_TEST_ADDRESSES:
        raise HTTPException(422, f"Please give one to {MAX_TEST_ADDRESSES} addresses.")
    try:
        addresses = [parse_address(address).ascii for address in raw]
    except InvalidInput as exc:
        raise HTTPException(422, exc.message) from None
    try:
        await run_in_threadpool(dispatch.send_test, issue_id, addresses, _actor(request))
    except Exception as exc:  # a mail server problem must reach the editor as a message
        raise HTTPException(503, f"The test mail could not be sent: {exc}") from None
    return _back(issue_id, "test-sent")


@login_required()
async def admin_schedule(request: Request) -> Response:
    form = await read_form(request)
    verify_csrf(request, form)
    issue_id = request.path_params["id"]
    raw = str(form.get("scheduled_at", "")).strip()
    try:
        when = datetime.fromisoformat(raw).replace(tzinfo=LOCAL_ZONE) if raw else None
        compose.schedule(issue_id, when, _actor(request))
    except ValueError as exc:
        raise HTTPException(
            422,
            str(exc)
            if isinstance(exc, compose.ComposeError)
            else "Please give date and time as YYYY-MM-DDTHH:MM.",
        ) from None
    return _back(issue_id, "scheduled" if raw else None)


@login_required(role="admin")
async def admin_control(request: Request) -> Response:
    form = await read_form(request)
    verify_csrf(request, form)
    issue_id = request.path_params["id"]
    action = request.path_params["action"]
    actor = _actor(request)
    try:
        if action == "send":
            # In a thread: the audience comes over HTTP, perhaps from this very process.
            await run_in_threadpool(dispatch.start, issue_id, actor)
        elif action == "pause":
            dispatch.pause(issue_id, actor, "paused by an editor")
        elif action == "resume":
            dispatch.resume(issue_id, actor)
        elif action == "cancel":
            dispatch.cancel(issue_id, actor)
        else:
            raise HTTPException(404, "There is nothing at this address.")
    except dispatch.DispatchError as exc:
        raise HTTPException(409, str(exc)) from None
    except peers.PeerUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    return _back(issue_id)


@login_required()
async def admin_progress(request: Request) -> Response:
    _issue_or_404(request.path_params["id"])
    p = dispatch.progress(request.path_params["id"])
    return JSONResponse({**p.__dict__, "percent": round(p.percent, 1)})


routes = [
    Route("/archive/", archive, methods=["GET"]),
    Route("/archive/feed.{fmt}", archive_feed, methods=["GET"]),
    Route("/archive/{id:int}", archive_issue, methods=["GET"]),
    Route("/admin/", admin_list, methods=["GET"]),
    Route("/admin/new", admin_new, methods=["POST"]),
    Route("/admin/{id:int}", admin_issue, methods=["GET"]),
    Route("/admin/{id:int}/texts", admin_texts, methods=["POST"]),
    Route("/admin/{id:int}/items", admin_items, methods=["POST"]),
    Route("/admin/{id:int}/preview.{fmt}", admin_preview, methods=["GET"]),
    Route("/admin/{id:int}/test", admin_test, methods=["POST"]),
    Route("/admin/{id:int}/schedule", admin_schedule, methods=["POST"]),
    Route("/admin/{id:int}/progress.json", admin_progress, methods=["GET"]),
    Route("/admin/{id:int}/{action}", admin_control, methods=["POST"]),
]


def create_app() -> Starlette:
    """The newsletter app, to be mounted at ``/newsletter``."""
    return create_service_app(routes)
