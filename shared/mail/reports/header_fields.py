"""Header fields of a report read as text: values, addresses, message IDs, return paths.

Every value comes from hostile input, so each is cut, decoded leniently and checked to
look like what it claims to be before it is kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses

from shared.mail.reports.limits import _MAX_ADDRESS_HEADER_CHARS, _MAX_ID_CHARS, MAX_RECIPIENTS

#: Whitespace runs, made single spaces: unfolds headers and joins wrapped text.
_WHITESPACE = re.compile(r"\s+")

#: An address as reports give it: no white space, no angle brackets, one at-sign.
_ADDRESS = re.compile(r"[^\s<>@\x00-\x1f\x7f]{1,64}@[^\s<>@\x00-\x1f\x7f]{1,255}")

#: A message ID in angle brackets, wherever it stands in a header value: printable
#: ASCII (RFC 5322 3.6.4), so no control character reaches a log or a page.
_BRACKETED_ID = re.compile(rf"<([\x21-\x3b\x3d\x3f-\x7e]{{1,{_MAX_ID_CHARS}}})>")

#: A message ID given without brackets (Mailgun's, some MTAs').
_BARE_ID = re.compile(rf"[\x21-\x3b\x3d\x3f-\x7e]{{1,{_MAX_ID_CHARS}}}")


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


def _recipients(addresses: Iterable[str | None]) -> tuple[str, ...]:
    """Distinct addresses in their order, lower-cased, at most :data:`MAX_RECIPIENTS`."""
    found: dict[str, None] = {}
    for address in addresses:
        if address and (normal := _address(address)):
            found.setdefault(normal)
            if len(found) >= MAX_RECIPIENTS:
                break
    return tuple(found)
