"""An event's time as people read it: in the event's own zone, in their language."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from services.events.fields import DEFAULT_TIMEZONE, EventFields
from shared.i18n import long_date


def when(event: EventFields, language: str) -> str:
    """``Donnerstag, 18. März 2027, 10:00–12:00 Uhr`` (the zone named when it is not
    Germany's); an event over several days names both days."""
    zone = ZoneInfo(event.timezone)
    start, end = event.starts_at.astimezone(zone), event.ends_at.astimezone(zone)
    clock = " Uhr" if language == "de" else ""
    if start.date() == end.date():
        text = f"{long_date(start, language)}, {start:%H:%M}–{end:%H:%M}{clock}"
    else:
        text = (
            f"{long_date(start, language)}, {start:%H:%M}{clock} – "
            f"{long_date(end, language)}, {end:%H:%M}{clock}"
        )
    if event.timezone != DEFAULT_TIMEZONE:
        text += f" ({event.timezone})"
    return text
