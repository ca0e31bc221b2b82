"""Bounces and complaints that a relay reports over HTTP (Mailgun, SendGrid).

A sender that hands its mail to such a relay never sees the bounces itself: the relay
posts them to these endpoints. Each request is verified with the relay's own signature
(``KGI_MAILGUN_WEBHOOK_KEY``, ``KGI_SENDGRID_WEBHOOK_KEY``; unset: the endpoint answers
404) and then applied like a bounce that came back by mail (see
:mod:`services.subscribers.feedback`). Relays repeat a request that was not answered
with 2xx, and a repeated request is recognised by its body, so it counts once.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.subscribers import feedback
from shared.config import get_settings
from shared.errors import NotFound, TooLarge, Unavailable
from shared.mail.reports import DeliveryReport
from shared.mail.signing import issue_of_message_id, read_return_address
from shared.mail.webhooks import read_mailgun, read_sendgrid

#: Largest webhook body taken: SendGrid batches up to a few thousand events.
WEBHOOK_BODY_LIMIT = 4 * 1024 * 1024

#: Seconds a relay should wait before repeating a request we could not record.
RETRY_AFTER_SECONDS = 60


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > WEBHOOK_BODY_LIMIT:
        raise TooLarge("The request is too large.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > WEBHOOK_BODY_LIMIT:
            raise TooLarge("The request is too large.")
    return body


def _apply(source: str, body: bytes, read: Callable[[], list[DeliveryReport]]) -> Response:
    """Verify and read the body, record every report; runs in the threadpool."""
    reports = read()  # WebhookRefused (Forbidden) when the signature does not hold
    try:
        for index, report in enumerate(reports):
            # A relay that kept our VERP sender names it; else the address and the
            # Message-ID say whom and which issue (the request itself is signed).
            tag = read_return_address(report.original_return_path or "")
            feedback.record(
                report,
                tag,
                feedback.report_key(source, body, str(index)),
                issue_id=issue_of_message_id(report.original_message_id),
            )
    except SQLAlchemyError:
        # The relay repeats the whole request later; what was recorded counts once.
        raise Unavailable(
            "The reports cannot be recorded right now; please repeat the request.",
            retry_after=RETRY_AFTER_SECONDS,
        ) from None
    return JSONResponse({"recorded": len(reports)})


def _configured(key: str | None, relay: str) -> str:
    if not key:
        raise NotFound(f"The {relay} webhook is not configured.")
    return key


async def mailgun_webhook(request: Request) -> Response:
    """Mailgun's HTTP webhook (events failed, complained, unsubscribed)."""
    key = _configured(get_settings().mailgun_webhook_key, "Mailgun")
    body = await _body(request)
    return await run_in_threadpool(_apply, "mailgun", body, lambda: read_mailgun(body, key))


async def sendgrid_webhook(request: Request) -> Response:
    """SendGrid's signed Event Webhook (bounce, deferred, dropped, spamreport, ...)."""
    key = _configured(get_settings().sendgrid_webhook_key, "SendGrid")
    body = await _body(request)
    signature = request.headers.get("x-twilio-email-event-webhook-signature", "")
    timestamp = request.headers.get("x-twilio-email-event-webhook-timestamp", "")
    return await run_in_threadpool(
        _apply, "sendgrid", body, lambda: read_sendgrid(body, signature, timestamp, key)
    )
