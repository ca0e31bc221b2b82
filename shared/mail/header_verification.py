"""Checking header lines before they are used: refused characters, the structure of a
folded line as the standard library's parser reads it back, and a strict reader of
RFC 5322 and RFC 2047 for the address lines :mod:`shared.mail.headers` builds.

The strict reader stands in for the library's header object, which is too slow for every
recipient of a mass mail; the property tests check that the two agree.
"""

from __future__ import annotations

import base64
import email.policy
import re
from collections.abc import Callable
from email import quoprimime
from email.headerregistry import BaseHeader
from email.message import EmailMessage
from email.parser import BytesParser

#: RFC 5322 2.1.1: a line must not be longer than 998 octets, CRLF not counted.
MAX_LINE_OCTETS = 998

#: A dot-atom local part at an ASCII (IDNA-encoded) domain: what email-validator returns.
_ADDR_SPEC = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)

#: One token of a display name as _phrase_tokens writes it: an encoded word, a quoted
#: string of printable ASCII, or an atom.
_PHRASE_TOKEN = re.compile(
    r"(=\?[A-Za-z0-9-]+\?[BbQq]\?[\x21-\x3e\x40-\x7e]*\?=)(?= |\Z)"
    r'|("(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*")'
    r"|([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)"
)

#: Characters refused in any header value: the controls (Unicode category Cc) except
#: TAB, lone surrogates (Cs), and the line and paragraph separators (Zl, Zp), which
#: ``str.splitlines`` and some mail programs take for line breaks even when decoded.
#: These categories are fixed sets, so one character class covers them exactly.
REFUSED_CHARACTERS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")

#: A header line folded as RFC 5322 2.2.3 allows: a first line and continuation lines
#: that start with white space and hold something else too, all 7-bit, CRLF only.
_FOLDED_LINE = re.compile(
    r"[\t\x20-\x7e]+(?:\r\n[\t ][\t\x20-\x7e]*[\x21-\x7e][\t\x20-\x7e]*)*\r\n"
)

#: The independent check: the standard library's parser with its modern policy.
_PARSER = BytesParser(policy=email.policy.default)


class UnsafeHeader(ValueError):
    """A header cannot be written so that it parses back to exactly what was meant."""


def _check_text(name: str, value: str) -> None:
    # Refused before encoding: an encoded CR LF would be decoded back by the reader.
    refused = REFUSED_CHARACTERS.search(value)
    if refused:
        raise UnsafeHeader(f"{name}: contains the control character U+{ord(refused[0]):04X}")


def _verify(name: str, line: str, same_value: Callable[[BaseHeader], bool]) -> None:
    """Raise UnsafeHeader unless ``line`` is one clean ``name`` header with the value meant,
    as the standard library's header object reads it."""
    header = _verify_structure(name, line)[name]
    if header.defects or not same_value(header):
        raise UnsafeHeader(f"{name}: parses back to a different value")


def _verify_structure(name: str, line: str) -> EmailMessage:
    """Raise UnsafeHeader unless ``line`` is exactly one ``name`` header of clean lines."""
    if not _FOLDED_LINE.fullmatch(line):
        # 7-bit, no bare CR or LF, no control characters, every continuation line
        # starting with white space and holding more than white space.
        raise UnsafeHeader(f"{name}: not a clean folded header line")
    if len(line) > MAX_LINE_OCTETS and any(
        len(part) > MAX_LINE_OCTETS for part in line.split("\r\n")
    ):
        raise UnsafeHeader(f"{name}: line longer than {MAX_LINE_OCTETS} octets")
    message = _PARSER.parsebytes(line.encode("ascii") + b"\r\n", headersonly=True)
    if message.defects or message.keys() != [name] or message.get_payload():
        raise UnsafeHeader(f"{name}: does not parse back as exactly one header")
    return message


def _read_mailbox(value: str) -> tuple[str, str] | None:
    """(display name, addr-spec) of an unfolded address value, read strictly by RFC 5322
    and RFC 2047; None for anything beyond the atoms, quoted strings and lone encoded
    words :func:`_phrase_tokens` writes."""
    if not value.startswith(" "):
        return None
    value = value[1:]
    if not value.endswith(">"):
        return ("", value) if _ADDR_SPEC.fullmatch(value) and "=?" not in value else None
    phrase, separator, addr_spec = value[:-1].rpartition(" <")
    if not separator or not _ADDR_SPEC.fullmatch(addr_spec) or "=?" in addr_spec:
        return None
    words: list[str] = []
    position, previous_encoded = 0, False
    while True:
        token = _PHRASE_TOKEN.match(phrase, position)
        if token is None:
            return None
        encoded, quoted, atom = token.groups()
        if encoded is not None:
            if previous_encoded:  # readers disagree about the space between the two
                return None
            word = _decode_word(encoded)
            if word is None:
                return None
        elif quoted is not None:
            word = re.sub(r"\\(.)", r"\1", quoted[1:-1])
            if "=?" in word:  # some readers decode encoded words even inside quotes
                return None
        elif "=?" in atom or "?=" in atom:
            return None
        else:
            word = atom
        words.append(word)
        previous_encoded = encoded is not None
        position = token.end()
        if position == len(phrase):
            return " ".join(words), addr_spec
        if phrase[position] != " ":
            return None
        position += 1


def _decode_word(encoded: str) -> str | None:
    """The text of one ``=?utf-8?b|q?...?=`` word, or None when it is not well formed."""
    _, charset, encoding, text, _ = encoded.split("?")
    try:
        if encoding in "bB":
            data = base64.b64decode(text, validate=True)
        else:
            data = quoprimime.header_decode(text).encode("latin-1")
        return data.decode("utf-8") if charset.lower() == "utf-8" else None
    except (ValueError, UnicodeError):
        return None
