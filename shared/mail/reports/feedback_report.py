"""RFC 5965 ARF feedback reports: a reader's complaint about our mail."""

from __future__ import annotations

from email.message import Message

from shared.mail.reports.bounded_mime import _status_blocks
from shared.mail.reports.delivery_report import DeliveryReport, ReportKind
from shared.mail.reports.header_fields import (
    _header,
    _header_addresses,
    _headers,
    _recipients,
    _return_path,
)
from shared.mail.reports.quoted_original import _ids_of, _original_headers

#: Content types of the ARF machine-readable part.
_FEEDBACK_TYPES = frozenset({"message/feedback-report"})

#: ARF feedback types that are not a reader's complaint: "this is not spam" and DKIM/SPF
#: failure reports (RFC 6591). Everything else (abuse, fraud, virus, other) is one.
_NOT_COMPLAINTS = frozenset({"not-spam", "auth-failure"})


def _read_arf(message: Message, feedback: Message) -> DeliveryReport:
    fields = _status_blocks(feedback)
    report = fields[0] if fields else Message()
    words = _header(report, "feedback-type").lower().split()
    feedback_type = words[0][:40] if words else None
    recipients = [
        address
        for value in _headers(report, "original-rcpt-to")
        for address in _header_addresses(value)
    ]
    original = _original_headers(message)
    if not recipients and original is not None:
        recipients = [a for v in _headers(original, "to") for a in _header_addresses(v)]
    message_id, return_path = _ids_of(original)
    return DeliveryReport(
        ReportKind.UNKNOWN if feedback_type in _NOT_COMPLAINTS else ReportKind.COMPLAINT,
        _recipients(recipients),
        original_message_id=message_id,
        original_return_path=return_path
        or _return_path(_header(report, "original-mail-from") or None),
        feedback_type=feedback_type,
        source="arf",
    )
