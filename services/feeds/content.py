"""The network's own items: saving them and the publication workflow.

Fields are checked in :mod:`services.feeds.item_fields`; what the public sees is decided
in :mod:`services.feeds.listing`.

Workflow (Plone-style): draft → pending review → published → retracted. Editors write
and submit; admins publish, send back and retract. Published items are visible only
between their effective and expiry dates. An editor's change to a published item does
not reach the public directly: it becomes a pending revision (:mod:`services.feeds.revisions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from services.feeds import store
from services.feeds.item_fields import (
    InvalidItem,
    check_fields,
    insert_with_slug,
    row_id,
    slugify,
)
from services.feeds.store import (
    DRAFT,
    NETWORK,
    PARTNER,
    PENDING,
    PUBLISHED,
    RETRACTED,
    Item,
    items,
)
from shared import tasks
from shared.database import engine, utcnow
from shared.errors import Conflict, Forbidden, NotFound
from shared.sanitize import writable
from shared.web.paths import path_for


class WorkflowError(Conflict):
    """A step that cannot be taken now: not possible in the item's state, or the item
    changed since the user looked."""


class NotAllowed(Forbidden, WorkflowError):
    """The user's role may not take this step."""


class NoSuchItem(NotFound, WorkflowError):
    """There is no network item with this id."""


@dataclass(frozen=True)
class Transition:
    """A workflow step: from which states, to which, and the weakest role allowed."""

    name: str
    sources: tuple[str, ...]
    target: str
    role: str


TRANSITIONS = {
    t.name: t
    for t in (
        Transition("submit", (DRAFT, RETRACTED), PENDING, "editor"),
        Transition("publish", (DRAFT, PENDING, RETRACTED), PUBLISHED, "admin"),
        Transition("reject", (PENDING,), DRAFT, "admin"),
        Transition("retract", (PUBLISHED,), RETRACTED, "admin"),
    )
}


def check_translation(conn: Connection, item_id: int | None, translation_id: int | None) -> None:
    """Refuse a translation link to an item that is not one of the network's others."""
    if translation_id is None:
        return
    other = store.get_item(conn, translation_id)
    if other is None or other.origin != NETWORK or other.id == item_id:
        raise InvalidItem("translation_id", "There is no such item to link as translation.")


def create_item(fields: dict[str, Any], actor: str) -> Item:
    """Save a new draft; returns it."""
    values = check_fields(fields)
    now = utcnow()
    with engine("feeds").begin() as conn:
        check_translation(conn, None, values["translation_id"])
        wanted = slugify(writable(str(fields.get("slug") or values["title"])))
        item_id = insert_with_slug(
            conn,
            {
                **values,
                "origin": NETWORK,
                "state": DRAFT,
                "created_at": now,
                "updated_at": now,
                "hidden": False,
            },
            wanted,
        )
        _link_translation(conn, item_id, values["translation_id"])
        store.log_history(conn, item_id, actor, "created", None, DRAFT, None, now)
        item = store.get_item(conn, item_id)
    assert item is not None
    return item


def network_item(conn: Connection, item_id: int) -> Item:
    """The network's item ``item_id``; raises NoSuchItem (partner items are not edited)."""
    item = store.get_item(conn, item_id) if row_id(item_id) else None
    if item is None or item.origin != NETWORK:
        raise NoSuchItem("There is no such item.")
    return item


def write_content(
    conn: Connection,
    item: Item,
    values: dict[str, Any],
    actor: str,
    action: str,
    comment: str | None = None,
) -> Item:
    """Give ``item`` the checked content ``values`` (its state stays) and record who did it;
    a published item's change is stamped as a public change. Returns the item as saved."""
    now = utcnow()
    check_translation(conn, item.id, values["translation_id"])
    conn.execute(items.update().where(items.c.id == item.id).values(**values, updated_at=now))
    _link_translation(conn, item.id, values["translation_id"])
    store.log_history(conn, item.id, actor, action, item.state, item.state, comment, now)
    if item.state == PUBLISHED:
        store.mark_content_changed(conn, now)
    saved = store.get_item(conn, item.id)
    assert saved is not None
    return saved


def update_item(item_id: int, fields: dict[str, Any], actor: str) -> Item:
    """Change an item's content directly (its state stays). Whether a change may go live
    at once is decided by the caller (:func:`services.feeds.revisions.save_edit`)."""
    values = check_fields(fields)
    with engine("feeds").begin() as conn:
        return write_content(conn, network_item(conn, item_id), values, actor, "edited")


def _link_translation(conn: Connection, item_id: int, translation_id: int | None) -> None:
    # Translations point at each other, so either page can link to the other. An item that
    # already names its translation keeps it: nobody relinks published items in passing.
    if translation_id and translation_id != item_id:
        conn.execute(
            items.update()
            .where(items.c.id == translation_id, items.c.translation_id.is_(None))
            .values(translation_id=item_id)
        )


def version_of(item: Item) -> str:
    """The token of the item's current version (it changes with every change)."""
    return item.updated_at.isoformat()


def transition(
    item_id: int,
    name: str,
    actor: str,
    role: str,
    comment: str | None = None,
    seen_version: str | None = None,
) -> Item:
    """Move an item through the workflow; raises WorkflowError when not allowed. With
    ``seen_version`` (from the page the user acted on) the step applies only to the version
    the user saw: what an admin publishes is what the admin reviewed."""
    step = TRANSITIONS.get(name)
    if step is None:
        raise WorkflowError("Unknown workflow step.")
    if role != "admin" and step.role == "admin":
        raise NotAllowed("Only an administrator may do this.")
    now = utcnow()
    with engine("feeds").begin() as conn:
        item = network_item(conn, item_id)
        if item.state not in step.sources:
            raise WorkflowError(f"This step is not possible while the item is {item.state}.")
        if seen_version is not None and seen_version != version_of(item):
            raise WorkflowError(CHANGED_MEANWHILE)
        values: dict[str, Any] = {"state": step.target, "updated_at": now}
        if step.target == PUBLISHED and item.published_at is None:
            values["published_at"] = now
        conn.execute(items.update().where(items.c.id == item_id).values(**values))
        store.log_history(conn, item_id, actor, name, item.state, step.target, comment, now)
        if PUBLISHED in (item.state, step.target):
            store.mark_content_changed(conn, now)
        updated = store.get_item(conn, item_id)
    assert updated is not None
    if PUBLISHED in (item.state, step.target):
        event = "content.published" if step.target == PUBLISHED else "content.retracted"
        tasks.publish_event(
            event,
            {
                "id": updated.id,
                "slug": updated.slug,
                "kind": updated.kind,
                "language": updated.language,
                "path": path_for("feeds:item", slug=updated.slug),
            },
        )
    return updated


#: Why a step on a version the user did not see is refused.
CHANGED_MEANWHILE = (
    "The item was changed after you opened it. Please look at it again and then decide."
)


def set_hidden(item_id: int, hidden: bool, actor: str) -> None:
    """Hide an aggregated item from pages and feeds (or show it again); raises NoSuchItem."""
    now = utcnow()
    with engine("feeds").begin() as conn:
        item = store.get_item(conn, item_id) if row_id(item_id) else None
        if item is None or item.origin != PARTNER:
            raise NoSuchItem("There is no such partner item.")
        if item.hidden == hidden:
            return
        conn.execute(items.update().where(items.c.id == item_id).values(hidden=hidden))
        store.log_history(
            conn, item_id, actor, "hidden" if hidden else "shown", None, None, None, now
        )
        store.mark_content_changed(conn, now)
