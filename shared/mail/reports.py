"""What comes back about our mail, read into one typed :class:`DeliveryReport`.

The newsletter sends with a VERP envelope sender, so delivery reports, complaints and
auto-replies come back to us; ``kgi inbound`` receives them and decides what they do to
a subscriber. This module only reads: pure functions over the raw bytes of one message,
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
"""

from __future__ import annotations

import email.policy
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses
from enum import StrEnum

import flufl.bounce
import flufl.bounce._scan

logger = logging.getLogger(__name__)

#: Most recipients one report names; a DSN listing thousands is cut here (our mail has
#: one recipient per message, so a longer list is either a relay's digest or an attack).
MAX_RECIPIENTS = 100

#: Longest diagnostic kept, in characters, after it is made one line.
MAX_DIAGNOSTIC_CHARS = 500

#: Bytes of a message read at most. ``kgi inbound`` takes up to 10 MiB, but everything
#: that matters (the notification, the status fields, the original's headers) comes
#: first, well within this even when a report quotes a whole issue. Parsing and
#: flufl.bounce's line heuristics (each detector reads every body line again) grow with
#: the input, so the cut bounds the work one hostile message can cause.
MAX_REPORT_BYTES = 512 * 1024

#: Header fields kept per message or part: real ones have a few dozen. Every header
#: lookup scans them all, and flufl.bounce's detectors do many lookups.
MAX_HEADERS = 500

#: Characters kept of one header field's value. Some flufl.bounce detectors run the
#: standard library's address parser over the whole From field, which takes seconds on
#: a megabyte of addresses.
MAX_HEADER_CHARS = 8192

#: Parts kept per multipart (and header blocks per delivery-status part, which the
#: parser attaches the same way), and parts looked at in all: a report has three or
#: four parts, a DSN about our mail one block per recipient.
MAX_PARTS = 200

#: Characters of text flufl.bounce's detectors read at most, in all parts together, and
#: per line. Some of their patterns take time quadratic in a line's length (a 40 kB
#: line costs seconds), once per line and pattern; real bounces say what failed in
#: their first few kilobytes, in lines far shorter than this.
FLUFL_TEXT_CHARS = 32 * 1024
FLUFL_LINE_CHARS = 200

#: Characters of decoded notification text searched for a diagnostic line.
MAX_TEXT_CHARS = 64 * 1024

#: Longest header value taken apart into addresses (To, From, Original-Rcpt-To).
_MAX_ADDRESS_HEADER_CHARS = 4096

#: RFC 5322 2.1.1: no line (so no message ID) is longer than 998 octets.
_MAX_ID_CHARS = 998


#: Content types of the parts that carry per-recipient delivery status.
_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})

#: Content types of the ARF machine-readable part.
_FEEDBACK_TYPES = frozenset({"message/feedback-report"})

#: Content types of a quoted original: the whole message or only its headers.
#: ``message/rfc822-headers`` is not registered, but some MTAs write it.
_ORIGINAL_TYPES = frozenset(
    {
        "message/rfc822",
        "message/global",
        "text/rfc822-headers",
        "message/global-headers",
        "message/rfc822-headers",
    }
)

#: Content types of a whole attached message, hidden from flufl.bounce's detectors.
_ATTACHED_TYPES = frozenset({"message/rfc822", "message/global"})

#: ARF feedback types that are not a reader's complaint: "this is not spam" and DKIM/SPF
#: failure reports (RFC 6591). Everything else (abuse, fraud, virus, other) is one.
_NOT_COMPLAINTS = frozenset({"not-spam", "auth-failure"})

#: RFC 3463 enhanced status code: class.subject.detail, up to three digits each.
_STATUS = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?![\w.])")

#: An SMTP reply code followed by an enhanced status code, as remote servers answer:
#: ``550 5.1.1 <x@example.net>: Recipient address rejected``; ``550-5.1.1`` too.
_REPLY_WITH_STATUS = re.compile(r"(?<![\w.])[245]\d\d[ -]([245]\.\d{1,3}\.\d{1,3})(?![\w.])")

#: The code and status that open each line of a (multi-line) SMTP reply: ``550-5.1.1 ``.
_REPLY_PREFIX = re.compile(r"([245]\d\d)[ -](?:([245]\.\d{1,3}\.\d{1,3}) +)?")

#: A line that starts with a bare 4xx/5xx SMTP reply: a diagnostic without a status.
_REPLY_LINE = re.compile(r"^\s*[45]\d\d[ -]\S")

