"""A server's reply read: its RFC 3463 status code, the kind of bounce that code means,
and the reply itself as one diagnostic line (public: :mod:`shared.mail.webhooks` uses
them on relays' copies of such replies)."""

from __future__ import annotations

import re

from shared.mail.reports.delivery_report import ReportKind
from shared.mail.reports.header_fields import _WHITESPACE
from shared.mail.reports.limits import _MAX_ADDRESS_HEADER_CHARS, MAX_DIAGNOSTIC_CHARS

#: RFC 3463 enhanced status code: class.subject.detail, up to three digits each.
_STATUS = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?![\w.])")

#: An SMTP reply code followed by an enhanced status code, as remote servers answer:
#: ``550 5.1.1 <x@example.net>: Recipient address rejected``; ``550-5.1.1`` too.
_REPLY_WITH_STATUS = re.compile(r"(?<![\w.])[245]\d\d[ -]([245]\.\d{1,3}\.\d{1,3})(?![\w.])")

#: The code and status that open each line of a (multi-line) SMTP reply: ``550-5.1.1 ``.
_REPLY_PREFIX = re.compile(r"([245]\d\d)[ -](?:([245]\.\d{1,3}\.\d{1,3}) +)?")

#: A line that starts with a bare 4xx/5xx SMTP reply: a diagnostic without a status.
_REPLY_LINE = re.compile(r"^\s*[45]\d\d[ -]\S")


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


def _one_line(text: str, limit: int) -> str | None:
    """``text`` as one line without control characters, at most ``limit`` characters."""
    # Cut before the work: a hostile field may be megabytes; collapsing runs of white
    # space can shrink it, so keep a margin.
    line = _WHITESPACE.sub(" ", text[: limit * 8])
    line = "".join(ch for ch in line if ch == " " or ch.isprintable()).strip()
    return line[:limit].rstrip() or None
