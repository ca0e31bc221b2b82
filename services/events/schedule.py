"""Series and their dates as the pages and the organisers see them: read with how full
each date is, written from the forms' fields (the tables are in :mod:`.store`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.events.fields import SLUG_SHAPE, EventFields, SeriesFields, slug_of
from services.events.store import (
    ACTIVE_SEATS,
    DRAFT,
    PUBLISHED,
    RESERVED_SLUGS,
    SEATED,
    WAITING,
    Event,
    NoSuchEvent,
    NoSuchSeries,
    Series,
    events,
    seats,
    series,
)
from shared.database import engine, read_connection, utcnow

_SERIES_COLUMNS = [series.c[name] for name in (*SeriesFields.__dataclass_fields__, "id")] + [
    series.c.slug,
    series.c.state,
    series.c.updated_at,
]


def _counts(status: str) -> Any:
    return (
        sa.select(sa.func.count())
        .where(seats.c.event_id == events.c.id, seats.c.status == status)
        .scalar_subquery()
    )


_EVENT_QUERY = sa.select(
    *[c for c in events.c if c.name not in ("created_at",)],
    _counts(SEATED).label("taken"),
    _counts(WAITING).label("waiting"),
)


def get_series(series_id: int | None = None, slug: str | None = None) -> Series:
    """A series by id or address; NoSuchSeries when there is none."""
    if slug is not None and not SLUG_SHAPE.fullmatch(slug):
        # No address has other characters, and PostgreSQL text cannot hold NUL: no query.
        raise NoSuchSeries()
    query = sa.select(*_SERIES_COLUMNS)
    query = query.where(series.c.id == series_id if slug is None else series.c.slug == slug)
    with read_connection("events") as conn:
        row = conn.execute(query).first()
    if row is None:
        raise NoSuchSeries()
    return Series(**row._mapping)


def all_series(state: str | None = None) -> list[Series]:
    """Every series (in ``state`` when given), the newest first."""
    query = sa.select(*_SERIES_COLUMNS).order_by(series.c.id.desc())
    if state is not None:
        query = query.where(series.c.state == state)
    with read_connection("events") as conn:
        return [Series(**row._mapping) for row in conn.execute(query)]


def save_series(fields: SeriesFields, series_id: int | None = None) -> int:
    """Store a new series (a draft, its address from the title) or change one."""
    now = utcnow()
    values = {name: getattr(fields, name) for name in SeriesFields.__dataclass_fields__}
    with engine("events").begin() as conn:
        if series_id is not None:
            conn.execute(
                series.update().where(series.c.id == series_id).values(**values, updated_at=now)
            )
            return series_id
        base = slug = slug_of(fields.title)
        taken = set(
            conn.execute(sa.select(series.c.slug).where(series.c.slug.like(f"{base}%"))).scalars()
        )
        counter = 2
        while slug in taken or slug in RESERVED_SLUGS:
            slug, counter = f"{base}-{counter}", counter + 1
        return int(
            conn.execute(
                series.insert().values(
                    **values, slug=slug, state=DRAFT, created_at=now, updated_at=now
                )
            ).inserted_primary_key[0]
        )


def set_series_state(series_id: int, state: str) -> None:
    """Move a series along the workflow."""
    with engine("events").begin() as conn:
        conn.execute(
            series.update().where(series.c.id == series_id).values(state=state, updated_at=utcnow())
        )


def series_events(series_id: int, conn: Connection | None = None) -> list[Event]:
    """A series' events with their counts, in time order."""
    query = _EVENT_QUERY.where(events.c.series_id == series_id).order_by(
        events.c.starts_at, events.c.id
    )
    if conn is not None:
        return [Event(**row._mapping) for row in conn.execute(query)]
    with read_connection("events") as own:
        return [Event(**row._mapping) for row in own.execute(query)]


def get_event(event_id: int, conn: Connection | None = None) -> Event:
    """One event with its counts; NoSuchEvent when there is none."""
    query = _EVENT_QUERY.where(events.c.id == event_id)
    if conn is not None:
        row = conn.execute(query).first()
    else:
        with read_connection("events") as own:
            row = own.execute(query).first()
    if row is None:
        raise NoSuchEvent()
    return Event(**row._mapping)


def upcoming_events(
    now: datetime, limit: int, language: str | None = None
) -> list[tuple[Series, Event]]:
    """The next dates of published series (in ``language`` when given), not cancelled,
    with their series, soonest first."""
    query = (
        _EVENT_QUERY.join(series, series.c.id == events.c.series_id)
        .where(series.c.state == PUBLISHED, events.c.ends_at > now, events.c.cancelled_at.is_(None))
        .order_by(events.c.starts_at, events.c.id)
        .limit(limit)
    )
    if language is not None:
        query = query.where(series.c.language == language)
    with read_connection("events") as conn:
        rows = list(conn.execute(query))
    found: dict[int, Series] = {}
    pairs = []
    for row in rows:
        if row.series_id not in found:
            found[row.series_id] = get_series(row.series_id)
        pairs.append((found[row.series_id], Event(**row._mapping)))
    return pairs


def event_values(fields: EventFields) -> dict[str, Any]:
    """The columns of an event's fields."""
    return {name: getattr(fields, name) for name in EventFields.__dataclass_fields__}


def people_registered(series_id: int, now: datetime) -> int:
    """Seats held, waited for or awaiting confirmation at a series' coming dates."""
    query = (
        sa.select(sa.func.count())
        .select_from(seats.join(events, events.c.id == seats.c.event_id))
        .where(
            events.c.series_id == series_id,
            events.c.cancelled_at.is_(None),
            events.c.starts_at > now,
            seats.c.status.in_(ACTIVE_SEATS),
        )
    )
    with read_connection("events") as conn:
        return int(conn.execute(query).scalar_one())
