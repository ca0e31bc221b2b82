"""Every header line of every mail, built in one place and checked before it is used.

:func:`header_line` turns a name and a value (text, an address with display name, or one
of the ASCII tokens the mail system writes itself) into one folded, 7-bit line ending in
CRLF. RFC 2047 encoded words are used only where the value needs them, and never inside
a URI or a message ID. It then parses its own output back with the standard library's
parser and raises :class:`UnsafeHeader` unless that gives exactly one header of that name
and no defects, and the value read back is the one meant: for text as the library's
header object reads it, for addresses as a strict reader of RFC 5322 and RFC 2047 reads
it (the library's address parser is too slow for every recipient of a mass mail; the
property tests check that the two agree). Verbatim tokens are checked against strict
patterns instead. Whatever goes wrong in the encoding, no input can add a header or a
body part.

The encoding is our own rather than the policy's folder: Python 3.11.7's folder emits a
decoded CR LF from a display name (CVE-2024-6923), and ``email.header.Header.encode``
folds with a bare LF by default.

The checks (refused characters, the parse back, the strict reader of address lines)
are in :mod:`shared.mail.header_verification`; this module builds the lines.
"""

from __future__ import annotations

import email.errors
import email.policy
import logging
import re
from email import base64mime, quoprimime
from email.header import Header
from email.headerregistry import Address
from functools import lru_cache

from shared.mail.header_verification import (
    _ADDR_SPEC,
    MAX_LINE_OCTETS,
    REFUSED_CHARACTERS,
    UnsafeHeader,
    _check_text,
    _read_mailbox,
    _verify,
    _verify_structure,
)

__all__ = [
    "ADDRESS_HEADERS",
    "FOLD_AT",
    "MAX_LINE_OCTETS",
    "REFUSED_CHARACTERS",
    "HeaderValue",
    "UnsafeHeader",
    "header_line",
    "parse_mailbox",
    "recipient_line",
]

logger = logging.getLogger(__name__)

#: RFC 5322 2.1.1: lines should be at most 78 characters, CRLF not counted.
FOLD_AT = 78

#: Headers whose value is an ASCII token we produce ourselves, emitted verbatim once it
#: matches the pattern: dates, message IDs, MIME parameters, the one-click URI.
_PRINTABLE_WORDS = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
_VERBATIM: dict[str, re.Pattern[str]] = {
    "date": _PRINTABLE_WORDS,
    "mime-version": re.compile(r"1\.0"),
    "content-type": _PRINTABLE_WORDS,
    "content-transfer-encoding": re.compile(r"[A-Za-z0-9-]+"),
    # RFC 5322 msg-id: no white space, no angle brackets inside.
    "message-id": re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>"),
    # RFC 2369 / 8058: an optional mailto: URI (no comma, so it cannot hold a second one)
    # and one http(s) URI, each in angle brackets; nothing that could end one early.
    "list-unsubscribe": re.compile(
        r"(?:<mailto:[\x21-\x2b\x2d-\x3b\x3d\x3f-\x7e]+>, )?<https?:[\x21-\x3b\x3d\x3f-\x7e]+>"
    ),
    # RFC 3834: what we send is generated, never a reply to a mail.
    "auto-submitted": re.compile(r"auto-generated"),
    # Gmail's feedback loop: colon-separated identifiers, the sender's own last.
    "feedback-id": re.compile(r"[A-Za-z0-9._-]+(?::[A-Za-z0-9._-]+){1,3}"),
    "list-unsubscribe-post": re.compile(r"List-Unsubscribe=One-Click"),
}

#: Headers that hold addresses; their value must be an :class:`Address`, never text.
ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc", "reply-to", "sender"})

#: RFC 5322 field-name, narrowed to what mail headers actually use.
_FIELD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")

#: RFC 5322 atext: a word that can stand in a display name without quotes or encoding.
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")

#: List-Id (RFC 2919): an optional phrase and the list's identifier in angle brackets.
_LIST_ID = re.compile(r"(?:(.*\S) )?(<[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+>)", re.S)

#: Printable ASCII and TAB, not beginning or ending with white space.
_PLAIN_TEXT = re.compile(r"[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?")


HeaderValue = str | Address


