"""Routes of the feeds service, mounted at ``/news``: public pages, feeds, and the admin."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from services.feeds import aggregate, cache, content, media, store
from services.feeds.content import InvalidItem, ItemFilter, WorkflowError
from services.feeds.store import KINDS, STATES
from services.feeds.syndication import FeedQuery, render_calendar, render_feed
from shared.config import get_settings
from shared.database import read_connection
from shared.i18n import LANGUAGES
from shared.web.app import create_service_app
from shared.web.auth import login_required
from shared.web.conditional import conditional_response
from shared.web.csrf import verify_csrf
from shared.web.forms import read_form
from shared.web.sessions import current_user
from shared.web.templates import render_page

#: Items per page on the public list.
LIST_PAGE_SIZE = 10

#: How long feed readers and proxies may reuse a feed without asking (5 minutes).
FEED_MAX_AGE_SECONDS = 300

#: Largest item form: rich HTML body and an uploaded lead image (5 MiB) with room to spare.
ITEM_FORM_LIMIT = 6 * 1024 * 1024


def selection_from(request: Request) -> tuple[ItemFilter, int]:
    """The filters and page asked for; unknown values are ignored."""
    params = request.query_params
    kind = params.get("type") if params.get("type") in KINDS else None
    language = params.get("lang") if params.get("lang") in LANGUAGES else None
    tag = (params.get("tag") or "").strip()[:40] or None
    partners = params.get("partners") in ("1", "true", "yes")
    try:
        page = max(1, min(int(params.get("page", "1")), 10_000))
    except ValueError:
        page = 1
    return ItemFilter(kind=kind, tag=tag, language=language, include_partners=partners), page


def conditional(request: Request, rendered: cache.Rendered) -> Response:
    """The rendered body, or 304 when the client's copy is current."""
    return conditional_response(
        request,
        rendered.body,
        rendered.media_type,
        rendered.etag,
        rendered.last_modified,
        FEED_MAX_AGE_SECONDS,
    )


# --- public --------------------------------------------------------------------------


