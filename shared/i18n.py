"""German by default, English switchable: language choice and message catalogs.

Messages are written in English in code and templates and looked up in
``shared/locale/<lang>.json``; a missing entry falls back to the English text, so a
forgotten translation shows English rather than breaking a page.
"""

from __future__ import annotations

import json
from datetime import date
from functools import cache
from pathlib import Path

from starlette.requests import HTTPConnection

#: Languages offered, the default first.
LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = LANGUAGES[0]

#: Cookie that remembers a visitor's explicit choice (set by ``?lang=``).
LANGUAGE_COOKIE = "kgi_lang"

_LOCALE_DIR = Path(__file__).resolve().parent / "locale"


@cache
def catalog(language: str) -> dict[str, str]:
    """The translations into ``language`` (empty for English, the source language)."""
    path = _LOCALE_DIR / f"{language}.json"
    return json.loads(path.read_text("utf-8")) if path.exists() else {}


def translate(message: str, language: str) -> str:
    """``message`` in ``language``; the English text when no translation exists."""
    return catalog(language).get(message, message)


def normalise_language(value: str | None) -> str | None:
    """``value`` if it names an offered language, else None."""
    value = (value or "").strip().lower()[:2]
    return value if value in LANGUAGES else None


def request_language(connection: HTTPConnection) -> str:
    """The language for this request: ``?lang=``, then the cookie, then German."""
    return (
        normalise_language(connection.query_params.get("lang"))
        or normalise_language(connection.cookies.get(LANGUAGE_COOKIE))
        or DEFAULT_LANGUAGE
    )


#: How the states of the editorial workflow (items, event series) are called on pages:
#: "pending" alone would read as the sign-ups' "unconfirmed".
WORKFLOW_STATE_LABELS = {
    "draft": "draft",
    "pending": "in review",
    "published": "published",
    "retracted": "retracted",
}

#: Names of months and weekdays by language: written out here rather than taken from
#: the C locale, which a server may not have installed (and ``%B`` reads process-wide).
MONTHS = {
    "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
           "September", "Oktober", "November", "Dezember"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
}  # fmt: skip
WEEKDAYS = {
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}


def month_name(month: int, language: str) -> str:
    """The name of ``month`` (1–12) in ``language``."""
    return MONTHS.get(language, MONTHS["en"])[month - 1]


def long_date(day: date, language: str) -> str:
    """``Donnerstag, 18. März 2027`` / ``Thursday, 18 March 2027``."""
    weekday = WEEKDAYS.get(language, WEEKDAYS["en"])[day.weekday()]
    month = month_name(day.month, language)
    if language == "de":
        return f"{weekday}, {day.day}. {month} {day.year}"
    return f"{weekday}, {day.day} {month} {day.year}"
