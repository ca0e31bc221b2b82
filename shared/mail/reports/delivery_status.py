"""RFC 3464 delivery status notifications (and RFC 6533's global ones), read recipient
by recipient into one hard or soft bounce."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from shared.mail.reports.bounded_mime import _status_blocks
from shared.mail.reports.delivery_report import DeliveryReport, ReportKind
from shared.mail.reports.header_fields import _address, _header, _recipients, _return_path
from shared.mail.reports.notification_text import _diagnostic_from_text
from shared.mail.reports.quoted_original import _original_ids
from shared.mail.reports.smtp_replies import bounce_kind, diagnostic_text, enhanced_status

#: Content types of the parts that carry per-recipient delivery status.
_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})

#: Address types of DSN recipient fields whose value is a mail address (RFC 3464, 6533).
_ADDRESS_TYPES = frozenset({"rfc822", "utf-8"})


@dataclass(frozen=True)
class _Failure:
    """One recipient's failure in a report, before the report's kind is decided."""

    address: str | None
    status: str | None
    diagnostic: str | None


def _read_dsn(message: Message, status_parts: list[Message]) -> DeliveryReport:
    hard: list[_Failure] = []
    soft: list[_Failure] = []
    envelope_sender: str | None = None
    for part in status_parts:
        for block in _status_blocks(part):
            if not any(_header(block, f) for f in ("action", "final-recipient", "status")):
                # The per-message block. Postfix names the envelope sender there.
                envelope_sender = envelope_sender or _return_path(
                    _field_value(_header(block, "x-postfix-sender"))
                )
                continue
            kind, failure = _recipient_failure(block)
            if kind == ReportKind.HARD_BOUNCE:
                hard.append(failure)
            elif kind == ReportKind.SOFT_BOUNCE:
                soft.append(failure)
    message_id, return_path = _original_ids(message)
    return_path = return_path or envelope_sender
    failures = hard or soft
    if not failures:
        return DeliveryReport(
            ReportKind.UNKNOWN,
            (),
            original_message_id=message_id,
            original_return_path=return_path,
            source="dsn",
        )
    first = next((f for f in failures if f.status), failures[0])
    diagnostic = first.diagnostic or next((f.diagnostic for f in failures if f.diagnostic), None)
    if diagnostic is None:
        _, diagnostic = _diagnostic_from_text(message)
    return DeliveryReport(
        ReportKind.HARD_BOUNCE if hard else ReportKind.SOFT_BOUNCE,
        _recipients(f.address for f in failures),
        status=first.status,
        diagnostic=diagnostic,
        original_message_id=message_id,
        original_return_path=return_path,
        source="dsn",
    )


def _recipient_failure(block: Message) -> tuple[ReportKind | None, _Failure]:
    """One per-recipient block of a DSN: its kind (None: no failure) and what it says."""
    # Original-Recipient is the address as we sent it (before forwarding or aliases):
    # the one a subscriber is known by. Final-Recipient is mandatory, so the fallback.
    address = _dsn_address(_header(block, "original-recipient")) or _dsn_address(
        _header(block, "final-recipient")
    )
    diagnostic_field = _header(block, "diagnostic-code")
    diagnostic = diagnostic_text(_field_value(diagnostic_field))
    status = enhanced_status(_header(block, "status")) or enhanced_status(diagnostic_field)
    failure = _Failure(address, status, diagnostic)
    words = _header(block, "action").lower().split()
    action = words[0] if words else ""
    if action.startswith("delayed"):
        return ReportKind.SOFT_BOUNCE, failure
    if action in ("delivered", "relayed", "expanded"):
        return None, failure
    by_status = bounce_kind(status)
    if by_status is not None:
        return by_status, failure
    if status is None and (reply := re.match(r"\s*([245])\d\d\b", _field_value(diagnostic_field))):
        return bounce_kind(f"{reply[1]}.0.0"), failure
    # opensmtpd writes "Action: error"; a failure without a status is still final.
    if action.startswith(("failed", "error")):
        return ReportKind.HARD_BOUNCE, failure
    return None, failure


def _field_value(value: str) -> str:
    """A DSN field's value after its type: ``smtp; 550 ...`` gives ``550 ...``."""
    kind, separator, rest = value.partition(";")
    if separator and re.fullmatch(r"\s*[A-Za-z0-9-]{1,40}\s*", kind):
        return rest.strip()
    return value.strip()


def _dsn_address(value: str) -> str | None:
    """The address of ``Final-Recipient: rfc822; x@example.net`` (or ``utf-8;``)."""
    kind, separator, rest = value.partition(";")
    if separator:
        if kind.strip().lower() not in _ADDRESS_TYPES:
            return None
        return _address(rest)
    # Some MTAs leave the type out and write an angle-addr alone.
    return _address(value)
