"""The result of reading a report: :class:`DeliveryReport` and its :class:`ReportKind`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReportKind(StrEnum):
    """What a report says happened to our mail."""

    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    AUTO_REPLY = "auto_reply"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class DeliveryReport:
    """One report about our mail, whatever format it came in.

    ``recipients`` are the affected addresses as the report gives them, lower-cased, at
    most :data:`MAX_RECIPIENTS`; they may be empty. ``status`` is an RFC 3463 enhanced
    status code (``5.1.1``), ``diagnostic`` the remote server's text as one line of at
    most :data:`MAX_DIAGNOSTIC_CHARS` characters. ``original_message_id`` (with angle
    brackets) and ``original_return_path`` (the envelope sender, which carries our VERP
    tag) describe our mail the report is about when the report quotes it. ``source``
    says how it was read: ``dsn``, ``flufl:<detector>``, ``arf``, ``autoreply``,
    ``mailto``, ``mailgun``, ``sendgrid``; empty when nothing could be read.
    """

    kind: ReportKind
    recipients: tuple[str, ...]
    status: str | None = None
    diagnostic: str | None = None
    original_message_id: str | None = None
    original_return_path: str | None = None
    feedback_type: str | None = None
    source: str = ""
