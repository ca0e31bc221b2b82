"""Relays' event webhooks read into :class:`~shared.mail.reports.DeliveryReport` lists.

When the newsletter is sent through a relay, bounces and complaints reach the relay, not
us; it reports them by HTTP POST instead. Two are read here, each only after its
signature is verified:

- Mailgun (``read_mailgun``): one JSON event per request, signed with HMAC-SHA256 of
  ``timestamp + token`` under the webhook signing key. The signature does not cover the
  event itself, so a captured request's signature fits any event for as long as its
  timestamp is accepted; Mailgun's advice is to remember tokens and refuse a repeat.
- SendGrid (``read_sendgrid``): a JSON array of events, signed with ECDSA P-256 over
  SHA-256 of the ``X-Twilio-Email-Event-Webhook-Timestamp`` value followed by the raw
  body, the DER signature base64-encoded in ``X-Twilio-Email-Event-Webhook-Signature``.

Both refuse a timestamp more than :data:`MAX_AGE_SECONDS` from now (a replay of an old
request). Everything that is not accepted (a bad signature, a replay, a body that is not
the JSON the relay sends) raises :class:`WebhookRefused`; nothing else is raised.
Events that are neither a failure, a complaint nor an unsubscribe (delivered, opened,
clicked, ...) give no report.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from shared.errors import Forbidden
from shared.mail.reports import (
    DeliveryReport,
    ReportKind,
    bounce_kind,
    diagnostic_text,
    enhanced_status,
)

#: How far a signed timestamp may be from now, either way: Mailgun's and the common
#: practice's five minutes. Older requests are refused as replays; newer ones (a sender
#: clock far ahead) too, since they would stay replayable for longer.
MAX_AGE_SECONDS = 300

#: Reports one request may carry: SendGrid batches events, but far fewer than this.
MAX_EVENTS = 10_000

#: Longest address taken from an event (RFC 5321: 64 + 1 + 255 octets).
_MAX_ADDRESS_CHARS = 320

#: A Unix timestamp as the relays write it: decimal seconds.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")

#: What a relay's event address must look like to be reported.
_ADDRESS = re.compile(r"[^\s<>@\x00-\x1f\x7f]{1,64}@[^\s<>@\x00-\x1f\x7f]{1,255}")

#: A message ID, with or without its angle brackets (Mailgun leaves them off):
#: printable ASCII (RFC 5322 3.6.4).
_MESSAGE_ID = re.compile(r"<?([\x21-\x3b\x3d\x3f-\x7e]{1,990})>?")

#: Mailgun ``failed`` reasons for mail it did not even try because the address is on
#: one of its suppression lists, by what put it there. ("suppress-bounce" is a
#: permanent failure like any other.)
_SUPPRESSED_REASONS: dict[str, ReportKind] = {
    "suppress-unsubscribe": ReportKind.UNSUBSCRIBE,
    "suppress-complaint": ReportKind.COMPLAINT,
}

#: SendGrid ``dropped`` reasons, by what they say about the address. Other reasons
#: ("Invalid SMTPAPI header", "Spam Content", ...) are about the mail, not the reader.
_DROPPED_REASONS: dict[str, ReportKind] = {
    "bounced address": ReportKind.HARD_BOUNCE,
    "invalid": ReportKind.HARD_BOUNCE,
    "unsubscribed address": ReportKind.UNSUBSCRIBE,
    "unsubscribed group": ReportKind.UNSUBSCRIBE,
    "spam reporting address": ReportKind.COMPLAINT,
}


class WebhookRefused(Forbidden, ValueError):
    """A webhook request that is not accepted: bad signature, replay, or malformed body."""


# --- Mailgun -------------------------------------------------------------------------


def read_mailgun(body: bytes, signing_key: str, now: float | None = None) -> list[DeliveryReport]:
    """The reports in one Mailgun webhook request (``failed``, ``complained``,
    ``unsubscribed``; other events give an empty list).

    ``signing_key`` is the HTTP webhook signing key, ``now`` the current Unix time (for
    tests). Raises WebhookRefused for a bad signature, a timestamp more than
    :data:`MAX_AGE_SECONDS` away, or a body that is not Mailgun's JSON.
    """
    if not signing_key:
        raise WebhookRefused("no Mailgun signing key configured")
    data = _json(body)
    if not isinstance(data, dict):
        raise WebhookRefused("Mailgun webhook body is not a JSON object")
    signature = data.get("signature")
    if not isinstance(signature, dict):
        raise WebhookRefused("Mailgun webhook without a signature object")
    timestamp = _timestamp_text(signature.get("timestamp"))
    token, claimed = signature.get("token"), signature.get("signature")
    if not isinstance(token, str) or not isinstance(claimed, str) or not token:
        raise WebhookRefused("Mailgun signature without token or signature")
    expected = hmac.new(
        signing_key.encode("utf-8"), (timestamp + token).encode("utf-8"), hashlib.sha256
    ).hexdigest()
    # Compared as bytes: compare_digest refuses str with non-ASCII characters.
    if not hmac.compare_digest(expected.encode(), claimed.strip().lower().encode("utf-8")):
        raise WebhookRefused("Mailgun signature does not match")
    _check_age(timestamp, now)
    event = data.get("event-data")
    if not isinstance(event, dict):
        raise WebhookRefused("Mailgun webhook without event-data")
    report = _mailgun_report(event)
    return [report] if report is not None else []


def _mailgun_report(event: Mapping[str, Any]) -> DeliveryReport | None:
    name = _text(event, "event", required=True)
    if name not in ("failed", "complained", "unsubscribed"):
        return None
    recipient = _event_address(event, "recipient")
    message = _mapping(event, "message")
    headers = _mapping(message, "headers")
    envelope = _mapping(event, "envelope")
    message_id = _message_id(_text(headers, "message-id"))
    return_path = _address(_text(envelope, "sender"))

    def report(kind: ReportKind, status: str | None = None, reply: str = "") -> DeliveryReport:
        return DeliveryReport(
            kind,
            (recipient,),
            status=status,
            diagnostic=diagnostic_text(reply) if reply else None,
            original_message_id=message_id,
            original_return_path=return_path,
            source="mailgun",
        )

    if name == "complained":
        return report(ReportKind.COMPLAINT)
    if name == "unsubscribed":
        return report(ReportKind.UNSUBSCRIBE)
    suppressed = _SUPPRESSED_REASONS.get(_text(event, "reason") or "")
    if suppressed is not None:
        return report(suppressed)
    delivery = _mapping(event, "delivery-status")
    reply = " ".join(text for key in ("message", "description") if (text := _text(delivery, key)))
    status = enhanced_status(_text(delivery, "enhanced-code") or "") or enhanced_status(reply)
    # The reply's text comes without its code; put it in front, as a DSN has it.
    code = delivery.get("code") if delivery is not None else None
    if isinstance(code, int) and 400 <= code < 600 and reply and not reply.startswith(str(code)):
        reply = f"{code} {reply}"
    severity = _text(event, "severity")
    if severity == "temporary":
        return report(ReportKind.SOFT_BOUNCE, status, reply)
    if severity == "permanent":
        # "permanent" also covers Mailgun giving up after retrying, so "mailbox full"
        # and 4.x.x replies are soft here as they are in a DSN.
        return report(bounce_kind(status) or ReportKind.HARD_BOUNCE, status, reply)
    raise WebhookRefused(f"Mailgun failed event with severity {severity!r}")


# --- SendGrid ------------------------------------------------------------------------


def read_sendgrid(
    body: bytes, signature: str, timestamp: str, public_key: str, now: float | None = None
) -> list[DeliveryReport]:
    """The reports in one SendGrid Event Webhook request: ``bounce`` (type ``bounce`` is
    hard, ``blocked`` soft), ``deferred`` (soft), ``dropped`` (by its reason),
    ``spamreport``, ``unsubscribe`` and ``group_unsubscribe``; other events are skipped.

    ``signature`` and ``timestamp`` are the values of the
    ``X-Twilio-Email-Event-Webhook-Signature`` and ``-Timestamp`` headers, ``public_key``
    the verification key as SendGrid shows it (base64 DER) or as PEM, ``now`` the
    current Unix time (for tests). Raises WebhookRefused for a bad signature, a timestamp
    more than :data:`MAX_AGE_SECONDS` away, or a body that is not SendGrid's JSON.
    """
    timestamp = _timestamp_text(timestamp)
    key = _sendgrid_key(public_key)
    try:
        der_signature = base64.b64decode((signature or "").strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookRefused("SendGrid signature is not base64") from exc
    try:
        key.verify(der_signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError) as exc:
        raise WebhookRefused("SendGrid signature does not match") from exc
    _check_age(timestamp, now)
    events = _json(body)
    if not isinstance(events, list):
        raise WebhookRefused("SendGrid webhook body is not a JSON array")
    if len(events) > MAX_EVENTS:
        raise WebhookRefused(f"SendGrid webhook with more than {MAX_EVENTS} events")
    reports: list[DeliveryReport] = []
    for event in events:
        if not isinstance(event, dict):
            raise WebhookRefused("SendGrid event is not a JSON object")
        report = _sendgrid_report(event)
        if report is not None:
            reports.append(report)
    return reports


@lru_cache(maxsize=8)
def _sendgrid_key(public_key: str) -> ec.EllipticCurvePublicKey:
    """The configured verification key; refused unless it is an ECDSA P-256 key."""
    text = (public_key or "").strip()
    try:
        if text.startswith("-----BEGIN"):
            key = load_pem_public_key(text.encode("ascii"))
        else:
            key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, TypeError, UnsupportedAlgorithm, binascii.Error) as exc:
        raise WebhookRefused("SendGrid verification key is not a readable public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise WebhookRefused("SendGrid verification key is not an ECDSA P-256 key")
    return key


def _sendgrid_report(event: Mapping[str, Any]) -> DeliveryReport | None:
    name = _text(event, "event", required=True)
    reason = _text(event, "reason") or _text(event, "response") or ""
    status = enhanced_status(_text(event, "status") or "") or enhanced_status(reason)
    if name == "bounce":
        if _text(event, "type") == "blocked":
            # SendGrid's "blocked": refused for now (a block list, a policy), not for good.
            kind = ReportKind.SOFT_BOUNCE
        else:
            kind = bounce_kind(status) or ReportKind.HARD_BOUNCE
    elif name == "deferred":
        kind = ReportKind.SOFT_BOUNCE
    elif name == "dropped":
        kind = _DROPPED_REASONS.get(reason.strip().lower(), ReportKind.UNKNOWN)
    elif name == "spamreport":
        kind = ReportKind.COMPLAINT
    elif name in ("unsubscribe", "group_unsubscribe"):
        kind = ReportKind.UNSUBSCRIBE
    else:
        return None
    failure = kind in (ReportKind.HARD_BOUNCE, ReportKind.SOFT_BOUNCE, ReportKind.UNKNOWN)
    return DeliveryReport(
        kind,
        (_event_address(event, "email"),),
        status=status if failure else None,
        diagnostic=diagnostic_text(reason) if failure and reason else None,
        original_message_id=_message_id(_text(event, "smtp-id")),
        source="sendgrid",
    )


# --- shared --------------------------------------------------------------------------


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, TypeError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and UnicodeDecodeError; RecursionError is
        # what a body of ten thousand nested brackets raises.
        raise WebhookRefused("webhook body is not JSON") from exc


def _timestamp_text(value: object) -> str:
    """The signed timestamp as the text that was signed: decimal digits only."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value.strip()):
        raise WebhookRefused("webhook timestamp is not a Unix time")
    return value.strip()


