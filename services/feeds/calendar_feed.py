"""The site's calendar (``events.ics``): the conference dates of published reports, and
the dates of the event series, which the events service gives over HTTP.

A series' date has the same UID as the invitation its participants got
(``event-<id>@<host>``), so a calendar program that has both shows it once, and its
SEQUENCE, so a change replaces the entry. The series' dates are asked for at most once a
:data:`SERIES_DATES_FRESH` per process (the rendering is kept that long at the most); if
the events service does not answer, the calendar comes without them and is asked again
after that time.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import icalendar

from services.feeds.feed_text import printable
from services.feeds.listing import ItemFilter, public_items, unchanged_until
from services.feeds.store import CONFERENCE_REPORT
from services.feeds.syndication import MEDIA_TYPES, item_url, last_modified
from shared.config import get_settings
from shared.database import utcnow
from shared.i18n import translate
from shared.web.caching import Rendered, weak_etag
from shared.web.paths import path_for

#: How long the calendar is kept before the series' dates are asked for again.
SERIES_DATES_FRESH = timedelta(seconds=60)

#: Seconds to wait for the events service.
EVENTS_TIMEOUT_SECONDS = 5

#: Most series dates in the calendar (the events API's own limit).
SERIES_DATES_LIMIT = 200


def series_dates(language: str | None) -> list[dict[str, Any]]:
    """The coming dates of the published series from the events service (empty when it
    does not answer: the calendar still has the conference dates)."""
    params = {"limit": str(SERIES_DATES_LIMIT)}
    if language:
        params["lang"] = language
    try:
        with httpx.Client(
            base_url=get_settings().events_url, timeout=EVENTS_TIMEOUT_SECONDS, trust_env=False
        ) as client:
            response = client.get(path_for("events:api_dates"), params=params)
            response.raise_for_status()
            return list(response.json()["dates"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return []


def _series_entry(found: dict[str, Any], host: str) -> icalendar.Event:
    zone = ZoneInfo(found["event"]["timezone"])
    entry = icalendar.Event()
    entry.add("uid", f"event-{found['id']}@{host}")
    entry.add("sequence", int(found["sequence"]))
    entry.add("dtstamp", datetime.fromisoformat(found["updated_at"]))
    entry.add("summary", found["title"])
    entry.add("dtstart", datetime.fromisoformat(found["event"]["start"]).astimezone(zone))
    entry.add("dtend", datetime.fromisoformat(found["event"]["end"]).astimezone(zone))
    entry.add("location", found["event"]["location"])
    if found.get("summary"):
        entry.add("description", found["summary"])
    entry.add("url", found["url"])
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
        calendar.add_component(_series_entry(found, host))
    calendar.add_missing_timezones()
    body = calendar.to_ical()
    modified = max(
        [last_modified(dated)] + [datetime.fromisoformat(d["updated_at"]) for d in dates]
    ).replace(microsecond=0)
    keep_until = min(unchanged_until(), utcnow() + SERIES_DATES_FRESH)
    return Rendered(body, MEDIA_TYPES["ics"], weak_etag(body), modified, keep_until)