#: Where a non-MIME bounce starts quoting the original (Exim, qmail, Sendmail, Google,
#: Exchange): text after it is our own mail, not the remote server's words. Every
#: repetition is followed by a literal, so a line of 60,000 dashes costs linear time.
_ORIGINAL_MARKER = re.compile(
    r"^[ \t>]*(?:-{2,}[ \t]*(?:this is a copy of|below this line is a copy|original message"
    r"|returned message|the header of the original|start of returned message"
    r"|(?:the )?(?:returned |original |undelivered )?(?:mail|message) follows)"
    r"|original message (?:headers|follows))",
    re.IGNORECASE | re.MULTILINE,
)

#: Header fields that only auto-responders set, with values that say "yes".
_AUTO_REPLY_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-autogenerated")

#: Precedence values that mark an auto-reply (a non-standard but common field).
_AUTO_REPLY_PRECEDENCE = frozenset({"auto_reply", "auto-reply"})

#: Subjects of absence notices in the languages our readers use, and a few more.
_AUTO_REPLY_SUBJECT = re.compile(
    r"out of (?:the )?office|abwesenheitsnotiz|abwesenheit|automatische antwort"
    r"|automatic reply|auto[- ]?reply|auto[- ]?response|autoantwort|r[ée]ponse automatique"
    r"|respuesta autom[aá]tica|risposta automatica|automatisch antwoord|^\s*auto:",
    re.IGNORECASE,
)

#: Header fields only delivery reports carry (Exim's and Google's list of failed
#: addresses, Exchange's non-delivery mark, which has no value).
_BOUNCE_HEADERS = frozenset({"x-failed-recipients", "x-ms-exchange-message-is-ndr"})

#: Senders of delivery reports: an auto-reply check must not swallow their bounces.
_BOUNCE_SENDER = re.compile(
    r"^(?:mailer-daemon|mail-daemon|mailerdaemon|postmaster|mdaemon|mail-delivery"
    r"|mail\.delivery|maildelivery|bounces?)@",
    re.IGNORECASE,
)

#: Subjects of delivery reports (English and German MTAs, Exchange, Google).
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery status notification|delivery (?:has )?fail"
    r"|failure notice|returned mail|mail delivery failed|could ?n[o']t be delivered"
    r"|not (?:be )?delivered|unzustellbar|nicht zustellbar|zustellung fehlgeschlagen",
    re.IGNORECASE,
)

#: Whitespace runs, made single spaces: unfolds headers and joins wrapped text.
_WHITESPACE = re.compile(r"\s+")

#: An address as reports give it: no white space, no angle brackets, one at-sign.
_ADDRESS = re.compile(r"[^\s<>@\x00-\x1f\x7f]{1,64}@[^\s<>@\x00-\x1f\x7f]{1,255}")

#: A message ID in angle brackets, wherever it stands in a header value: printable
#: ASCII (RFC 5322 3.6.4), so no control character reaches a log or a page.
_BRACKETED_ID = re.compile(rf"<([\x21-\x3b\x3d\x3f-\x7e]{{1,{_MAX_ID_CHARS}}})>")

#: A message ID given without brackets (Mailgun's, some MTAs').
_BARE_ID = re.compile(rf"[\x21-\x3b\x3d\x3f-\x7e]{{1,{_MAX_ID_CHARS}}}")

#: Address types of DSN recipient fields whose value is a mail address (RFC 3464, 6533).
_ADDRESS_TYPES = frozenset({"rfc822", "utf-8"})


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


class _BoundedPolicy(email.policy.Compat32):
    """compat32, with each header value cut to :data:`MAX_HEADER_CHARS` as it is parsed.

    compat32 gives the classic Message API flufl.bounce expects, and its address and
    header code has none of the modern header parser's super-linear corner cases.
    """

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        """The parsed header, its value cut (see the class)."""
        name, value = super().header_source_parse(sourcelines)
        return name, value[:MAX_HEADER_CHARS]


class _BoundedMessage(Message):
    """A Message that keeps only its first :data:`MAX_HEADERS` header fields and, as a
    multipart, its first :data:`MAX_PARTS` parts (flufl.bounce's detectors walk every
    part of the message, each of them again)."""

    def set_raw(self, name: str, value: str) -> None:
        """Store the header unless the message already holds enough (the parser's hook)."""
        if len(self) < MAX_HEADERS:
            super().set_raw(name, value)

    def attach(self, payload: Message) -> None:  # type: ignore[override]
        """Add a part unless the multipart already holds enough (the parser's hook)."""
        parts = self.get_payload()
        if not isinstance(parts, list) or len(parts) < MAX_PARTS:
            super().attach(payload)


