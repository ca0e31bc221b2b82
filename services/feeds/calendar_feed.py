"""The site's calendar (``events.ics``): the conference dates of published reports, and
the dates of the event series, which the events service gives over HTTP.

A series' date has the same UID as the invitation its participants got
(``event-<id>@<host>``), so a calendar program that has both shows it once, and its
SEQUENCE, so a change replaces the entry. The series' dates are asked for at most once a
:data:`SERIES_DATES_FRESH` per process (the rendering is kept that long at the most); if
the events service does not answer, the calendar keeps the dates it last had.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import icalendar

from services.feeds.feed_text import printable
from services.feeds.listing import ItemFilter, public_items, unchanged_until
from services.feeds.store import CONFERENCE_REPORT
from services.feeds.syndication import MEDIA_TYPES, item_url, last_modified
from shared.config import get_settings
from shared.database import utcnow
from shared.i18n import translate
from shared.web.caching import EPOCH, Rendered, weak_etag
from shared.web.paths import path_for

#: How long the calendar is kept before the series' dates are asked for again.
SERIES_DATES_FRESH = timedelta(seconds=60)

#: Seconds to wait for the events service.
EVENTS_TIMEOUT_SECONDS = 5

#: Most series dates in the calendar (the events API's own limit).
SERIES_DATES_LIMIT = 200


@dataclass
class _Fetched:
    """The series' dates of one language as last fetched, and when."""

    dates: list[dict[str, Any]]
    at: float


#: The last good answer per language (None: all), kept for when the events service is
#: slow or away: a calendar app must not see the dates vanish and come back.
_LAST_GOOD: dict[str | None, _Fetched] = {}
_FETCHING = threading.Lock()


def forget_series_dates() -> None:
    """Drop the dates kept (the tests start each with nothing known)."""
    _LAST_GOOD.clear()


def _fetch(language: str | None) -> list[dict[str, Any]] | None:
    """The dates from the events service, or None when it did not answer as expected."""
    params = {"limit": str(SERIES_DATES_LIMIT)}
    if language:
        params["lang"] = language
    try:
        with httpx.Client(
            base_url=get_settings().events_url, timeout=EVENTS_TIMEOUT_SECONDS, trust_env=False
        ) as client:
            response = client.get(path_for("events:api_dates"), params=params)
            response.raise_for_status()
            dates = response.json()["dates"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    return dates if isinstance(dates, list) else None


def series_dates(language: str | None) -> list[dict[str, Any]]:
    """The coming dates of the published series: fetched at most once a
    :data:`SERIES_DATES_FRESH` per process and language, by one thread at a time; the
    others, and every caller while the events service does not answer, get the last good
    answer (empty before the first)."""
    kept = _LAST_GOOD.get(language)
    if kept is not None and time.monotonic() - kept.at < SERIES_DATES_FRESH.total_seconds():
        return kept.dates
    # One fetch at a time; the others do not wait (in a single process the events
    # service answers from the same threadpool they would be blocking).
    if not _FETCHING.acquire(blocking=False):
        return kept.dates if kept else []
    try:
        fetched = _fetch(language)
        if fetched is not None:
            _LAST_GOOD[language] = kept = _Fetched(fetched, time.monotonic())
        return kept.dates if kept else []
    finally:
        _FETCHING.release()


def _series_entry(found: dict[str, Any], host: str) -> icalendar.Event:
    """A series' date from the events API as a VEVENT (KeyError, TypeError, ValueError or
    ZoneInfoNotFoundError when it is not shaped as the API shapes it)."""
    zone = ZoneInfo(found["event"]["timezone"])
    start = datetime.fromisoformat(found["event"]["start"])
    end = datetime.fromisoformat(found["event"]["end"])
    stamp = datetime.fromisoformat(found["updated_at"])
    if start.tzinfo is None or end.tzinfo is None or stamp.tzinfo is None:
        raise ValueError("times without a zone")
    entry = icalendar.Event()
    entry.add("uid", f"event-{int(found['id'])}@{host}")
    entry.add("sequence", int(found["sequence"]))
    entry.add("dtstamp", stamp)
    entry.add("summary", str(found["title"]))
    entry.add("dtstart", start.astimezone(zone))
    entry.add("dtend", end.astimezone(zone))
    entry.add("location", str(found["event"]["location"]))
    if found.get("summary"):
        entry.add("description", str(found["summary"]))
    entry.add("url", str(found["url"]))
    return entry


def render_calendar(selection: ItemFilter) -> Rendered:
    """Conference reports with dates and the series' dates, as an iCalendar feed."""
    settings = get_settings()
    host = urlsplit(settings.base_url).hostname or "localhost"
    items, _ = public_items(
        ItemFilter(
            kind=CONFERENCE_REPORT,
            tag=selection.tag,
            language=selection.language,
            include_partners=selection.include_partners,
        ),
        1000,
    )
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//KGI-Infobrief//Conference calendar//DE")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", "KGI – " + translate("Conferences", selection.language or "de"))
    dated = [printable(item) for item in items if item.event_start]
    for item in dated:
        event = icalendar.Event()
        event.add("uid", f"item-{item.id}@{host}")
        event.add("dtstamp", item.updated_at)
        event.add("summary", item.title)
        event.add("dtstart", item.event_start)
        # DTEND of an all-day event is exclusive: the day after the last day.
        last_day = item.event_end or item.event_start
        event.add("dtend", last_day + timedelta(days=1) if last_day < date.max else last_day)
        if item.event_location:
            event.add("location", item.event_location)
        if item.summary:
            event.add("description", item.summary)
        event.add("url", item_url(item))
        if item.event_organiser:
            event.add(
                "organizer", f"MAILTO:noreply@{host}", parameters={"CN": item.event_organiser}
            )
        calendar.add_component(event)
    # Series carry no tags: a calendar of one tag has none of their dates.
    dates = [] if selection.tag else series_dates(selection.language)
    for found in dates:
        try:
            calendar.add_component(_series_entry(found, host))
        except (KeyError, TypeError, ValueError, ZoneInfoNotFoundError):
            continue  # a date the events service described in a way we cannot read
    calendar.add_missing_timezones()
    body = calendar.to_ical()
    # A series' date that passed or was cancelled leaves the list without a trace to
    # date: with series' dates in it, the calendar counts as changed when it was made
    # (its ETag, made from the body, still answers a reader's If-None-Match).
    modified = max(last_modified(dated), utcnow() if dates else EPOCH).replace(microsecond=0)
    keep_until = min(unchanged_until(), utcnow() + SERIES_DATES_FRESH)
    return Rendered(body, MEDIA_TYPES["ics"], weak_etag(body), modified, keep_until)
