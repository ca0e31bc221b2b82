"""A subscriber's own data: everything we hold as JSON, and erasure on request."""

from __future__ import annotations

from typing import Any

from services.subscribers import store
from services.subscribers.store import Subscriber
from shared.database import engine, read_connection, utcnow


def export_data(subscriber_id: int) -> dict[str, Any] | None:
    """The subscriber with their whole consent log, or None when there is no such row."""
    with read_connection("subscribers") as conn:
        subscriber = store.get(conn, subscriber_id)
        if subscriber is None:
            return None
        events = store.history(conn, subscriber_id)
    return {
        "subscriber": subscriber.public(),
        "consent_log": [event.public() for event in events],
        "exported_at": utcnow().isoformat(),
    }


def erase(subscriber: Subscriber) -> None:
    """Delete the subscriber, their consent log and queued mails; keep only a hash of the
    address so that no later import subscribes them again."""
    with engine("subscribers").begin() as conn:
        conn.execute(
            store.consent_events.delete().where(
                store.consent_events.c.subscriber_id == subscriber.id
            )
        )
        conn.execute(
            store.mail_outbox.delete().where(store.mail_outbox.c.subscriber_id == subscriber.id)
        )
        conn.execute(store.subscribers.delete().where(store.subscribers.c.id == subscriber.id))
        digest = store.email_hash(subscriber.email_key)
        if not store.is_erased(conn, subscriber.email_key):
            conn.execute(store.erasures.insert().values(email_hash=digest, erased_at=utcnow()))