#: The parser for whole messages and for header blocks on their own.
_POLICY = _BoundedPolicy()
_PARSER = BytesParser(_BoundedMessage, policy=_POLICY)
_HEADER_PARSER = HeaderParser(_BoundedMessage, policy=_POLICY)


@dataclass(frozen=True)
class _Failure:
    """One recipient's failure in a report, before the report's kind is decided."""

    address: str | None
    status: str | None
    diagnostic: str | None


# --- public API ----------------------------------------------------------------------


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


def diagnostic_text(text: str) -> str | None:
    """A server's reply as one line of at most :data:`MAX_DIAGNOSTIC_CHARS` characters.

    White space is collapsed and control characters dropped. A multi-line SMTP reply
    (``550-5.1.1 The email account ... 550-5.1.1 double-checking ... 550 5.1.1 ...``)
    keeps its code and status once, in front: the repeats only mark its line breaks.
    Shared with :mod:`shared.mail.webhooks`, which reads relays' copies of such replies.
    """
    line = _one_line(text, MAX_DIAGNOSTIC_CHARS * 4)
    if line is None:
        return None
    prefix = _REPLY_PREFIX.match(line)
    if prefix is not None and prefix[2]:
        code, status = prefix[1], prefix[2]
        repeats = re.compile(rf"(?<= ){code}[ -]{re.escape(status)}(?: |$)")
        line = f"{code} {status} " + repeats.sub("", line[prefix.end() :])
        line = _WHITESPACE.sub(" ", line).strip()
    return line[:MAX_DIAGNOSTIC_CHARS].rstrip() or None


def enhanced_status(text: str) -> str | None:
    """The first RFC 3463 status code (``5.1.1``) in ``text``, or None."""
    found = _STATUS.search(text[:_MAX_ADDRESS_HEADER_CHARS])
    if found is None:
        return None
    return ".".join(str(int(group)) for group in found.groups())


def bounce_kind(status: str | None) -> ReportKind | None:
    """The kind of failure a status code means: SOFT_BOUNCE for 4.x.x, for 5.2.2
    (mailbox full: the address exists and may take mail again) and for 5.7.x (refused by
    policy: our server on a block list, the content; not a sign the address is gone, so
    one block-listing cannot end thousands of subscriptions, while repeats still stop
    the mail), HARD_BOUNCE for any other 5.x.x, None for success or no status."""
    if status is None or not status.startswith(("4.", "5.")):
        return None
    if status.startswith(("4.", "5.7.")) or status == "5.2.2":
        return ReportKind.SOFT_BOUNCE
    return ReportKind.HARD_BOUNCE


# --- reading -------------------------------------------------------------------------


def _parse(raw: bytes) -> Message:
    return _PARSER.parsebytes(bytes(raw[:MAX_REPORT_BYTES]))


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


def _status_blocks(part: Message) -> list[Message]:
    """The header blocks of a delivery-status (or feedback-report) part.

    The standard library splits ``message/delivery-status`` into one Message per
    block; ``message/global-delivery-status`` it reads like an attached message, the
    first block as headers and the rest as its body, which is split here the same way
    (as is a part it left as text, e.g. one with a transfer encoding).
    """
    blocks: list[Message] = []
    pending = [part]
    while pending:
        current = pending.pop(0)
        payload = current.get_payload()
        if isinstance(payload, list):
            for block in payload:
                if isinstance(block, Message):
                    blocks.append(block)
                    body = block.get_payload()
                    if isinstance(body, str) and body.strip():
                        pending.append(block)
            continue
        for text in re.split(r"\r?\n[ \t]*\r?\n", _raw_text(current)):
            if text.strip():
                blocks.append(_HEADER_PARSER.parsestr(text))
    return blocks


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


def _read_auto_reply(message: Message) -> DeliveryReport:
    sender = _from_address(message)
    message_id, return_path = _original_ids(message)
    in_reply_to = _message_id(_header(message, "in-reply-to"))
    return DeliveryReport(
        ReportKind.AUTO_REPLY,
        (sender.lower(),) if sender else (),
        original_message_id=in_reply_to or message_id,
        original_return_path=return_path,
        source="autoreply",
    )


