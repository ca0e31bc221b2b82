"""Checking what people type: e-mail addresses, names, languages.

email-validator does the RFC 5321/5322 syntax and IDNA work; this module adds the
limits and the identity used for de-duplication.
"""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from shared.i18n import normalise_language

#: RFC 5321 limit for a forward path.
MAX_EMAIL_LENGTH = 254

#: Longest display name accepted; longer is a paste accident or an attack.
MAX_NAME_LENGTH = 200


class InvalidInput(ValueError):
    """What the person typed cannot be used; the message says why, in English."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


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
    """A display name without control characters; raises InvalidInput when unusable."""
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise InvalidInput("name", "The name must be text.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        raise InvalidInput("name", "The name contains line breaks or control characters.")
    name = " ".join(raw.split())
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput("name", "The name is too long.")
    return name


def parse_language(raw: object, default: str = "de") -> str:
    """``de`` or ``en``; empty means ``default``; anything else is refused."""
    if raw in (None, ""):
        return default
    language = normalise_language(raw) if isinstance(raw, str) and len(raw) <= 5 else None
    if language is None:
        raise InvalidInput("language", "The language must be de or en.")
    return language
