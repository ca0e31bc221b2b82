"""Pending revisions: an editor's change to a published item waits for an admin.

As with a working copy in Plone (plone.app.iterate), the published version stays live
while the change is reviewed. There is at most one pending revision per item; every
editor's further edits continue it. An admin publishes it (its content replaces the live
content) or rejects it; both are recorded in the item's history next to the submission.
An admin's own edit of a published item goes live directly, as a Plone Manager's does.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.feeds import content, item_fields, store
from services.feeds.content import CHANGED_MEANWHILE, NotAllowed, WorkflowError
from services.feeds.store import (
    CONTENT_FIELDS,
    PUBLISHED,
    REVISION_PENDING,
    REVISION_PUBLISHED,
    REVISION_REJECTED,
    Item,
    Revision,
    revisions,
)
from shared.database import engine, read_connection, utcnow

#: What an admin may do with a pending revision.
DECISIONS = ("publish", "reject")


def needs_review(item: Item, role: str, pending: Revision | None) -> bool:
    """Whether an edit by ``role`` goes into a revision instead of the item: editors'
    changes of published items do, and so does every editor's edit while a revision is
    pending (there is one working copy, not two)."""
    return role != "admin" and (item.state == PUBLISHED or pending is not None)


def pending_revision(item_id: int) -> Revision | None:
    """The revision of ``item_id`` that waits for review, if any."""
    with read_connection("feeds") as conn:
        return store.pending_revision(conn, item_id)


def items_under_review() -> set[int]:
    """Ids of the items that have a pending revision (for the admin list)."""
    with read_connection("feeds") as conn:
        rows = conn.execute(
            sa.select(revisions.c.item_id).where(revisions.c.state == REVISION_PENDING)
        )
        return {row.item_id for row in rows}


def save_edit(item_id: int, fields: dict[str, Any], actor: str, role: str) -> Revision | None:
    """Save an edit from the item form: into the pending revision when it needs review
    (returned), else directly into the item (None). Raises InvalidItem or NoSuchItem."""
    values = item_fields.check_fields(fields)
    with engine("feeds").begin() as conn:
        item = content.network_item(conn, item_id)
        pending = store.pending_revision(conn, item_id)
        if needs_review(item, role, pending):
            return _store_revision(conn, item, pending, values, actor)
        content.write_content(conn, item, values, actor, "edited")
    return None


def submit_revision(item_id: int, fields: dict[str, Any], actor: str) -> Revision:
    """Propose ``fields`` as the new content of ``item_id``, whatever its state."""
    values = item_fields.check_fields(fields)
    with engine("feeds").begin() as conn:
        item = content.network_item(conn, item_id)
        return _store_revision(conn, item, store.pending_revision(conn, item_id), values, actor)


def _store_revision(
    conn: Connection,
    item: Item,
    pending: Revision | None,
    values: dict[str, Any],
    actor: str,
) -> Revision:
    content.check_translation(conn, item.id, values["translation_id"])
    now = utcnow()
    if pending is None:
        revision_id = conn.execute(
            revisions.insert(),
            {
                **values,
                "item_id": item.id,
                "state": REVISION_PENDING,
                "submitted_by": actor,
                "created_at": now,
                "updated_at": now,
            },
        ).inserted_primary_key[0]
        action = "revision submitted"
    else:
        revision_id = pending.id
        conn.execute(
            revisions.update()
            .where(revisions.c.id == pending.id)
            .values(**values, submitted_by=actor, updated_at=now)
        )
        action = "revision updated"
    store.log_history(conn, item.id, actor, action, item.state, item.state, None, now)
    revision = store.pending_revision(conn, item.id)
    assert revision is not None and revision.id == revision_id
    return revision


def decide(
    item_id: int,
    revision_id: int,
    seen_version: str,
    decision: str,
    actor: str,
    role: str,
    comment: str | None = None,
) -> Item:
    """Publish or reject the pending revision ``revision_id`` as it was when the admin
    looked at it (``seen_version``, see :func:`version_of`); raises WorkflowError."""
    if role != "admin":
        raise NotAllowed("Only an administrator may do this.")
    if decision not in DECISIONS:
        raise WorkflowError("Unknown decision.")
    now = utcnow()
    with engine("feeds").begin() as conn:
        item = content.network_item(conn, item_id)
        pending = store.pending_revision(conn, item_id)
        if pending is None or pending.id != revision_id:
            raise WorkflowError("This revision is no longer waiting for review.")
        if seen_version != version_of(pending):
            raise WorkflowError(CHANGED_MEANWHILE)
        if decision == "publish":
            tags = json.dumps(pending.content["tags"], ensure_ascii=False)
            values = {**pending.content, "tags": tags}
            item = content.write_content(conn, item, values, actor, "revision published", comment)
        else:
            store.log_history(
                conn, item_id, actor, "revision rejected", item.state, item.state, comment, now
            )
        conn.execute(
            revisions.update()
            .where(revisions.c.id == pending.id)
            .values(
                state=REVISION_PUBLISHED if decision == "publish" else REVISION_REJECTED,
                decided_by=actor,
                decided_at=now,
            )
        )
    return item


def version_of(revision: Revision) -> str:
    """The token of the revision's current version (it changes with every edit)."""
    return revision.updated_at.isoformat()


def preview(item: Item, revision: Revision) -> Item:
    """``item`` as it would be with the revision published."""
    return replace(item, **revision.content)


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return "" if value is None else str(value)


def changes(item: Item, revision: Revision) -> list[tuple[str, str, str]]:
    """(field, live value, proposed value) for every field the revision changes."""
    return [
        (name, _shown(getattr(item, name)), _shown(revision.content[name]))
        for name in CONTENT_FIELDS
        if getattr(item, name) != revision.content[name]
    ]
