"""Conditional GET (RFC 9110 section 13): validators on a response and 304 when they match.

Feeds and archive feeds are polled every few minutes by readers that send
``If-None-Match`` or ``If-Modified-Since``; answering those with 304 is most of the
traffic, so every cacheable body goes through :func:`conditional_response`.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime

from starlette.requests import Request
from starlette.responses import Response


def _opaque(tag: str) -> str:
    """The opaque part of an entity tag: ``W/"x"`` and ``"x"`` compare equal weakly."""
    tag = tag.strip()
    return tag[2:] if tag[:2] in ("W/", "w/") else tag


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison of ``etag`` with an ``If-None-Match`` list (RFC 9110 13.1.2)."""
    if if_none_match.strip() == "*":
        return True
    ours = _opaque(etag)
    return any(_opaque(candidate) == ours for candidate in if_none_match.split(","))


def not_modified_since(if_modified_since: str, last_modified: datetime) -> bool:
    """True when the client's date is at or after ``last_modified`` (to the second)."""
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False  # an unparsable date is ignored, as RFC 9110 13.1.3 requires
    if since is None or since.tzinfo is None:
        return False
    return last_modified.replace(microsecond=0) <= since


def conditional_response(
    request: Request,
    body: bytes,
    media_type: str,
    etag: str,
    last_modified: datetime,
    max_age: int,
) -> Response:
    """``body`` with ETag, Last-Modified and Cache-Control, or 304 when the client's copy
    is current. ``If-None-Match`` takes precedence over ``If-Modified-Since``."""
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(last_modified, usegmt=True),
        "Cache-Control": f"public, max-age={max_age}",
    }
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        if etag_matches(if_none_match, etag):
            return Response(status_code=304, headers=headers)
    elif (since := request.headers.get("if-modified-since")) and not_modified_since(
        since, last_modified
    ):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)
