"""Who receives an issue: confirmed subscribers with their personal links, for the
newsletter service (which never sees this service's tables or secrets)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from services.subscribers import optin
from services.subscribers.store import CONFIRMED, Subscriber, subscribers
from shared.addresses import parse_address
from shared.database import read_connection

#: Most ids one ``still_confirmed`` call may ask about: a sender asks per batch of 100,
#: and SQLite allows at most 32,766 parameters in one query.
MAX_CONFIRMED_IDS = 1000


def confirmed(language: str, chunk: int = 1000) -> Iterator[Subscriber]:
    """Confirmed subscribers of ``language`` in id order, read ``chunk`` rows at a time."""
    last_id = 0
    while True:
        with read_connection("subscribers") as conn:
            rows = conn.execute(
                sa.select(subscribers)
                .where(
                    subscribers.c.status == CONFIRMED,
                    subscribers.c.language == language,
                    subscribers.c.id > last_id,
                )
                .order_by(subscribers.c.id)
                .limit(chunk)
            ).all()
        if not rows:
            return
        for row in rows:
            yield Subscriber(**row._mapping)
        last_id = rows[-1].id


def recipient_record(subscriber: Subscriber) -> dict[str, Any]:
    """What the newsletter needs to address and personalise one mail."""
    unsubscribe, preferences = optin.manage_urls(subscriber)
    return {
        "id": subscriber.id,
        # ASCII addresses (nearly all) need no IDNA work.
        "email": subscriber.email
        if subscriber.email.isascii()
        else parse_address(subscriber.email).ascii,
        "name": subscriber.name,
        "unsubscribe_url": unsubscribe,
        "preferences_url": preferences,
    }


def still_confirmed(ids: list[int]) -> list[int]:
    """The subset of ``ids`` that is confirmed right now."""
    if not ids:
        return []
    with read_connection("subscribers") as conn:
        rows = conn.execute(
            sa.select(subscribers.c.id).where(
                subscribers.c.id.in_(ids), subscribers.c.status == CONFIRMED
            )
        )
        return [row.id for row in rows]
