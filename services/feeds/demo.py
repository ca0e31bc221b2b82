"""Demo content shipped with the project, so a new instance shows something real."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from services.feeds import store
from services.feeds.item_fields import check_fields, insert_with_slug, slugify
from shared.database import engine, utcnow

DEMO_FILE = Path(__file__).parent / "demo" / "demo-content.json"


def load_demo(path: Path = DEMO_FILE) -> int:
    """Add the demo items that are not there yet (matched by slug); returns how many."""
    records = json.loads(path.read_text("utf-8"))
    added = 0
    now = utcnow()
    with engine("feeds").begin() as conn:
        for record in records:
            slug = record.get("slug") or slugify(record["title"])
            if conn.execute(sa.select(store.items.c.id).where(store.items.c.slug == slug)).first():
                continue
            event = record.get("event") or {}
            values = check_fields(
                {
                    **record,
                    "kind": record.get("type", "news"),
                    "event_start": event.get("start"),
                    "event_end": event.get("end"),
                    "event_location": event.get("location"),
                    "event_organiser": event.get("organiser"),
                }
            )
            state = record.get("state", store.PUBLISHED)
            published = (
                datetime.fromisoformat(record["published"]) if record.get("published") else None
            )
            item_id = insert_with_slug(
                conn,
                {
                    **values,
                    "origin": store.NETWORK,
                    "state": state,
                    "published_at": published if state == store.PUBLISHED else None,
                    "created_at": published or now,
                    "updated_at": published or now,
                    "hidden": False,
                },
                slug,
            )
            store.log_history(conn, item_id, "demo", "created", None, state, "demo content", now)
            added += 1
        if added:
            store.mark_content_changed(conn, now)
    return added