def _is_auto_reply(message: Message) -> bool:
    """Whether the message is an automatic answer to our mail rather than a bounce.

    Fields only auto-responders set decide at once. Otherwise a message that looks like
    a delivery report (a mailer daemon's, an ``X-Failed-Recipients`` field, a bounce
    subject) is not one: MTAs mark their bounces ``Auto-Submitted: auto-replied`` too.
    For the rest an absence subject or any ``Auto-Submitted`` but ``no`` (RFC 3834)
    makes it an auto-reply.
    """
    for name in _AUTO_REPLY_HEADERS:
        value = _header(message, name).strip().lower()
        if value and value not in ("no", "false", "0"):
            return True
    precedence = {_header(message, n).strip().lower() for n in ("precedence", "x-precedence")}
    if precedence & _AUTO_REPLY_PRECEDENCE:
        return True
    subject = _decoded(_header(message, "subject"))[:_MAX_ADDRESS_HEADER_CHARS]
    sender = _from_address(message) or ""
    if (
        any(name.lower() in _BOUNCE_HEADERS for name in message)
        or _BOUNCE_SENDER.match(sender)
        or _BOUNCE_SUBJECT.search(subject)
    ):
        return False
    if _AUTO_REPLY_SUBJECT.search(subject):
        return True
    auto_submitted = _header(message, "auto-submitted").strip().lower()
    return bool(auto_submitted) and not auto_submitted.startswith("no")


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


# --- the quoted original -------------------------------------------------------------


def _original_ids(message: Message) -> tuple[str | None, str | None]:
    """Message-ID and Return-Path of our original, attached or quoted in the text."""
    original = _original_headers(message)
    if original is None:
        original = _inline_original(message)
    return _ids_of(original)


def _ids_of(original: Message | None) -> tuple[str | None, str | None]:
    if original is None:
        return None, None
    return (
        _message_id(_header(original, "message-id")),
        _return_path(_header(original, "return-path") or None),
    )


def _original_headers(message: Message) -> Message | None:
    """The headers of the attached original: a message/rfc822 or text/rfc822-headers part."""
    for part in _parts(message):
        if part is message or part.get_content_type() not in _ORIGINAL_TYPES:
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            if payload and isinstance(payload[0], Message):
                return payload[0]
            continue
        return _HEADER_PARSER.parsestr(_raw_text(part).lstrip())
    return None


def _inline_original(message: Message) -> Message | None:
    """The original's headers as a non-MIME bounce quotes them after a marker line."""
    text = _notification_text(message, cut_at_original=False)
    marker = _ORIGINAL_MARKER.search(text)
    if marker is None:
        return None
    rest = text[marker.end() :].split("\n", 1)
    if len(rest) < 2:
        return None
    return _HEADER_PARSER.parsestr(rest[1].lstrip("\r\n"))


# --- the notification text -----------------------------------------------------------


def _diagnostic_from_text(message: Message) -> tuple[str | None, str | None]:
    """Status and diagnostic from the human-readable part of a bounce.

    The first line holding an SMTP reply with an enhanced status code
    (``550 5.1.1 <x@example.net>: User unknown``) gives both, taken from the reply code
    on; failing that, the first line that starts with a 4xx/5xx reply gives the text.
    Only the text before the quoted original is searched: after it stands our own mail.
    """
    text = _notification_text(message, cut_at_original=True)
    fallback: str | None = None
    for line in text.splitlines():
        found = _REPLY_WITH_STATUS.search(line)
        if found is not None:
            start = found.start()
            return found[1], diagnostic_text(line[start:])
        if fallback is None and _REPLY_LINE.match(line):
            fallback = diagnostic_text(line)
    return None, fallback


def _notification_text(message: Message, *, cut_at_original: bool) -> str:
    """The decoded text of the message's own text/plain parts (not of attachments)."""
    texts: list[str] = []
    size = 0
    for part in _parts(message):
        if part.get_content_type() != "text/plain" or part.get_filename():
            continue
        text = _part_text(part)
        texts.append(text)
        size += len(text)
        if size >= MAX_TEXT_CHARS:
            break
    text = "\n".join(texts)[:MAX_TEXT_CHARS].replace("\r\n", "\n")
    if cut_at_original and (marker := _ORIGINAL_MARKER.search(text)):
        text = text[: marker.start()]
    return text


def _part_text(part: Message) -> str:
    """A leaf part's payload, transfer-decoded and decoded with its charset."""
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, "replace")
    except (LookupError, UnicodeError):  # unknown or broken charset names
        return data.decode("utf-8", "replace")


def _raw_text(part: Message) -> str:
    """A leaf part's payload, transfer-decoded, its bytes kept as surrogate escapes (as
    the parser keeps them in header values) for :func:`_from_surrogates` to decode."""
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return data.decode("utf-8", "surrogateescape")
    payload = part.get_payload()
    return payload if isinstance(payload, str) else ""


