"""The admin of the network's items: list, editor, workflow, pending revisions, and hiding
partner items.

Who may do what (the README has the table): editors write, edit and submit, and their
changes to a published item wait as a revision; admins also publish, send back, retract,
decide on revisions, edit published items directly and hide partner items.

Pages are plain functions (run in the threadpool). A form is read on the event loop by
an ``async`` endpoint, which then hands everything else to one plain function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.feeds import content, downloads, listing, media, revisions, store
from services.feeds.form_input import ItemForm, checked_form, read_item_form, text_field
from services.feeds.item_fields import EDITORS_TIME_ZONE, InvalidItem, row_id
from services.feeds.store import KINDS, STATES, Item, Revision
from shared.database import read_connection
from shared.i18n import request_language
from shared.web.paths import path_for
from shared.web.sessions import current_user, login_required
from shared.web.templates import render_page

#: Longest workflow comment kept.
MAX_COMMENT_LENGTH = 1000

#: Longest title search.
MAX_QUERY_LENGTH = 200

#: The editor form's label of each content field (English; translated on the page), so
#: the review of a revision names fields as the form does.
FIELD_LABELS = {
    "kind": "Type",
    "language": "Language",
    "title": "Title",
    "summary": "Summary",
    "body": "Text (HTML)",
    "tags": "Tags",
    "lead_image_url": "Lead image (https address)",
    "lead_image_alt": "Image description (alt text)",
    "author": "Author",
    "event_start": "Start date",
    "event_end": "End date",
    "event_location": "Location",
    "event_organiser": "Organiser",
    "effective_at": "Visible from",
    "expires_at": "Visible until",
    "translation_id": "Translation of",
}


def _user(request: Request) -> dict[str, Any]:
    user = current_user(request)
    assert user is not None  # every endpoint here is behind login_required
    return user


def _item_or_404(item_id: int) -> Item:
    with read_connection("feeds") as conn:
        return content.network_item(conn, item_id)


@login_required()
def admin_items(request: Request) -> Response:
    """The items list with state filter and title search, and the partner items."""
    wanted = request.query_params.get("state")
    state = wanted if wanted in STATES else None
    query = text_field(request.query_params, "q", MAX_QUERY_LENGTH).strip()
    return render_page(
        request,
        "feeds/admin/items.html",
        {
            "items": listing.editor_items(state, query),
            "state": state,
            "states": STATES,
            "query": query,
            "partner_items": listing.partner_items(50),
            "under_review": revisions.items_under_review(),
        },
    )


def _values_of(item: Item, revision: Revision | None = None) -> dict[str, Any]:
    """The editor form's values: the item's, or those of its pending revision."""
    values = {name: getattr(item, name) for name in item.__dataclass_fields__}
    if revision is not None:
        values.update(revision.content)
    values["tags"] = ", ".join(values["tags"])
    for name in ("effective_at", "expires_at"):
        # Shown in the editors' time zone, the one the form reads them in.
        moment = values[name]
        values[name] = (
            moment.astimezone(EDITORS_TIME_ZONE).strftime("%Y-%m-%dT%H:%M") if moment else ""
        )
    return values


def _editor_form(
    request: Request,
    item: Item | None,
    values: Mapping[str, Any],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    history: list[dict[str, Any]] = []
    revision = None
    if item is not None:
        with read_connection("feeds") as conn:
            history = store.item_history(conn, item.id)
            revision = store.pending_revision(conn, item.id)
    role = _user(request)["role"]
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
            "others": listing.editor_items(),
            "files": [
                (file, downloads.size_label(file.size, request_language(request)))
                for file in (downloads.files_of([item.id])[item.id] if item else [])
            ],
            "may_change_files": item is not None and downloads.may_change(item, role),
            "version": content.version_of(item) if item else "",
            "revision": revision,
            "revision_version": revisions.version_of(revision) if revision else "",
            "changes": revisions.changes(item, revision) if item and revision else [],
            "labels": FIELD_LABELS,
            "needs_review": item is not None and revisions.needs_review(item, role, revision),
        },
        status_code=status,
    )


def _with_upload(form: ItemForm) -> dict[str, Any]:
    """The form's fields, pointing at the uploaded lead image once it is stored."""
    fields: dict[str, Any] = dict(form.fields)
    if form.image:
        try:
            fields["lead_image_url"] = media.save_image(form.image)
        except media.InvalidImage as exc:
            raise InvalidItem("lead_image_file", str(exc)) from None
    return fields


