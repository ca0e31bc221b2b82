"""Reading the feeds admin's forms: on the event loop, before any blocking work.

Every value comes out as text safe to store and show: a form may be sent in any charset
(Starlette decodes with the one declared, and UTF-7 can produce lone surrogates), so
characters no database, page or feed can carry are removed here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData, ImmutableMultiDict, UploadFile
from starlette.requests import Request

from shared.sanitize import writable
from shared.web.forms import read_form, verify_csrf

#: Largest item form: rich HTML body and an uploaded lead image (5 MiB) with room to spare.
ITEM_FORM_LIMIT = 6 * 1024 * 1024

#: The text fields of the item form.
ITEM_FIELDS = (
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


def text_field(form: ImmutableMultiDict[str, Any], name: str, limit: int | None = None) -> str:
    """The field ``name`` of a form or query as writable text ('' when missing or a
    file), cut at ``limit``."""
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    return writable(value)[:limit]


@dataclass(frozen=True)
class ItemForm:
    """The item form as sent: text fields (None when empty) and the uploaded image."""

    fields: dict[str, str | None]
    image: bytes | None


async def checked_form(request: Request, limit: int | None = None) -> FormData:
    """The form of a state-changing request, after its CSRF token was checked."""
    form = await (read_form(request) if limit is None else read_form(request, limit))
    verify_csrf(request, form)
    return form


async def read_item_form(request: Request) -> ItemForm:
    """The item editor's form (multipart, with an optional lead image upload)."""
    form = await checked_form(request, ITEM_FORM_LIMIT)
    upload = form.get("lead_image_file")
    image = None
    if isinstance(upload, UploadFile) and upload.filename:
        image = await upload.read() or None
    fields = {name: text_field(form, name) or None for name in ITEM_FIELDS}
    return ItemForm(fields, image)
