"""What a member municipality is made of, and how each field is read from a form or a
CSV row: one set of rules for the admin form, the import and the command line.

Office staff type coordinates as they find them (``52,52`` with a German decimal comma,
latitude and longitude swapped), federal states as names or abbreviations: the rules
accept what is meant and refuse, with a message naming the field, what cannot be meant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from shared.addresses import InvalidInput, parse_address
from shared.sanitize import web_address, writable

#: The sixteen federal states by their ISO 3166-2:DE code (without ``DE-``): German name.
FEDERAL_STATES = {
    "BW": "Baden-Württemberg",
    "BY": "Bayern",
    "BE": "Berlin",
    "BB": "Brandenburg",
    "HB": "Bremen",
    "HH": "Hamburg",
    "HE": "Hessen",
    "MV": "Mecklenburg-Vorpommern",
    "NI": "Niedersachsen",
    "NW": "Nordrhein-Westfalen",
    "RP": "Rheinland-Pfalz",
    "SL": "Saarland",
    "SN": "Sachsen",
    "ST": "Sachsen-Anhalt",
    "SH": "Schleswig-Holstein",
    "TH": "Thüringen",
}

#: English names where they differ (the pages show these in English).
ENGLISH_STATE_NAMES = {
    "BY": "Bavaria",
    "HE": "Hesse",
    "MV": "Mecklenburg-Western Pomerania",
    "NI": "Lower Saxony",
    "NW": "North Rhine-Westphalia",
    "RP": "Rhineland-Palatinate",
    "SN": "Saxony",
    "ST": "Saxony-Anhalt",
    "TH": "Thuringia",
}

#: Germany's extent with a margin (degrees): a point outside is a typing error, and the
#: two swapped (a latitude of 9, a longitude of 50) are said to be swapped.
LATITUDES = (47.0, 55.2)
LONGITUDES = (5.5, 15.5)

#: Longest name, contact and link kept (the columns' sizes).
MAX_NAME = 200
MAX_CONTACT = 300
MAX_WEBSITE = 1000

#: The fields of a member, in the order forms, imports and exports use.
FIELDS = ("name", "federal_state", "latitude", "longitude", "contact", "email", "website")


class InvalidMember(ValueError):
    """A field cannot be read; the message says which and why (shown to the editor)."""


@dataclass(frozen=True)
class MemberFields:
    """A member municipality as stored (without its id)."""

    name: str
    federal_state: str
    latitude: float
    longitude: float
    contact: str | None = None
    email: str | None = None
    website: str | None = None


def state_name(code: str, language: str) -> str:
    """The federal state ``code`` named in ``language``."""
    if language == "en":
        return ENGLISH_STATE_NAMES.get(code, FEDERAL_STATES.get(code, code))
    return FEDERAL_STATES.get(code, code)


def states_by_name(language: str) -> list[tuple[str, str]]:
    """Every federal state as (code, name in ``language``), in the order of their names:
    the choices of a form."""
    return sorted(
        ((code, state_name(code, language)) for code in FEDERAL_STATES), key=lambda pair: pair[1]
    )


def _state_keys() -> dict[str, str]:
    keys: dict[str, str] = {}
    for code, name in FEDERAL_STATES.items():
        for key in (code, f"DE-{code}", name, ENGLISH_STATE_NAMES.get(code, name)):
            keys[key.casefold()] = code
    return keys


_STATE_KEYS = _state_keys()


def parse_state(raw: str) -> str:
    """A federal state given by code (``BY``, ``DE-BY``) or name, German or English."""
    code = _STATE_KEYS.get(raw.strip().casefold())
    if code is None:
        raise InvalidMember("The federal state is not one of the sixteen (e.g. 'BY' or 'Bayern').")
    return code


def _number(raw: str, message: str) -> float:
    try:
        value = float(raw.strip().replace(",", "."))
    except ValueError:
        raise InvalidMember(message) from None
    if not math.isfinite(value):
        raise InvalidMember(message)
    return value


def parse_coordinates(raw_latitude: str, raw_longitude: str) -> tuple[float, float]:
    """Latitude and longitude in decimal degrees within Germany, rounded to six places
    (10 cm: more would only pretend)."""
    latitude = _number(raw_latitude, "The latitude must be a number of degrees, like 52.52.")
    longitude = _number(raw_longitude, "The longitude must be a number of degrees, like 13.405.")
    inside = (
        LATITUDES[0] <= latitude <= LATITUDES[1] and LONGITUDES[0] <= longitude <= LONGITUDES[1]
    )
    if not inside:
        swapped = (
            LATITUDES[0] <= longitude <= LATITUDES[1] and LONGITUDES[0] <= latitude <= LONGITUDES[1]
        )
        if swapped:
            raise InvalidMember("Latitude and longitude seem swapped (latitude is about 47 to 55).")
        raise InvalidMember("The coordinates lie outside Germany.")
    return round(latitude, 6), round(longitude, 6)


def _website(raw: str) -> str | None:
    try:
        return web_address(raw, MAX_WEBSITE)
    except ValueError:
        raise InvalidMember("The website must be an http or https address.") from None


def _email(raw: str) -> str | None:
    text = raw.strip()
    if not text:
        return None
    try:
        return parse_address(text).display
    except InvalidInput:
        raise InvalidMember("The contact e-mail address is not valid.") from None


def parse_member(raw: Mapping[str, str | None]) -> MemberFields:
    """A member from text fields named as in :data:`FIELDS` (a form, a CSV row)."""

    def text(name: str) -> str:
        return writable(raw.get(name) or "").strip()

    name = " ".join(text("name").split())
    if not name:
        raise InvalidMember("The municipality needs a name.")
    if len(name) > MAX_NAME:
        raise InvalidMember(f"The name is longer than {MAX_NAME} characters.")
    contact = " ".join(text("contact").split())
    if len(contact) > MAX_CONTACT:
        raise InvalidMember(f"The contact is longer than {MAX_CONTACT} characters.")
    latitude, longitude = parse_coordinates(text("latitude"), text("longitude"))
    return MemberFields(
        name=name,
        federal_state=parse_state(text("federal_state")),
        latitude=latitude,
        longitude=longitude,
        contact=contact or None,
        email=_email(text("email")),
        website=_website(text("website")),
    )
