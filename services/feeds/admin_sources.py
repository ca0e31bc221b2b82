"""The admin of partner sources. Editors see the sources and their health; adding,
pausing, resuming, fetching, hiding a source's items and deleting are for admins.

A source is never deleted while items of it are published: that would take content off
the site as a side effect. Its items are hidden first (one button), then it can go.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.feeds import opml, partner_sources
from services.feeds.form_input import checked_form, text_field
from shared.database import utcnow
from shared.errors import BadRequest
from shared.tasks import enqueue
from shared.web.forms import form_endpoint, uploaded_file
from shared.web.paths import path_for
from shared.web.sessions import current_user, login_required
from shared.web.templates import render_page

#: Fields of the form that adds a source.
SOURCE_FIELDS = ("url", "name", "selectors", "language", "interval")

#: What an admin can do with a source.
ACTIONS = ("pause", "resume", "fetch", "hide", "delete")

#: Largest request an OPML import takes: the file (opml.MAX_OPML_BYTES) and the form.
OPML_BODY_LIMIT = opml.MAX_OPML_BYTES + 64 * 1024

#: The title and file name of an export.
OPML_TITLE = "KGI – Partnerquellen"
OPML_FILENAME = "kgi-sources.opml"


def _page(
    request: Request,
    values: dict[str, str],
    error: str | None,
    status: int,
    imported: partner_sources.AddReport | None = None,
    import_error: str | None = None,
) -> Response:
    user = current_user(request)
    return render_page(
        request,
        "feeds/admin/sources.html",
        {
            "sources": partner_sources.list_all(),
            "values": values,
            "error": error,
            "manage": user is not None and user["role"] == "admin",
            "imported": imported,
            "import_error": import_error,
            "outcomes": (partner_sources.ADDED, partner_sources.SKIPPED, partner_sources.REFUSED),
        },
        status_code=status,
    )


@login_required()
def admin_sources(request: Request) -> Response:
    """The sources with their last fetch, status and error."""
    return _page(request, {}, None, 200)


def _add(request: Request, values: dict[str, str]) -> Response:
    try:
        interval = int(values["interval"] or partner_sources.DEFAULT_INTERVAL_MINUTES)
    except ValueError:
        return _page(request, values, "The interval must be a number of minutes.", 422)
    try:
        partner_sources.add_source(
            values["url"],
            values["name"] or None,
            values["selectors"] or None,
            values["language"] or None,
            interval,
        )
    except partner_sources.InvalidSource as exc:
        return _page(request, values, str(exc), 422)
    return RedirectResponse(path_for("feeds:admin_sources") + "?added=1", status_code=303)


@login_required("admin")
async def admin_add_source(request: Request) -> Response:
    """Add a feed, or an HTML page read with CSS selectors."""
    form = await checked_form(request)
    values = {name: text_field(form, name).strip() for name in SOURCE_FIELDS}
    return await run_in_threadpool(_add, request, values)


def _act(request: Request, source_id: int, action: str) -> Response:
    user: dict[str, Any] = current_user(request) or {}
    # NoSuchSource (404) and SourceInUse (409) are answered by the error tree.
    if action == "pause":
        partner_sources.update_source(source_id, paused=True)
    elif action == "resume":
        partner_sources.update_source(source_id, paused=False)
    elif action == "fetch":
        # By name: web modules do not import actors modules (those import the domain).
        partner_sources.get_source(source_id)  # raises NoSuchSource for an unknown id
        enqueue("fetch_source", source_id)
    elif action == "hide":
        partner_sources.hide_items(source_id, user.get("email", ""))
    else:
        partner_sources.delete_source(source_id)
    return RedirectResponse(path_for("feeds:admin_sources"), status_code=303)


@login_required("admin")
async def admin_source_action(request: Request) -> Response:
    """Pause, resume, fetch now, hide the items of, or delete a source."""
    form = await checked_form(request)
    action = text_field(form, "action")
    if action not in ACTIONS:
        raise BadRequest("Unknown action.")
    return await run_in_threadpool(_act, request, request.path_params["id"], action)


@login_required()
def admin_export_opml(request: Request) -> Response:
    """Every source as OPML 2.0, for a feed reader or another installation."""
    body = opml.write_opml(partner_sources.list_all(), OPML_TITLE, utcnow())
    return Response(
        body,
        media_type="text/x-opml; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{OPML_FILENAME}"'},
    )


@login_required("admin")
@form_endpoint(limit=OPML_BODY_LIMIT)
def admin_import_opml(request: Request, form: FormData) -> Response:
    """Add every feed an OPML file lists; the sources page shows what each one did."""
    upload = uploaded_file(form)
    if upload is None:
        return _page(request, {}, None, 422, import_error="Please choose an OPML file.")
    try:
        definitions = opml.read_opml(upload.data)
    except opml.InvalidOpml as exc:
        return _page(request, {}, None, 422, import_error=str(exc))
    return _page(request, {}, None, 200, imported=partner_sources.add_sources(definitions))
