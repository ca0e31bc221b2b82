"""What a series, an event and a registration are made of, and how each is read from a
form: one set of rules for the admin, the public form and the tests.

Times are typed as local wall-clock times (``<input type="datetime-local">``) in the
event's time zone and stored as UTC; the zone is kept beside them so every page, mail and
invitation shows the time where the event happens, daylight saving time included.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from shared.addresses import InvalidInput, clean_name, parse_address, parse_language
from shared.sanitize import rich_text, web_address, writable
from shared.web.forms import MAX_ROW_ID, number_up_to

#: How an event takes place.
ONLINE, ON_SITE = "online", "on_site"
MODES = (ONLINE, ON_SITE)

#: The zone a new event gets (the network is German).
DEFAULT_TIMEZONE = "Europe/Berlin"

#: Longest texts kept (the columns' sizes).
MAX_TITLE, MAX_SUMMARY, MAX_PLACE, MAX_LINK, MAX_ORGANISATION = 200, 500, 300, 1000, 200

#: Largest capacity accepted: a typing error beyond, and no online room holds more.
MAX_CAPACITY = 100_000

#: Years an event may lie in: the time zone rules icalendar writes into invitations
#: (VTIMEZONE) reach to 2037; a date beyond would be an hour off in some calendars.
YEARS = (2000, 2037)

#: Longest event accepted (a conference of several days, not a typing error of a year).
MAX_DURATION = timedelta(days=14)

_SLUG = re.compile(r"[^a-z0-9]+")

#: What a series' address looks like (what :func:`slug_of` makes, a counter added).
SLUG_SHAPE = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")


class InvalidEvent(InvalidInput):
    """A field of a series or an event cannot be read; the message says why (shown to the
    editor, translated)."""


def _text(raw: Mapping[str, str], name: str, limit: int, required: str | None = None) -> str:
    text = " ".join(writable(raw.get(name) or "").split())
    if required and not text:
        raise InvalidEvent(name, required)
    if len(text) > limit:
        raise InvalidEvent(name, "This text is too long.")
    return text


def slug_of(title: str) -> str:
    """The address part of a series from its title (``Kommunale Jugendarbeit 2027`` →
    ``kommunale-jugendarbeit-2027``); umlauts spelt out as Germans do."""
    spelt = title.lower().translate(str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"}))
    return _SLUG.sub("-", spelt).strip("-")[:80] or "reihe"


@dataclass(frozen=True)
class SeriesFields:
    """A series as an editor writes it."""

    title: str
    summary: str
    description: str
    language: str = "de"


def parse_series(raw: Mapping[str, str]) -> SeriesFields:
    """A series from the admin form; InvalidEvent names the field."""
    return SeriesFields(
        title=_text(raw, "title", MAX_TITLE, "The series needs a title."),
        summary=_text(raw, "summary", MAX_SUMMARY),
        description=rich_text(raw.get("description") or ""),
        language=parse_language(raw.get("language") or "de"),
    )


@dataclass(frozen=True)
class EventFields:
    """One date of a series as an editor writes it; times are UTC-aware."""

    title: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    mode: str
    place: str
    link: str | None
    capacity: int | None
    registration_deadline: datetime | None

    @property
    def deadline(self) -> datetime:
        """When registration closes: the deadline set, else the start."""
        return self.registration_deadline or self.starts_at


def timezone_of(raw: str | None) -> ZoneInfo:
    """The IANA zone named ``raw`` (InvalidEvent for an unknown one)."""
    name = (raw or DEFAULT_TIMEZONE).strip()
    if name not in available_timezones():
        raise InvalidEvent("timezone", "Please choose a time zone from the list.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidEvent("timezone", "Please choose a time zone from the list.") from None


def _local_time(
    raw: Mapping[str, str], name: str, zone: ZoneInfo, required: bool
) -> datetime | None:
    text = (raw.get(name) or "").strip()
    if not text:
        if required:
            raise InvalidEvent(name, "Please give a date and time.")
        return None
    try:
        local = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidEvent(name, "Please give a date and time such as 2027-03-18 10:00.") from None
    if local.tzinfo is not None or not YEARS[0] <= local.year <= YEARS[1]:
        raise InvalidEvent(name, "Please give a date and time such as 2027-03-18 10:00.")
    return local.replace(tzinfo=zone).astimezone(ZoneInfo("UTC"))


def parse_event(raw: Mapping[str, str]) -> EventFields:
    """One event from the admin form; InvalidEvent names the field."""
    zone = timezone_of(raw.get("timezone"))
    starts_at = _local_time(raw, "starts_at", zone, True)
    ends_at = _local_time(raw, "ends_at", zone, True)
    assert starts_at is not None and ends_at is not None
    if ends_at <= starts_at:
        raise InvalidEvent("ends_at", "The end lies before the start.")
    if ends_at - starts_at > MAX_DURATION:
        raise InvalidEvent("ends_at", "An event lasts at most 14 days.")
    deadline = _local_time(raw, "registration_deadline", zone, False)
    if deadline is not None and deadline > starts_at:
        raise InvalidEvent("registration_deadline", "Registration must close before the start.")
    mode = raw.get("mode") or ONLINE
    if mode not in MODES:
        raise InvalidEvent("mode", "Please choose online or on site.")
    try:
        link = web_address(raw.get("link") or "", MAX_LINK)
    except ValueError:
        raise InvalidEvent("link", "The link must be an http or https address.") from None
    if mode == ONLINE and link is None:
        raise InvalidEvent("link", "An online event needs the link to its room.")
    place = _text(raw, "place", MAX_PLACE)
    if mode == ON_SITE and not place:
        raise InvalidEvent("place", "An event on site needs its place.")
    capacity_text = (raw.get("capacity") or "").strip()
    capacity = None
    if capacity_text:
        capacity = number_up_to(capacity_text, MAX_CAPACITY)
        if capacity is None:
            raise InvalidEvent("capacity", "The capacity is a whole number of seats, or empty.")
    return EventFields(
        title=_text(raw, "title", MAX_TITLE, "The event needs a title."),
        starts_at=starts_at,
        ends_at=ends_at,
        timezone=zone.key,
        mode=mode,
        place=place,
        link=link,
        capacity=capacity,
        registration_deadline=deadline,
    )


def local_input(moment: datetime | None, zone: str) -> str:
    """A stored time as the form shows it again (``2027-03-18T10:00`` in ``zone``)."""
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M")


@dataclass(frozen=True)
class RegistrationForm:
    """What a person asked for on the registration form, checked."""

    email: str
    email_key: str
    name: str
    organisation: str
    municipality: str
    language: str
    event_ids: tuple[int, ...]
    whole_series: bool


def parse_registration(
    raw: Mapping[str, str], chosen: list[str], open_ids: list[int], language: str
) -> RegistrationForm:
    """The registration form: ``chosen`` are the ticked dates, ``open_ids`` those one may
    still register for; InvalidInput names the field."""
    address = parse_address(raw.get("email"))
    name = clean_name(raw.get("name"))
    if not name:
        raise InvalidInput("name", "Please enter your name.")
    whole = raw.get("whole_series") == "1"
    picked = {number_up_to(value, MAX_ROW_ID) for value in chosen}
    event_ids = tuple(open_ids) if whole else tuple(i for i in open_ids if i in picked)
    if not event_ids:
        raise InvalidInput("dates", "Please choose at least one date.")
    return RegistrationForm(
        email=address.display,
        email_key=address.key,
        name=name,
        organisation=_text(raw, "organisation", MAX_ORGANISATION),
        municipality=_text(raw, "municipality", MAX_ORGANISATION),
        language=parse_language(raw.get("language"), language),
        event_ids=event_ids,
        whole_series=whole,
    )
