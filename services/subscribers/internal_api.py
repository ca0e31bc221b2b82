"""The subscribers service's internal API, for the newsletter service (authenticated by
the service token): the audience of an issue, who is still confirmed, and what came back
about an issue. Described in :mod:`services.subscribers.openapi`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from services.subscribers import feedback, transfer
from shared.errors import Invalid
from shared.i18n import LANGUAGES
from shared.tokens import require_service
from shared.web.forms import read_json
from shared.web.paths import MAX_ROW_ID

#: Rows read from the database at a time while streaming an audience.
AUDIENCE_CHUNK = 1000


async def audience(request: Request) -> Response:
    """Confirmed subscribers of ``?language=`` as JSON lines, with their personal links;
    streamed, so 100,000 subscribers never sit in memory at once."""
    require_service(request)
    language = request.query_params.get("language", "de")
    if language not in LANGUAGES:
        raise Invalid("The language must be de or en.", "language")

    def chunks() -> Iterator[bytes]:
        # Many lines per chunk: each chunk crosses from the worker thread to the event loop.
        lines: list[str] = []
        for subscriber in transfer.confirmed(language, AUDIENCE_CHUNK):
            lines.append(json.dumps(transfer.recipient_record(subscriber), ensure_ascii=False))
            if len(lines) >= AUDIENCE_CHUNK:
                yield ("\n".join(lines) + "\n").encode()
                lines = []
        if lines:
            yield ("\n".join(lines) + "\n").encode()

    return StreamingResponse(iterate_in_threadpool(chunks()), media_type="application/x-ndjson")


async def confirmed(request: Request) -> Response:
    """Which of the given subscriber ids are still confirmed (checked just before sending)."""
    require_service(request)
    data = await read_json(request, limit=256 * 1024)
    ids = data.get("ids")
    if (
        not isinstance(ids, list)
        or len(ids) > transfer.MAX_CONFIRMED_IDS
        # bool is an int to Python, but no id; ids beyond 64 bits cannot be in the table.
        or not all(type(i) is int and 0 < i <= MAX_ROW_ID for i in ids)
    ):
        raise Invalid(
            f"ids must be a list of at most {transfer.MAX_CONFIRMED_IDS} subscriber ids.", "ids"
        )
    return JSONResponse({"confirmed": await run_in_threadpool(transfer.still_confirmed, ids)})


def _since(raw: str | None) -> datetime | None:
    """``?since=`` as an aware moment; None when absent. Invalid (422) when unreadable."""
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise Invalid("since must be an ISO 8601 date and time with its offset.", "since") from None
    if moment.tzinfo is None:
        raise Invalid("since must be an ISO 8601 date and time with its offset.", "since")
    return moment


def issue_feedback(request: Request) -> Response:
    """Subscribers with a bounce, complaint or mailto unsubscribe about one issue, by kind;
    with ``?since=`` (when the issue went out) also those who unsubscribed in the week
    after."""
    require_service(request)
    since = _since(request.query_params.get("since"))
    return JSONResponse(feedback.issue_counts(request.path_params["id"], since))
