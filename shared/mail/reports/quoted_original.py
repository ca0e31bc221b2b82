"""Our mail as a report quotes it: its Message-ID and Return-Path (with our VERP tag),
from an attached original or from headers quoted after a marker line in the text."""

from __future__ import annotations

from email.message import Message

from shared.mail.reports.bounded_mime import _HEADER_PARSER, _parts, _raw_text
from shared.mail.reports.header_fields import _header, _message_id, _return_path
from shared.mail.reports.notification_text import _ORIGINAL_MARKER, _notification_text

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
