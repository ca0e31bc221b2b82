"""Error responses: a clear page in the visitor's language, or JSON for API clients."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared import errors
from shared.i18n import request_language, translate
from shared.web.templates import render_page

logger = logging.getLogger("kgi.web")

#: Headlines per status, in English (translated on the page).
TITLES = {
    400: "The request could not be understood",
    403: "Not allowed",
    404: "Page not found",
    405: "Method not allowed",
    410: "This link is no longer valid",
    413: "Too much data",
    415: "Unsupported format",
    422: "Please check your input",
    429: "Too many requests",
    500: "Something went wrong on our side",
    503: "Temporarily unavailable",
}


#: The HTTP status of each kind of error: the one place where one is chosen.
HTTP_STATUS: dict[type[errors.KgiError], int] = {
    errors.BadRequest: 400,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Gone: 410,
    errors.TooLarge: 413,
    errors.UnsupportedType: 415,
    errors.Invalid: 422,
    errors.TooMany: 429,
    errors.Unavailable: 503,
}


def status_of(exc: errors.KgiError) -> int:
    """The status of ``exc``'s kind (its nearest class in the tree)."""
    for kind in type(exc).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    raise TypeError(f"{type(exc).__name__} is not in the error tree")  # a KgiError subclass only


#: Path parts of machine-facing endpoints: public JSON APIs and the services' internal API.
JSON_PATH_PARTS = ("/api/", "/internal/")


def wants_json(request: Request) -> bool:
    """API paths and clients that ask for JSON get JSON errors."""
    accept = request.headers.get("accept", "")
    return any(part in request.url.path for part in JSON_PATH_PARTS) or (
        "application/json" in accept and "text/html" not in accept
    )


def error_response(
    request: Request,
    status: int,
    detail: str,
    headers: dict | None = None,
    field: str | None = None,
) -> Response:
    """The error as JSON (the OpenAPI ``Error`` shape) or as a page; ``detail`` is
    English and translated for pages."""
    if wants_json(request):
        body: dict[str, object] = {"error": detail, "status": status}
        if field:
            body["field"] = field
        return JSONResponse(body, status_code=status, headers=headers)
    language = request_language(request)
    return render_page(
        request,
        "errors/error.html",
        {
            "status": status,
            "title": translate(TITLES.get(status, "Error"), language),
            "detail": translate(detail, language),
        },
        status_code=status,
        headers=headers,
    )


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
    if exc.status_code == 404 and detail == "Not Found":
        detail = "There is nothing at this address."
    return error_response(request, exc.status_code, detail, dict(exc.headers or {}) or None)


async def kgi_error(request: Request, exc: Exception) -> Response:
    """Any error of the tree: its status, its message, its field and Retry-After."""
    assert isinstance(exc, errors.KgiError)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return error_response(request, status_of(exc), exc.message, headers, exc.field)


async def server_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return error_response(request, 500, "The error was logged. Please try again in a few minutes.")


EXCEPTION_HANDLERS = {
    HTTPException: http_exception,
    errors.KgiError: kgi_error,
    Exception: server_error,
}
