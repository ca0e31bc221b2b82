"""Bounces in the formats that are no DSN (Exim's, qmail's, old Exchange's, ...), read by
flufl.bounce, Mailman's bounce detectors, on the message cut down to what they may read."""

from __future__ import annotations

import logging
from email.message import Message

import flufl.bounce
import flufl.bounce._scan

from shared.mail.reports.bounded_mime import _parts
from shared.mail.reports.delivery_report import DeliveryReport, ReportKind
from shared.mail.reports.header_fields import _address, _recipients
from shared.mail.reports.limits import FLUFL_LINE_CHARS, FLUFL_TEXT_CHARS
from shared.mail.reports.notification_text import _diagnostic_from_text
from shared.mail.reports.smtp_replies import bounce_kind

#: The package's logger: the records of all its modules go under the one name.
logger = logging.getLogger("shared.mail.reports")

#: Content types of a whole attached message, hidden from flufl.bounce's detectors.
_ATTACHED_TYPES = frozenset({"message/rfc822", "message/global"})


def _read_flufl(message: Message) -> DeliveryReport | None:
    """A bounce in one of the non-DSN formats flufl.bounce knows, or None.

    Changes ``message``: it is cut down to what the detectors may read first (see
    :func:`_trim_for_flufl`), after its own text has been searched for a diagnostic.
    """
    status, diagnostic = _diagnostic_from_text(message)
    _trim_for_flufl(message)
    temporary, permanent, detector = _flufl_failures(message)
    if not (temporary or permanent):
        return None
    # A final failure whose server said "try later" or "mailbox full" is soft; warnings
    # only (delivery delayed) are soft whatever the text quotes: nothing is final yet.
    kind = (bounce_kind(status) or ReportKind.HARD_BOUNCE) if permanent else ReportKind.SOFT_BOUNCE
    return DeliveryReport(
        kind,
        _recipients(sorted(permanent or temporary)),
        status=status,
        diagnostic=diagnostic,
        source=f"flufl:{detector}",
    )


def _trim_for_flufl(message: Message) -> None:
    """Cut ``message`` down to what flufl.bounce's detectors may read.

    Attached messages (message/rfc822, message/global) go: the detectors walk into
    them, so a forwarded bounce would read as a bounce of ours, and our own newsletter
    in a returned copy could match their patterns. Parts other than text are emptied.
    Text is cut to :data:`FLUFL_TEXT_CHARS` in all and every line to
    :data:`FLUFL_LINE_CHARS`: some detectors search each line with patterns that take
    time quadratic in its length, for every line, pattern after pattern.
    """
    for part in list(_parts(message)):
        payload = part.get_payload()
        if part.get_content_maintype() == "multipart" and isinstance(payload, list):
            part.set_payload(
                [
                    p
                    for p in payload
                    if not (isinstance(p, Message) and p.get_content_type() in _ATTACHED_TYPES)
                ]
            )
    budget = FLUFL_TEXT_CHARS
    for part in message.walk():
        payload = part.get_payload()
        if not isinstance(payload, str):
            continue
        if budget <= 0 or part.get_content_maintype() not in ("text", "message"):
            part.set_payload("")
            continue
        lines = payload[:budget].splitlines()
        text = "".join(line[:FLUFL_LINE_CHARS] + "\n" for line in lines)
        budget -= len(text)
        part.set_payload(text)


def _flufl_failures(message: Message) -> tuple[set[str], set[str], str]:
    """flufl.bounce's temporary and permanent addresses and the detector that found them.

    ``all_failures`` runs the detectors in order and stops at the first that finds
    anything, but says neither which one matched nor survives a detector raising (it
    re-raises). So the same ordered list is run here, each detector on its own; the list
    is module-private, hence the public function as the fallback should it move.
    """
    detectors = getattr(flufl.bounce._scan, "_DETECTORS", None)
    if not isinstance(detectors, list):
        temporary, permanent = flufl.bounce.all_failures(message)
        return _decode_all(temporary), _decode_all(permanent), "unknown"
    for detector in detectors:
        try:
            temporary, permanent = detector().process(message)
        except Exception:  # one detector tripping over hostile input must not end the scan
            logger.debug("flufl.bounce detector %s failed", detector.__name__, exc_info=True)
            continue
        temporary, permanent = _decode_all(temporary), _decode_all(permanent)
        # A heuristic that matched but found nothing that looks like an address (a line
        # of garbage between its markers) is no detection: the next detector may know.
        if temporary or permanent:
            return temporary, permanent, detector.__name__.lower()
    return set(), set(), ""


def _decode_all(addresses: frozenset[bytes]) -> set[str]:
    """flufl.bounce's addresses (bytes: its detectors drop non-ASCII ones) that look like
    addresses, lower-cased."""
    decoded = (a.decode("ascii", "replace") for a in addresses)
    return {normal for a in decoded if (normal := _address(a))}