@login_required()
def admin_new_page(request: Request) -> Response:
    """An empty editor."""
    return _editor_form(request, None, {"kind": "news", "language": "de"}, {})


def _create(request: Request, form: ItemForm) -> Response:
    fields = dict(form.fields)
    try:
        fields = _with_upload(form)
        item = content.create_item(fields, _user(request)["email"])
    except InvalidItem as exc:
        return _editor_form(request, None, fields, {exc.field: exc.message}, 422)
    return RedirectResponse(path_for("feeds:admin_item", id=item.id) + "?saved=1", status_code=303)


@login_required()
async def admin_create(request: Request) -> Response:
    """Save a new draft from the editor."""
    form = await read_item_form(request)
    return await run_in_threadpool(_create, request, form)


@login_required()
def admin_edit_page(request: Request) -> Response:
    """The editor of an item; editors continue its pending revision, if there is one."""
    item = _item_or_404(request.path_params["id"])
    revision = revisions.pending_revision(item.id)
    shown = (
        revision
        if revision and revisions.needs_review(item, _user(request)["role"], revision)
        else None
    )
    return _editor_form(request, item, _values_of(item, shown), {})


def _save(request: Request, item_id: int, form: ItemForm) -> Response:
    item = _item_or_404(item_id)
    user = _user(request)
    fields = dict(form.fields)
    try:
        fields = _with_upload(form)
        revision = revisions.save_edit(item_id, fields, user["email"], user["role"])
    except InvalidItem as exc:
        return _editor_form(request, item, fields, {exc.field: exc.message}, 422)
    saved = "revision" if revision is not None else "1"
    return RedirectResponse(
        path_for("feeds:admin_item", id=item_id) + f"?saved={saved}", status_code=303
    )


@login_required()
async def admin_save(request: Request) -> Response:
    """Save the editor: directly, or as a pending revision of a published item."""
    form = await read_item_form(request)
    return await run_in_threadpool(_save, request, request.path_params["id"], form)


def _step(request: Request, item_id: int, step: str, comment: str, version: str) -> Response:
    user = _user(request)
    # The form always carries the version shown; a missing one matches nothing.
    content.transition(item_id, step, user["email"], user["role"], comment or None, version)
    return RedirectResponse(path_for("feeds:admin_item", id=item_id), status_code=303)


@login_required()
async def admin_workflow(request: Request) -> Response:
    """Take a workflow step (submit, publish, send back, retract) on the version seen."""
    form = await checked_form(request)
    return await run_in_threadpool(
        _step,
        request,
        request.path_params["id"],
        text_field(form, "step"),
        text_field(form, "comment", MAX_COMMENT_LENGTH).strip(),
        text_field(form, "version"),
    )


def _decide(request: Request, item_id: int, form: dict[str, str]) -> Response:
    user = _user(request)
    revisions.decide(
        item_id,
        row_id(form["revision"]) or 0,
        form["version"],
        form["action"],
        user["email"],
        user["role"],
        form["comment"] or None,
    )
    return RedirectResponse(path_for("feeds:admin_item", id=item_id), status_code=303)


@login_required("admin")
async def admin_revision(request: Request) -> Response:
    """Publish or reject the pending revision of an item, as it was when reviewed."""
    form = await checked_form(request)
    fields = {name: text_field(form, name) for name in ("revision", "version", "action")}
    fields["comment"] = text_field(form, "comment", MAX_COMMENT_LENGTH).strip()
    return await run_in_threadpool(_decide, request, request.path_params["id"], fields)


def _hide(request: Request, item_id: int, hidden: bool) -> Response:
    content.set_hidden(item_id, hidden, _user(request)["email"])
    return RedirectResponse(path_for("feeds:admin") + "#partner", status_code=303)


@login_required("admin")
async def admin_hide(request: Request) -> Response:
    """Hide a partner item from pages and feeds, or show it again."""
    form = await checked_form(request)
    hidden = text_field(form, "hidden") == "1"
    return await run_in_threadpool(_hide, request, request.path_params["id"], hidden)
