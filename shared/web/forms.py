"""Reading what clients send: bodies with their size and type checked before parsing,
numbers from forms and query strings within range, and form endpoints that do their
blocking work off the event loop; and the protection every form that changes state has
against being sent from another site (first section below).
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from shared.errors import BadRequest, Forbidden, Invalid, NotFound, TooLarge, UnsupportedType
from shared.tokens import secrets_equal
from shared.web.paths import MAX_ROW_ID
from shared.web.sessions import session_of

# --------------------------------------------------------------------------------------
# Protection against forms sent from another site (CSRF), in two kinds:
#
# - Forms of a session (editors, a subscriber's preferences, a registration's page) carry
#   a per-session token in a hidden field (:func:`verify_csrf`).
# - Public forms anyone may send without a session (the sign-up, an event's
#   registration) carry no token: a token would make the page showing them one per
#   visitor, which can never be kept (:mod:`shared.web.caching`), and it would protect
#   nothing a cookie grants. What they must not allow is a foreign page making its
#   visitors' browsers send them (thousands of confirmation mails to addresses of the
#   foreign page's choosing). The browser says where a request comes from
#   (:func:`verify_same_origin`), as Go's ``http.CrossOriginProtection`` reads it.
#
# Endpoints reached by a secret link (one-click unsubscribe per RFC 8058) carry their own
# proof in the URL and must work without a cookie; they use neither.
# --------------------------------------------------------------------------------------

#: Name of the hidden form field that carries the token.
CSRF_FIELD = "csrf_token"

#: Name of the hidden field of public forms that only bots fill in (a person's browser
#: never shows it; the form answers a bot as it answers everyone, and does nothing).
HONEYPOT_FIELD = "website"


def csrf_token(request: Request) -> str:
    """This session's token, created on first use."""
    if "session" not in request.scope:
        return ""
    session = request.session
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def verify_csrf(request: Request, form: FormData) -> None:
    """Raise 403 unless the form carries this session's token."""
    expected = session_of(request).get("csrf", "")
    given = form.get(CSRF_FIELD, "")
    # An uploaded file in the token field is no token either.
    if not expected or not isinstance(given, str) or not secrets_equal(given, expected):
        raise Forbidden(
            "This form has expired or was sent from another site. "
            "Please reload the page and try again.",
        )


#: What browsers send as ``Sec-Fetch-Site`` (Fetch Metadata, in every browser since 2023)
#: for a form of this very origin, or one the person typed or bookmarked. "same-site"
#: is refused too: another port or subdomain of the host is another origin.
SAME_ORIGIN_FETCH_SITES = frozenset({"same-origin", "none"})

#: Why a public form sent from another site is refused.
FOREIGN_FORM = (
    "This form was sent from another site. Please open the form on this site and send "
    "it from there."
)


def _origin_host(origin: str) -> str | None:
    """The host (and port) of an ``Origin`` header; None for ``null`` or no URL at all."""
    scheme, separator, rest = origin.partition("://")
    if not separator or scheme not in ("http", "https") or not rest or "/" in rest:
        return None
    return rest.lower()


def verify_same_origin(request: Request) -> None:
    """Raise 403 when the browser says this request was sent by a page of another origin.

    ``Sec-Fetch-Site`` decides where the browser sends it. Older browsers send only
    ``Origin`` with a form's POST, which must then name this host. A request with
    neither comes from no browser (a script, curl): it could send anything anyway.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site.lower() not in SAME_ORIGIN_FETCH_SITES:
            raise Forbidden(FOREIGN_FORM)
        return
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "").lower()
    if not host or _origin_host(origin) != host:
        raise Forbidden(FOREIGN_FORM)


# --------------------------------------------------------------------------------------

#: Largest ordinary form or JSON body (16 KiB): a sign-up is a few hundred bytes.
SMALL_BODY_LIMIT = 16 * 1024

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

#: Highest ``?page=`` anyone can mean; a larger number is refused before any arithmetic
#: turns it into an offset the database cannot hold.
MAX_PAGE = 1_000_000

#: What a form endpoint does once the body is read: blocking work, run in the threadpool.
FormHandler = Callable[[Request, FormData], Response]


def _check_size(request: Request, limit: int) -> None:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise TooLarge("The request is too large.")


async def read_form(request: Request, limit: int = SMALL_BODY_LIMIT) -> FormData:
    """The form fields; 415 for other content types, 413 when too large."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in FORM_TYPES:
        raise UnsupportedType("Send this form as application/x-www-form-urlencoded.")
    _check_size(request, limit)
    body = await request.body()
    if len(body) > limit:
        raise TooLarge("The request is too large.")
    return await request.form(max_part_size=limit)


