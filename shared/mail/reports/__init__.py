"""What comes back about our mail, read into one typed :class:`DeliveryReport`.

The newsletter sends with a VERP envelope sender, so delivery reports, complaints and
auto-replies come back to us; ``kgi inbound`` receives them and decides what they do to
a subscriber. This package only reads: pure functions over the raw bytes of one message,
no database, no network.

:func:`read_report` tries, in this order:

1. an RFC 5965 ARF feedback report (``message/feedback-report``): a COMPLAINT;
2. an RFC 3464 delivery status notification (``message/delivery-status``, or the
   RFC 6533 ``message/global-delivery-status``): per recipient, ``Action: failed`` with a
   5.x.x status is a HARD_BOUNCE; ``Action: delayed``, a 4.x.x status, and 5.2.2
   (mailbox full) are a SOFT_BOUNCE;
3. an auto-reply (vacation, out of office): AUTO_REPLY, checked before any heuristic so
   that an absence notice is never taken for a bounce;
4. the other bounce formats (Exim's, qmail's, old Exchange's, ...), recognised by
   flufl.bounce, Mailman's bounce detectors;
5. anything else: UNKNOWN.

A mail that arrived at the List-Unsubscribe ``mailto:`` address is read with
:func:`read_unsubscribe` instead: the receiver knows the address it came to.

Everything here faces hostile input (whoever can send us mail controls every byte), so
neither function raises: lists are capped, text is cut to one line of bounded length,
and a message the parser cannot take at all is UNKNOWN.

The package's modules, each reading one thing: :mod:`.delivery_report` (the result
types), :mod:`.limits` (how much of a message is read), :mod:`.bounded_mime` (parsing
within those limits, walking the parts), :mod:`.header_fields` (header values,
addresses, message IDs), :mod:`.smtp_replies` (status codes and server replies),
:mod:`.notification_text` (the human-readable part), :mod:`.quoted_original` (our mail
as a report quotes it), :mod:`.delivery_status` (RFC 3464), :mod:`.feedback_report`
(RFC 5965 ARF), :mod:`.auto_reply` and :mod:`.flufl_bounces` (the other formats).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from email.message import Message

from shared.mail.reports.auto_reply import _is_auto_reply, _read_auto_reply
from shared.mail.reports.bounded_mime import _parse, _parts
from shared.mail.reports.delivery_report import DeliveryReport, ReportKind
from shared.mail.reports.delivery_status import _STATUS_TYPES, _read_dsn
from shared.mail.reports.feedback_report import _FEEDBACK_TYPES, _read_arf
from shared.mail.reports.flufl_bounces import _read_flufl
from shared.mail.reports.header_fields import _from_address, _header, _message_id
from shared.mail.reports.limits import (
    FLUFL_LINE_CHARS,
    FLUFL_TEXT_CHARS,
    MAX_DIAGNOSTIC_CHARS,
    MAX_HEADER_CHARS,
    MAX_HEADERS,
    MAX_PARTS,
    MAX_RECIPIENTS,
    MAX_REPORT_BYTES,
    MAX_TEXT_CHARS,
)
from shared.mail.reports.quoted_original import _original_ids
from shared.mail.reports.smtp_replies import bounce_kind, diagnostic_text, enhanced_status

__all__ = [
    "FLUFL_LINE_CHARS",
    "FLUFL_TEXT_CHARS",
    "MAX_DIAGNOSTIC_CHARS",
    "MAX_HEADERS",
    "MAX_HEADER_CHARS",
    "MAX_PARTS",
    "MAX_RECIPIENTS",
    "MAX_REPORT_BYTES",
    "MAX_TEXT_CHARS",
    "DeliveryReport",
    "ReportKind",
    "bounce_kind",
    "diagnostic_text",
    "enhanced_status",
    "read_report",
    "read_unsubscribe",
]

logger = logging.getLogger(__name__)


def read_report(raw: bytes) -> DeliveryReport:
    """Read one message that came back to our envelope sender.

    Never raises: a message that cannot be read at all is UNKNOWN (and logged, since it
    may also mean a bug here).
    """
    try:
        return _read(_parse(raw))
    except RecursionError:
        # MIME nested a thousand deep: the standard library's parser recurses per level.
        logger.warning("delivery report nested too deeply to read")
        return DeliveryReport(ReportKind.UNKNOWN, ())
    except Exception:  # whoever sends us mail controls these bytes: nothing may escape
        logger.warning("unreadable delivery report of %d bytes", len(raw or b""), exc_info=True)
        return DeliveryReport(ReportKind.UNKNOWN, ())


def read_unsubscribe(raw: bytes) -> DeliveryReport:
    """Read a mail sent to our List-Unsubscribe ``mailto:`` address (RFC 2369).

    The arrival at that address is the request, so the result is always UNSUBSCRIBE; its
    recipient is the From address when there is one. The From header is the sender's
    claim: whom to unsubscribe follows from the tagged address the mail came to. (The
    receiver checks for an auto-reply with :func:`read_report` first.) Never raises.
    """
    try:
        message = _parse(raw)
        sender = _from_address(message)
        return DeliveryReport(
            ReportKind.UNSUBSCRIBE,
            (sender.lower(),) if sender else (),
            original_message_id=_message_id(_header(message, "in-reply-to")),
            source="mailto",
        )
    except Exception:  # see read_report
        logger.warning("unreadable unsubscribe mail of %d bytes", len(raw or b""), exc_info=True)
        return DeliveryReport(ReportKind.UNSUBSCRIBE, (), source="mailto")


def _read(message: Message) -> DeliveryReport:
    parts = list(_parts(message))
    feedback = next((p for p in parts if p.get_content_type() in _FEEDBACK_TYPES), None)
    if feedback is not None:
        return _read_arf(message, feedback)
    status_parts = [p for p in parts if p.get_content_type() in _STATUS_TYPES]
    dsn = _read_dsn(message, status_parts) if status_parts else None
    if dsn is not None and dsn.kind != ReportKind.UNKNOWN:
        return dsn
    if _is_auto_reply(message):
        return _read_auto_reply(message)
    message_id, return_path = _original_ids(message)
    bounce = _read_flufl(message)
    if bounce is not None:
        return replace(bounce, original_message_id=message_id, original_return_path=return_path)
    if dsn is not None:
        # A DSN that reports no failure (Action: delivered, relayed, expanded).
        return dsn
    return DeliveryReport(
        ReportKind.UNKNOWN, (), original_message_id=message_id, original_return_path=return_path
    )