def _check_age(timestamp: str, now: float | None) -> None:
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > MAX_AGE_SECONDS:
        raise WebhookRefused("webhook timestamp too old or too far ahead (replay?)")


def _mapping(data: Mapping[str, Any] | None, key: str) -> Mapping[str, Any] | None:
    """An optional object field; one of another type is left out (see _text)."""
    value = data.get(key) if data is not None else None
    return value if isinstance(value, dict) else None


def _text(data: Mapping[str, Any] | None, key: str, *, required: bool = False) -> str | None:
    """A text field; a required one must be there, an optional one of another type is
    left out rather than refusing the whole request (and with it every other event)."""
    value = data.get(key) if data is not None else None
    if isinstance(value, str):
        return value
    if required:
        raise WebhookRefused(f"webhook field {key!r} is missing or not text")
    return None


def _event_address(event: Mapping[str, Any], key: str) -> str:
    address = _address(_text(event, key, required=True))
    if address is None:
        raise WebhookRefused(f"webhook field {key!r} is not an address")
    return address.lower()


def _address(value: str | None) -> str | None:
    candidate = (value or "").strip().strip("<>").strip()
    if len(candidate) <= _MAX_ADDRESS_CHARS and _ADDRESS.fullmatch(candidate):
        # isprintable: no control or format characters (bidi overrides) in what is shown.
        return candidate if candidate.isprintable() else None
    return None


def _message_id(value: str | None) -> str | None:
    found = _MESSAGE_ID.fullmatch((value or "").strip())
    return f"<{found[1]}>" if found else None