def _is_encodable(data: Any) -> bool:
    """Whether ``data`` holds only text that UTF-8 can encode.

    JSON may spell a lone surrogate (``"\\ud800"``); Python decodes it into a ``str`` that
    every later encode (database, mail, page) refuses with an error.
    """
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def read_json(request: Request, limit: int = SMALL_BODY_LIMIT) -> dict[str, Any]:
    """A JSON object from the body; 415, 413 or 400 with a clear message otherwise."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedType("Send JSON with Content-Type: application/json.")
    _check_size(request, limit)
    body = await request.body()
    if len(body) > limit:
        raise TooLarge("The request is too large.")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        # ValueError also covers numbers of more than 4,300 digits.
        raise BadRequest("The body is not valid JSON.") from None
    except RecursionError:
        # Thousands of nested brackets exhaust the parser's stack; no real client nests so.
        raise BadRequest("The JSON in the body is nested too deeply.") from None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.")
    if not _is_encodable(data):
        raise BadRequest("The body contains text that is not valid Unicode.")
    return data


def form_endpoint(
    limit: int = SMALL_BODY_LIMIT, public: bool = False
) -> Callable[[FormHandler], Callable[[Request], Awaitable[Response]]]:
    """Turn a blocking ``handler(request, form)`` into an endpoint.

    The body is read on the event loop (reading awaits the client), its origin checked
    there (the session's CSRF token; for a ``public`` form, which carries none, the
    browser's word on where it comes from), and the handler, which talks to the
    database, Redis or SMTP, runs in the threadpool so it never stalls other requests.
    """

    def decorate(handler: FormHandler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            if public:
                verify_same_origin(request)
            form = await read_form(request, limit)
            if not public:
                verify_csrf(request, form)
            return await run_in_threadpool(handler, request, form)

        return endpoint

    return decorate


@dataclass(frozen=True)
class UploadedFile:
    """A file sent with a form: the name the browser gave it, and its bytes."""

    filename: str
    data: bytes


def uploaded_file(form: FormData, name: str = "file") -> UploadedFile | None:
    """The file sent in the field ``name``, read; None when none was chosen (browsers send
    an empty part without a name then) or text came in its place. The upload may be
    spooled to disk: call this in the threadpool, as form handlers run."""
    upload = form.get(name)
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    return UploadedFile(upload.filename, upload.file.read())


def form_text(form: FormData, name: str) -> str:
    """A text field's value; empty when missing or when a file was sent in its place."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def number_up_to(text: str, largest: int) -> int | None:
    """``text`` as a whole number in 1..``largest``, else None (signs, spaces, other
    scripts' digits and thousands of digits included: ``int()`` accepts some of those)."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(largest)):
        return None
    number = int(text)
    return number if 0 < number <= largest else None


def parse_row_id(raw: object, what: str = "item") -> int:
    """A row id sent in a form field; 422 unless it is a whole number in 1..MAX_ROW_ID.

    The database's 64-bit integers cannot even be asked about a larger one.
    """
    number = number_up_to(raw.strip(), MAX_ROW_ID) if isinstance(raw, str) else None
    if number is None:
        raise Invalid(f"There is no such {what}.")
    return number


def page_number(request: Request) -> int:
    """``?page=`` as a number from 1 (the default) to MAX_PAGE; 404 for anything else."""
    number = number_up_to(request.query_params.get("page", "").strip() or "1", MAX_PAGE)
    if number is None:
        raise NotFound("There is no such page.")
    return number


def client_ip(request: Request) -> str:
    """The client's address as the ASGI server saw it (uvicorn resolves trusted proxies)."""
    return request.client.host if request.client else "unknown"