def header_line(name: str, value: HeaderValue) -> str:
    """``Name: value`` folded with CRLF + space, ending in CRLF, ASCII only, verified.

    ``value`` is an :class:`Address` for the address headers (From, To, Reply-To, ...),
    an ASCII token for the headers in ``_VERBATIM`` (emitted unchanged after matching
    its pattern), and otherwise text, RFC 2047-encoded when it is not plain ASCII.
    Raises UnsafeHeader when the value cannot be written or does not parse back the same.
    """
    if not _FIELD_NAME.fullmatch(name):
        raise UnsafeHeader(f"not a header name: {name!r}")
    key = name.lower()
    if isinstance(value, Address):
        if key not in ADDRESS_HEADERS:
            raise UnsafeHeader(f"{name} does not hold an address")
        return _address_line(name, value)
    if not isinstance(value, str):
        raise UnsafeHeader(f"{name}: a header value must be text, not {type(value).__name__}")
    if key in ADDRESS_HEADERS:
        raise UnsafeHeader(f"{name} needs an Address, not text")
    if key in _VERBATIM:
        return _verbatim_line(name, value, _VERBATIM[key])
    _check_text(name, value)
    line = _list_id_line(name, value) if key == "list-id" else _text_line(name, value)
    _verify(name, line, lambda header: str(header) == value)
    return line


def recipient_line(username: str, domain: str, display_name: str = "") -> str:
    """The To line for one recipient, through :func:`header_line`.

    A stored display name that cannot be written safely (one saved before clean_name
    refused control characters) is left out, with a warning, so the mail still goes out
    to the bare address instead of failing on every attempt. A bad address still raises.
    """
    try:
        return header_line("To", Address(display_name, username, domain))
    except ValueError as exc:  # UnsafeHeader, or Address() refusing CR or LF
        if not display_name:
            raise
        logger.warning("display name of %s@%s left out: %s", username, domain, exc)
        return header_line("To", Address("", username, domain))


@lru_cache(maxsize=32)
def parse_mailbox(raw: str) -> Address:
    """One mailbox from configuration (``Name <addr>`` or ``addr``) as an Address.

    Raises UnsafeHeader unless ``raw`` is exactly one mailbox without parse defects
    whose decoded display name is fit for a header; its white space is made single
    spaces between words. Cached: the same few configured addresses serve every mail.
    """
    _check_text("address", raw)
    try:
        parsed = email.policy.default.header_factory("From", raw)
    except (ValueError, email.errors.MessageError) as exc:
        # e.g. an encoded word that decodes to CR LF: Address() refuses it.
        raise UnsafeHeader(f"not a usable mailbox: {raw!r}") from exc
    if parsed.defects or len(parsed.groups) != 1 or len(parsed.addresses) != 1:
        raise UnsafeHeader(f"not exactly one mailbox: {raw!r}")
    address = parsed.addresses[0]
    # The parser decodes encoded words: check what they decoded to as well.
    _check_text("address", address.display_name)
    # Only single spaces between words survive encoding (see _single_spaced); they are
    # all the white space a name needs, so a configured name is taken that way.
    return Address(" ".join(address.display_name.split()), address.username, address.domain)


def _verbatim_line(name: str, value: str, pattern: re.Pattern[str]) -> str:
    # The pattern admits printable ASCII and single spaces only, so the line is one
    # header that every parser reads the same; "=?" is refused so nothing gets decoded.
    if not pattern.fullmatch(value) or "=?" in value:
        raise UnsafeHeader(f"{name}: not a valid value: {value!r}")
    line = f"{name}: {value}"
    if len(line) > MAX_LINE_OCTETS:
        raise UnsafeHeader(f"{name}: longer than {MAX_LINE_OCTETS} octets")
    return line + "\r\n"