async def news_list(request: Request) -> Response:
    selection, page = selection_from(request)
    found, total = content.public_items(selection, LIST_PAGE_SIZE, (page - 1) * LIST_PAGE_SIZE)
    query = FeedQuery(selection)
    return render_page(
        request,
        "feeds/list.html",
        {
            "items": found,
            "selection": selection,
            "page": page,
            "pages": max(1, -(-total // LIST_PAGE_SIZE)),
            "total": total,
            "tags": content.all_tags(selection.include_partners),
            "feeds": {fmt: query.url(fmt) for fmt in ("rss", "atom", "json")},
            "query": query.query_string,
        },
    )


async def news_item(request: Request) -> Response:
    with read_connection("feeds") as conn:
        item = store.get_item_by_slug(conn, request.path_params["slug"])
        translation = (
            store.get_item(conn, item.translation_id) if item and item.translation_id else None
        )
    preview = current_user(request) is not None
    if item is None or (not preview and not content.is_visible(item)):
        raise HTTPException(404, "There is nothing at this address.")
    if translation is not None and not content.is_visible(translation):
        translation = None
    return render_page(
        request,
        "feeds/item.html",
        {
            "item": item,
            "translation": translation,
            "preview": not content.is_visible(item),
            "feeds": {
                fmt: FeedQuery(ItemFilter(kind=item.kind)).url(fmt)
                for fmt in ("rss", "atom", "json")
            },
        },
    )


async def feed(request: Request) -> Response:
    fmt = request.path_params["fmt"]
    if fmt not in ("rss", "atom", "json"):
        raise HTTPException(404, "There is nothing at this address.")
    selection, page = selection_from(request)
    query = FeedQuery(selection, page)
    if request.url.query != query.query_string:
        # One URL per feed, so the self link always matches the URL served.
        target = request.url.path + ("?" + query.query_string if query.query_string else "")
        return RedirectResponse(target, status_code=301)
    rendered = cache.cached(f"{fmt}?{query.query_string}", lambda: render_feed(fmt, query))
    return conditional(request, rendered)


async def calendar(request: Request) -> Response:
    selection, _ = selection_from(request)
    key = f"ics?{FeedQuery(selection).query_string}"
    return conditional(request, cache.cached(key, lambda: render_calendar(selection)))


#: Most items one API call returns.
API_LIMIT = 200


async def api_items(request: Request) -> Response:
    """Visible items as JSON for other services (the newsletter composes from this):
    the list filters plus ``since`` (ISO date or time) and ``limit``."""
    selection, page = selection_from(request)
    since_raw = request.query_params.get("since")
    if since_raw:
        try:
            since = datetime.fromisoformat(since_raw.replace("Z", "+00:00"))
        except ValueError:
            raise HTTPException(422, "since must be an ISO date or date-time.") from None
        selection = replace(selection, since=since if since.tzinfo else since.replace(tzinfo=UTC))
    try:
        limit = max(1, min(int(request.query_params.get("limit", "50")), API_LIMIT))
    except ValueError:
        raise HTTPException(422, "limit must be a number.") from None
    found, total = content.public_items(selection, limit, (page - 1) * limit)
    return JSONResponse(
        {"total": total, "page": page, "items": [item_json(item) for item in found]}
    )


def item_json(item: store.Item) -> dict[str, Any]:
    """The public fields of an item, with absolute URLs."""
    settings = get_settings()
    image = item.lead_image_url
    return {
        "id": item.id,
        "kind": item.kind,
        "origin": item.origin,
        "source": item.source_name,
        "language": item.language,
        "title": item.title,
        "summary": item.summary,
        "url": settings.absolute_url(item.path),
        "external_url": item.link if item.is_partner else None,
        "tags": item.tags,
        "image": (settings.absolute_url(image) if image and image.startswith("/") else image),
        "image_alt": item.lead_image_alt,
        "published_at": item.published_at.isoformat() if item.published_at else None,
        "event": {
            "start": item.event_start.isoformat(),
            "end": (item.event_end or item.event_start).isoformat(),
            "location": item.event_location,
        }
        if item.event_start
        else None,
    }


# --- admin ---------------------------------------------------------------------------


async def _with_upload(form: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """Store an uploaded lead image and point the item at it (raises InvalidItem)."""
    upload = form.get("lead_image_file")
    if upload is not None and not isinstance(upload, str) and upload.filename:
        data = await upload.read()
        if data:
            try:
                fields["lead_image_url"] = media.save_image(data)
            except media.InvalidImage as exc:
                raise InvalidItem("lead_image_file", str(exc)) from None
    return fields


async def media_file(request: Request) -> Response:
    path = media.media_path(request.path_params["name"])
    if path is None:
        raise HTTPException(404, "There is nothing at this address.")
    # Names are content hashes: the file behind a name never changes.
    return FileResponse(path, headers={"Cache-Control": "public, max-age=31536000, immutable"})


def _fields(form: Any) -> dict[str, Any]:
    names = (
        "kind",
        "language",
        "title",
        "summary",
        "body",
        "tags",
        "lead_image_url",
        "lead_image_alt",
        "author",
        "event_start",
        "event_end",
        "event_location",
        "event_organiser",
        "effective_at",
        "expires_at",
        "translation_id",
        "slug",
    )
    return {name: form.get(name) or None for name in names}


@login_required()
async def admin_items(request: Request) -> Response:
    state = (
        request.query_params.get("state") if request.query_params.get("state") in STATES else None
    )
    query = request.query_params.get("q", "").strip()[:200]
    return render_page(
        request,
        "feeds/admin/items.html",
        {
            "items": content.editor_items(state, query),
            "state": state,
            "states": STATES,
            "query": query,
            "partner_items": content.partner_items(50),
        },
    )


def _editor_form(
    request: Request,
    item: store.Item | None,
    values: dict[str, Any],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    history = []
    if item is not None:
        with read_connection("feeds") as conn:
            history = store.item_history(conn, item.id)
    return render_page(
        request,
        "feeds/admin/edit.html",
        {
            "item": item,
            "values": values,
            "errors": errors,
            "kinds": KINDS,
            "history": history,
            "transitions": content.TRANSITIONS,
            "others": content.editor_items(),
        },
        status_code=status,
    )


def _values_of(item: store.Item) -> dict[str, Any]:
    values = {name: getattr(item, name) for name in item.__dataclass_fields__}
    values["tags"] = ", ".join(item.tags)
    for name in ("effective_at", "expires_at"):
        values[name] = values[name].strftime("%Y-%m-%dT%H:%M") if values[name] else ""
    return values


@login_required()
async def admin_new(request: Request) -> Response:
    if request.method == "GET":
        return _editor_form(request, None, {"kind": "news", "language": "de"}, {})
    form = await read_form(request, ITEM_FORM_LIMIT)
    verify_csrf(request, form)
    fields = _fields(form)
    try:
        item = content.create_item(await _with_upload(form, fields), current_user(request)["email"])
    except InvalidItem as exc:
        return _editor_form(request, None, fields, {exc.field: exc.message}, 422)
    return RedirectResponse(f"/news/admin/{item.id}?saved=1", status_code=303)


@login_required()
async def admin_edit(request: Request) -> Response:
    item_id = request.path_params["id"]
    with read_connection("feeds") as conn:
        item = store.get_item(conn, item_id)
    if item is None or item.origin != store.NETWORK:
        raise HTTPException(404, "There is no such item.")
    if request.method == "GET":
        return _editor_form(request, item, _values_of(item), {})
    form = await read_form(request, ITEM_FORM_LIMIT)
    verify_csrf(request, form)
    fields = _fields(form)
    try:
        content.update_item(
            item_id, await _with_upload(form, fields), current_user(request)["email"]
        )
    except InvalidItem as exc:
        return _editor_form(request, item, fields, {exc.field: exc.message}, 422)
    return RedirectResponse(f"/news/admin/{item_id}?saved=1", status_code=303)


@login_required()
async def admin_workflow(request: Request) -> Response:
    form = await read_form(request)
    verify_csrf(request, form)
    user = current_user(request)
    try:
        content.transition(
            request.path_params["id"],
            str(form.get("step", "")),
            user["email"],
            user["role"],
            str(form.get("comment", ""))[:1000] or None,
        )
    except WorkflowError as exc:
        raise HTTPException(409 if "not possible" in str(exc) else 403, str(exc)) from None
    return RedirectResponse(f"/news/admin/{request.path_params['id']}", status_code=303)


@login_required()
async def admin_hide(request: Request) -> Response:
    form = await read_form(request)
    verify_csrf(request, form)
    content.set_hidden(
        request.path_params["id"], form.get("hidden") == "1", current_user(request)["email"]
    )
    return RedirectResponse("/news/admin/#partner", status_code=303)


@login_required()
async def admin_sources(request: Request) -> Response:
    values: dict[str, Any] = {}
    error = None
    status = 200
    if request.method == "POST":
        form = await read_form(request)
        verify_csrf(request, form)
        values = {
            k: str(form.get(k, "")).strip()
            for k in ("url", "name", "selectors", "language", "interval")
        }
        try:
            interval = int(values.get("interval") or aggregate.DEFAULT_INTERVAL_MINUTES)
            aggregate.add_source(
                values["url"],
                values["name"] or None,
                values["selectors"] or None,
                values["language"] or None,
                interval,
            )
        except (aggregate.InvalidSource, ValueError) as exc:
            error, status = str(exc), 422
        else:
            return RedirectResponse("/news/admin/sources?added=1", status_code=303)
    return render_page(
        request,
        "feeds/admin/sources.html",
        {"sources": aggregate.list_all(), "values": values, "error": error},
        status_code=status,
    )


@login_required()
async def admin_source_action(request: Request) -> Response:
    form = await read_form(request)
    verify_csrf(request, form)
    source_id = request.path_params["id"]
    action = form.get("action")
    if action == "pause":
        aggregate.update_source(source_id, paused=True)
    elif action == "resume":
        aggregate.update_source(source_id, paused=False)
    elif action == "fetch":
        from services.feeds.actors import fetch_source

        fetch_source.send(source_id)
    elif action == "delete":
        aggregate.delete_source(source_id)
    else:
        raise HTTPException(400, "Unknown action.")
    return RedirectResponse("/news/admin/sources", status_code=303)


routes = [
    Route("/", news_list, methods=["GET"]),
    Route("/feed.{fmt}", feed, methods=["GET"]),
    Route("/events.ics", calendar, methods=["GET"]),
    Route("/media/{name}", media_file, methods=["GET"]),
    Route("/api/items", api_items, methods=["GET"]),
    Route("/admin/", admin_items, methods=["GET"]),
    Route("/admin/new", admin_new, methods=["GET", "POST"]),
    Route("/admin/{id:int}", admin_edit, methods=["GET", "POST"]),
    Route("/admin/{id:int}/workflow", admin_workflow, methods=["POST"]),
    Route("/admin/partner/{id:int}/hide", admin_hide, methods=["POST"]),
    Route("/admin/sources", admin_sources, methods=["GET", "POST"]),
    Route("/admin/sources/{id:int}", admin_source_action, methods=["POST"]),
    Route("/{slug}", news_item, methods=["GET"]),
]


def create_app() -> Starlette:
    """The feeds app, to be mounted at ``/news``."""
    return create_service_app(routes)