def _parts(message: Message) -> Iterator[Message]:
    """The message and its MIME parts, depth first, at most :data:`MAX_PARTS`.

    Only multiparts are entered: an attached message's own parts (a quoted original, a
    forwarded bounce) are not part of this report. Iterative, so deep nesting cannot
    exhaust the stack.
    """
    stack = [message]
    seen = 0
    while stack and seen < MAX_PARTS:
        part = stack.pop()
        seen += 1
        yield part
        if part.get_content_maintype() == "multipart":
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(reversed([p for p in payload if isinstance(p, Message)]))


# --- fields --------------------------------------------------------------------------


def _headers(message: Message, name: str) -> list[str]:
    """Every value of header ``name`` as text, the raw bytes decoded as UTF-8 (cp1252
    when they are not UTF-8), unfolded only by the caller."""
    # raw_items: compat32's get() turns 8-bit values into Header objects whose str()
    # has lost the bytes; the raw value still holds them (as surrogate escapes).
    return [_from_surrogates(v) for k, v in message.raw_items() if k.lower() == name]


def _header(message: Message, name: str) -> str:
    """The first value of header ``name`` (lower-case) as text, "" when absent."""
    for key, value in message.raw_items():
        if key.lower() == name:
            return _from_surrogates(value)
    return ""


def _from_surrogates(value: object) -> str:
    text = str(value)
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # lone surrogates that are no escaped bytes
        return text.encode("utf-8", "replace").decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _decoded(value: str) -> str:
    """A header value with its RFC 2047 encoded words decoded, as well as that goes."""
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # broken encoded words, unknown charsets: the raw text will do
        return value


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


def _address(value: str) -> str | None:
    """A reported address, stripped of white space and angle brackets, lower-cased;
    None unless it looks like an address."""
    candidate = value.strip().strip("<>").strip()
    if _is_address(candidate):
        return candidate.lower()
    return None


def _is_address(candidate: str) -> bool:
    # isprintable: no control or format characters (bidi overrides) in what is shown.
    return bool(_ADDRESS.fullmatch(candidate)) and candidate.isprintable()


def _header_addresses(value: str) -> list[str]:
    """The addresses of an address-list header (To, Original-Rcpt-To)."""
    pairs = getaddresses([_WHITESPACE.sub(" ", value[:_MAX_ADDRESS_HEADER_CHARS])])
    return [a for _, raw in pairs if (a := _address(raw))]


def _from_address(message: Message) -> str | None:
    """The first address of From, as written (not lower-cased)."""
    for _, raw in getaddresses([_header(message, "from")[:_MAX_ADDRESS_HEADER_CHARS]]):
        candidate = raw.strip()
        if _is_address(candidate):
            return candidate
    return None


def _message_id(value: str | None) -> str | None:
    """A message ID with angle brackets, from a header value that holds one."""
    if not value:
        return None
    value = value[: _MAX_ID_CHARS * 2]
    found = _BRACKETED_ID.search(value)
    if found is not None:
        return f"<{found[1]}>"
    bare = value.strip()
    return f"<{bare}>" if "@" in bare and _BARE_ID.fullmatch(bare) else None


def _return_path(value: str | None) -> str | None:
    """The address of a Return-Path (``<x@y>``); None for the null path ``<>``."""
    if not value:
        return None
    value = value[:_MAX_ADDRESS_HEADER_CHARS].strip()
    found = re.search(r"<([^<>]*)>", value)
    candidate = (found[1] if found else value).strip()
    # Kept as written: the VERP tag is ours to check, case and all.
    return candidate if _is_address(candidate) else None


def _one_line(text: str, limit: int) -> str | None:
    """``text`` as one line without control characters, at most ``limit`` characters."""
    # Cut before the work: a hostile field may be megabytes; collapsing runs of white
    # space can shrink it, so keep a margin.
    line = _WHITESPACE.sub(" ", text[: limit * 8])
    line = "".join(ch for ch in line if ch == " " or ch.isprintable()).strip()
    return line[:limit].rstrip() or None


def _recipients(addresses: Iterable[str | None]) -> tuple[str, ...]:
    """Distinct addresses in their order, lower-cased, at most :data:`MAX_RECIPIENTS`."""
    found: dict[str, None] = {}
    for address in addresses:
        if address and (normal := _address(address)):
            found.setdefault(normal)
            if len(found) >= MAX_RECIPIENTS:
                break
    return tuple(found)
