"""Parsing a report within the limits, and walking its MIME parts.

A compat32 parser whose messages keep only so many header fields, characters per field
and parts per multipart (see :mod:`shared.mail.reports.limits`), the parts of a message
in order, the text of a leaf part, and the header blocks of a delivery-status part.
"""

from __future__ import annotations

import email.policy
import re
from collections.abc import Iterator
from email.message import Message
from email.parser import BytesParser, HeaderParser

from shared.mail.reports.limits import MAX_HEADER_CHARS, MAX_HEADERS, MAX_PARTS, MAX_REPORT_BYTES


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


def _parse(raw: bytes) -> Message:
    return _PARSER.parsebytes(bytes(raw[:MAX_REPORT_BYTES]))


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
