"""Attaching files to an item and taking them off, from the item's editor page."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.feeds import content, downloads
from services.feeds.store import Item
from shared.database import read_connection
from shared.web.forms import form_endpoint, parse_row_id, uploaded_file
from shared.web.paths import path_for
from shared.web.sessions import current_user, login_required

#: Largest request an attachment comes in: the file and the form around it.
ATTACH_LIMIT = downloads.MAX_FILE_BYTES + 64 * 1024


def _item(request: Request) -> tuple[Item, str]:
    """The item of the URL (NoSuchItem: 404) and the role of who asks."""
    with read_connection("feeds") as conn:
        item = content.network_item(conn, request.path_params["id"])
    user = current_user(request)
    assert user is not None  # behind login_required
    return item, user["role"]


def _back(item: Item) -> Response:
    return RedirectResponse(path_for("feeds:admin_item", id=item.id) + "#downloads", 303)


@login_required()
@form_endpoint(limit=ATTACH_LIMIT)
def attach_file(request: Request, form: FormData) -> Response:
    """Attach the uploaded file (a PDF, checked by its signature) to the item."""
    item, role = _item(request)
    upload = uploaded_file(form)
    if upload is None:
        raise downloads.InvalidFile("Please choose a file.", "file")
    downloads.attach(item, role, upload.filename, upload.data)
    return _back(item)


@login_required()
@form_endpoint()
def remove_file(request: Request, form: FormData) -> Response:
    """Take one file off the item."""
    item, role = _item(request)
    downloads.remove(item, role, parse_row_id(form.get("file_id"), "file"))
    return _back(item)
