"""The human-readable part of a report, and the status and diagnostic found in it."""

from __future__ import annotations

import re
from email.message import Message

from shared.mail.reports.bounded_mime import _part_text, _parts
from shared.mail.reports.limits import MAX_TEXT_CHARS
from shared.mail.reports.smtp_replies import _REPLY_LINE, _REPLY_WITH_STATUS, diagnostic_text

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
