"""iCalendar (RFC 5545) for events: the invitation a registration mail carries, and the
public calendar of a series.

An invitation is ``METHOD:REQUEST`` with the participant as attendee, so calendar
programs offer to add it; a change is the same event (same UID) with a higher SEQUENCE,
which programs apply to the entry they have; a cancellation is ``METHOD:CANCEL``, which
removes it. Times carry their zone (TZID with its VTIMEZONE), so an event at 10:00 in
Berlin stays at 10:00 in Berlin across daylight saving time.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import icalendar

from services.events.fields import ONLINE
from services.events.store import Event, Series
from shared.config import get_settings
from shared.database import utcnow
from shared.mail.headers import parse_mailbox
from shared.mail.message import Attachment
from shared.web.paths import absolute_url_for

#: RFC 5546 methods used here.
PUBLISH, REQUEST, CANCEL = "PUBLISH", "REQUEST", "CANCEL"

#: File name of the invitation in mails.
INVITATION_FILENAME = "invite.ics"


def event_uid(event: Event) -> str:
    """The event's UID: the same in every invitation, change and public calendar."""
    host = urlsplit(get_settings().base_url).hostname or "localhost"
    return f"event-{event.id}@{host}"


def full_title(series: Series, event: Event) -> str:
    """A date's title wherever it stands alone (calendars, the API): with its series'."""
    return event.title if event.title == series.title else f"{series.title}: {event.title}"


def _vevent(
    series: Series, event: Event, method: str, attendee: tuple[str, str] | None
) -> icalendar.Event:
    settings = get_settings()
    zone = ZoneInfo(event.timezone)
    entry = icalendar.Event()
    entry.add("uid", event_uid(event))
    entry.add("sequence", event.sequence)
    # An invitation or cancellation: when this message was made (RFC 5546 3.2), so of two
    # with one SEQUENCE a calendar applies the later. A published calendar: the date's
    # last change, so the file stays the same until something changes.
    entry.add("dtstamp", event.updated_at if method == PUBLISH else utcnow())
    entry.add("dtstart", event.starts_at.astimezone(zone))
    entry.add("dtend", event.ends_at.astimezone(zone))
    entry.add("summary", full_title(series, event))
    if event.mode != ONLINE:
        entry.add("location", event.place)
    elif attendee is not None and event.link:
        # The room's link is for participants: in their invitation, never in the public
        # calendar.
        entry.add("location", event.link)
    else:
        entry.add("location", "Online")
    entry.add("url", absolute_url_for("events:series", slug=series.slug))
    if series.summary:
        entry.add("description", series.summary)
    cancelled = method == CANCEL or event.cancelled_at is not None
    entry.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    sender = parse_mailbox(settings.mail_from)
    entry.add(
        "organizer", f"mailto:{sender.addr_spec}", parameters={"CN": sender.display_name or "KGI"}
    )
    if attendee is not None:
        address, name = attendee
        entry.add(
            "attendee",
            f"mailto:{address}",
            parameters={
                "CN": name,
                "ROLE": "REQ-PARTICIPANT",
                "PARTSTAT": "ACCEPTED",
                "RSVP": "FALSE",
            },
        )
    return entry


def calendar(
    series: Series,
    entries: Sequence[Event],
    method: str = PUBLISH,
    attendee: tuple[str, str] | None = None,
) -> bytes:
    """A VCALENDAR of ``entries`` of ``series`` (an invitation when ``attendee`` is the
    participant's address and name)."""
    document = icalendar.Calendar()
    document.add("prodid", "-//KGI-Infobrief//Events//DE")
    document.add("version", "2.0")
    document.add("calscale", "GREGORIAN")
    document.add("method", method)
    document.add("x-wr-calname", series.title)
    for event in entries:
        document.add_component(_vevent(series, event, method, attendee))
    # The VTIMEZONE of every TZID used, as RFC 5545 requires.
    document.add_missing_timezones()
    return document.to_ical()


def invitations(
    series: Series, entries: Sequence[Event], method: str, attendee: tuple[str, str]
) -> list[Attachment]:
    """The calendar attachments of a mail: one per date, as RFC 5546 wants one UID per
    REQUEST or CANCEL (calendar programs read only the first event of a file)."""
    many = len(entries) > 1
    return [
        Attachment(
            f"invite-{number}.ics" if many else INVITATION_FILENAME,
            f'text/calendar; charset="utf-8"; method={method}',
            calendar(series, [event], method, attendee),
        )
        for number, event in enumerate(entries, 1)
    ]