def _text_line(name: str, value: str) -> str:
    if _is_plain(value):
        line = _fold(name, value.split(" "))
        if line is not None:
            return line
    # One UTF-8 encoding of the whole value, cut into encoded words of at most 75
    # characters; the white space between them is not part of the text (RFC 2047 6.2).
    encoded = Header(value, "utf-8", maxlinelen=FOLD_AT, header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n"


def _is_plain(value: str) -> bool:
    # Printable ASCII that no decoder would change: no encoded-word markers, no leading
    # white space (the parser drops it) and no trailing white space (relays may drop it).
    return not value or (
        _PLAIN_TEXT.fullmatch(value) is not None and "=?" not in value and "?=" not in value
    )


def _list_id_line(name: str, value: str) -> str:
    if _is_plain(value):
        return _text_line(name, value)
    match = _LIST_ID.fullmatch(value)
    if match is None:
        raise UnsafeHeader(f"{name}: expected 'Name <list.id>', not {value!r}")
    phrase, list_id = match.groups()
    if not _single_spaced(phrase or ""):
        raise UnsafeHeader(f"{name}: white space in the name must be single spaces")
    # The identifier stays readable; only the descriptive phrase is encoded.
    line = _fold(name, [*_phrase_tokens(phrase or ""), list_id])
    if line is None:
        raise UnsafeHeader(f"{name}: too long for one header line")
    return line


def _address_line(name: str, address: Address) -> str:
    display_name, addr_spec = address.display_name, address.addr_spec
    if not _ADDR_SPEC.fullmatch(addr_spec) or "=?" in addr_spec or "?=" in addr_spec:
        raise UnsafeHeader(f"{name}: not a plain ASCII address: {addr_spec!r}")
    _check_text(name, display_name)
    if not _single_spaced(display_name):
        raise UnsafeHeader(f"{name}: display name white space must be single spaces")
    tokens = [*_phrase_tokens(display_name), f"<{addr_spec}>"] if display_name else [addr_spec]
    line = _fold(name, tokens)
    if line is None:
        raise UnsafeHeader(f"{name}: display name too long for one header line")
    _verify_structure(name, line)
    # The value is read back by _read_mailbox, not by the parser's header object: that
    # costs 130-240 µs per address, too much for every recipient of a mass mail. The
    # property tests check that the parser reads every such line the same way.
    if _read_mailbox(line[len(name) + 1 :].replace("\r\n", "")) != (display_name, addr_spec):
        raise UnsafeHeader(f"{name}: parses back to a different value")
    return line


def _phrase_tokens(text: str) -> list[str]:
    """A display name (words with single spaces) as tokens to be joined by single spaces,
    where lines may fold."""
    words = text.split(" ")
    if _is_plain(text):
        if all(_ATOM.fullmatch(word) for word in words):
            return words
        # A quoted string keeps specials; folding at its spaces is allowed (RFC 5322
        # 3.2.4) and unfolding gives the same text back.
        quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return quoted.split(" ")
    # Plain words stay readable; each run of words that need encoding becomes ONE
    # encoded word. Two encoded words must never be adjacent in a phrase: RFC 2047 says
    # the space between them vanishes, Python 3.11's parser keeps it, so the two would
    # read different names. A run may therefore exceed 75 characters; clean_name keeps
    # names short enough that it stays within MAX_LINE_OCTETS.
    tokens: list[str] = []
    run: list[str] = []
    for word in [*words, None]:
        if word is not None and not (_ATOM.fullmatch(word) and _is_plain(word)):
            run.append(word)
            continue
        if run:
            tokens.append(_encoded_word(" ".join(run)))
            run = []
        if word is not None:
            tokens.append(word)
    return tokens


def _single_spaced(text: str) -> bool:
    # Python's parser reads the white space in a phrase as one space: a run of spaces or
    # tabs, and any white space character (NBSP, U+3000, ...) after a space inside an
    # encoded word, becomes " "; at the ends it is dropped. Names whose white space is
    # already single spaces between words are the only ones it reads back unchanged, and
    # the only ones clean_name returns.
    return text == " ".join(text.split())


def _encoded_word(text: str) -> str:
    # Both encodings from the standard library; its Q alphabet only uses characters that
    # RFC 2047 5(3) allows in a phrase. The shorter one wins.
    data = text.encode("utf-8")
    return min(
        quoprimime.header_encode(data, "utf-8"), base64mime.header_encode(data, "utf-8"), key=len
    )


def _fold(name: str, tokens: list[str]) -> str | None:
    """``Name: `` and the tokens joined by spaces, lines broken at those spaces.

    None when a line would exceed MAX_LINE_OCTETS. A line is only broken before a
    non-empty token, so no continuation line is white space only.
    """
    lines: list[str] = []
    line = f"{name}:"
    for n, token in enumerate(tokens):
        if n and token and len(line) + 1 + len(token) > FOLD_AT:
            lines.append(line)
            line = " " + token
        else:
            line += " " + token
    lines.append(line)
    if any(len(part) > MAX_LINE_OCTETS for part in lines):
        return None
    return "\r\n".join(lines) + "\r\n"
