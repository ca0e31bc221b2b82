"""Reading request bodies safely: size limits and content types checked before parsing."""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

#: Largest ordinary form or JSON body (16 KiB): a sign-up is a few hundred bytes.
SMALL_BODY_LIMIT = 16 * 1024

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _check_size(request: Request, limit: int) -> None:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise HTTPException(413, "The request is too large.")


async def read_form(request: Request, limit: int = SMALL_BODY_LIMIT) -> FormData:
    """The form fields; 415 for other content types, 413 when too large."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in FORM_TYPES:
        raise HTTPException(415, "Send this form as application/x-www-form-urlencoded.")
    _check_size(request, limit)
    body = await request.body()
    if len(body) > limit:
        raise HTTPException(413, "The request is too large.")
    return await request.form(max_part_size=limit)


async def read_json(request: Request, limit: int = SMALL_BODY_LIMIT) -> dict[str, Any]:
    """A JSON object from the body; 415, 413 or 400 with a clear message otherwise."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise HTTPException(415, "Send JSON with Content-Type: application/json.")
    _check_size(request, limit)
    body = await request.body()
    if len(body) > limit:
        raise HTTPException(413, "The request is too large.")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "The body must be a JSON object.")
    return data


def client_ip(request: Request) -> str:
    """The client's address as the ASGI server saw it (uvicorn resolves trusted proxies)."""
    return request.client.host if request.client else "unknown"
