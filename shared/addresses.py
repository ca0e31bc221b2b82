"""Checking what people type: e-mail addresses, names, languages.

email-validator does the RFC 5321/5322 syntax and IDNA work; this module adds the
limits and the identity used for de-duplication.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from shared.errors import Invalid
from shared.i18n import normalise_language

#: RFC 5321 limit for a forward path.
MAX_EMAIL_LENGTH = 254

#: Longest display name accepted; longer is a paste accident or an attack.
MAX_NAME_LENGTH = 200

#: Longest display name in UTF-8 octets. 200 four-octet characters in one RFC 2047 encoded
#: word would not fit on one header line (998 octets); 600 octets do, with room to spare.
MAX_NAME_OCTETS = 600

#: Unicode categories a name never needs: controls (Cc), surrogates (Cs, only lone ones
#: reach us), private use (Co), unassigned (Cn, including the non-characters), and the line
#: and paragraph separators (Zl, Zp) that some programs treat as line breaks.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn", "Zl", "Zp"})

#: Format characters (Cf) a name may need: zero-width non-joiner and joiner, used by
#: Persian and Indic scripts and emoji sequences. Every other Cf character (bidi overrides
#: and isolates, soft hyphen, byte order mark, tags) only hides or reorders what is shown.
_ALLOWED_FORMAT = frozenset({"\u200c", "\u200d"})


def _unusable(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category in _REFUSED_CATEGORIES or (category == "Cf" and ch not in _ALLOWED_FORMAT)


def _looks_encoded(name: str) -> bool:
    # RFC 2047 encoded words (=?charset?q?...?=) are decoded by mail programs, and in a
    # display name Python's own mail package turns a decoded CR LF into a real line break
    # (CVE-2024-6923). No one is called "=?" or "?=", so either half is enough, also after
    # NFKC folding (full-width "＝？" becomes "=?"); the check is case-insensitive by nature.
    folded = unicodedata.normalize("NFKC", name)
    return any(marker in text for text in (name, folded) for marker in ("=?", "?="))


class InvalidInput(Invalid, ValueError):
    """What the person typed cannot be used; the message says why, in English."""

    field: str

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field)


@dataclass(frozen=True)
class Address:
    """A valid address: as displayed, as sent (ASCII domain), and its de-duplication key."""

    display: str
    ascii: str
    key: str


def parse_address(raw: object) -> Address:
    """Validate and normalise an address; raises InvalidInput with a clear reason."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("email", "Please enter your e-mail address.")
    value = raw.strip()
    if any(ch in value for ch in "\r\n\x00"):
        raise InvalidInput("email", "The e-mail address contains line breaks.")
    if len(value) > MAX_EMAIL_LENGTH:
        raise InvalidInput("email", "The e-mail address is too long.")
    try:
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        raise InvalidInput("email", "This is not a valid e-mail address.") from None
    ascii_address = checked.ascii_email or checked.normalized
    return Address(display=checked.normalized, ascii=ascii_address, key=ascii_address.lower())


def clean_name(raw: object) -> str:
    """A display name safe for mail headers, with runs of white space made one space.

    Refused with InvalidInput: anything but text, control, format and other unusable
    characters (see ``_REFUSED_CATEGORIES``), RFC 2047 encoded words, and names longer
    than ``MAX_NAME_LENGTH`` characters or ``MAX_NAME_OCTETS`` octets.
    """
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise InvalidInput("name", "The name must be text.")
    if any(_unusable(ch) for ch in raw):
        raise InvalidInput(
            "name", "The name contains line breaks, control characters or invisible characters."
        )
    name = " ".join(raw.split())
    if len(name) > MAX_NAME_LENGTH or len(name.encode("utf-8")) > MAX_NAME_OCTETS:
        raise InvalidInput("name", "The name is too long.")
    if _looks_encoded(name):
        raise InvalidInput("name", "The name must not contain encoded text such as =?utf-8?…?=.")
    return name


def parse_language(raw: object, default: str = "de") -> str:
    """``de`` or ``en``; empty means ``default``; anything else is refused."""
    if raw in (None, ""):
        return default
    language = normalise_language(raw) if isinstance(raw, str) and len(raw) <= 5 else None
    if language is None:
        raise InvalidInput("language", "The language must be de or en.")
    return language
