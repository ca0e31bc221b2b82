"""Who may do what in the feeds admin: every cell of the role × action table, pending
revisions of published items, and deleting a source that still has published items.

Each cell starts from fresh content, so one role's success cannot hide another's refusal.
Outcomes: ``login`` (sent to the login page, nothing changed), ``refused`` (403, nothing
changed), ``done`` (the change is live), ``review`` (stored as a pending revision, the
published version unchanged), ``conflict`` (409 with a message, nothing changed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import feedparser
import httpx
import pytest
import sqlalchemy as sa

from services.feeds import actors, aggregate, content, listing, partner_sources, revisions, store
from services.feeds.parse import Entry
from shared.database import engine, read_connection, utcnow
from tests.conftest import csrf_of, login

ROLES = ("anonymous", "editor", "admin")

#: Error answers in JSON carry the English message, whatever the page language.
JSON = {"accept": "application/json"}


def item_now(item_id: int) -> store.Item:
    with read_connection("feeds") as conn:
        found = store.get_item(conn, item_id)
    assert found is not None
    return found


def source_now(source_id: int) -> store.Source | None:
    with read_connection("feeds") as conn:
        return store.get_source(conn, source_id)


def history_of(item_id: int) -> list[tuple[str, str]]:
    with read_connection("feeds") as conn:
        return [(h["actor"], h["action"]) for h in store.item_history(conn, item_id)]


def feed_titles(site: str, query: str = "") -> set[str]:
    return {
        e.title
        for e in feedparser.parse(httpx.get(f"{site}/news/feed.atom{query}").content).entries
    }


def network_item(state: str, title: str = "Live-Fassung", **fields: Any) -> store.Item:
    """A network item in ``state``, made through the workflow as people would."""
    item = content.create_item({"title": title, "summary": "Alt", **fields}, "writer@example.org")
    if state in ("pending",):
        content.transition(item.id, "submit", "writer@example.org", "editor")
    if state in ("published", "retracted"):
        content.transition(item.id, "publish", "boss@example.org", "admin")
    if state == "retracted":
        content.transition(item.id, "retract", "boss@example.org", "admin")
    return item_now(item.id)


def partner_source(hidden: bool = False) -> tuple[store.Source, store.Item]:
    """A new partner source with one aggregated (published) item, without any fetch."""
    number = len(partner_sources.list_all()) + 1
    source = partner_sources.add_source(
        f"https://partner{number}.example.org/feed", name="Fachstelle"
    )
    with engine("feeds").begin() as conn:
        aggregate.store_entries(
            conn,
            source,
            [Entry(title="Partnermeldung", link="https://partner.example.org/a", guid="a")],
            "de",
        )
        if hidden:
            conn.execute(store.items.update().values(hidden=True))
    with read_connection("feeds") as conn:
        items = sa.select(store.items).where(store.items.c.source_id == source.id)
        row = conn.execute(items).one()
    return source, store.item_from_row(row)


def item_form(item: store.Item, **changes: str) -> dict[str, str]:
    """The edit form of ``item`` as the browser would send it, with ``changes``."""
    fields = {
        "kind": item.kind,
        "language": item.language,
        "title": item.title,
        "summary": item.summary,
        "body": item.body,
        "tags": ", ".join(item.tags),
    }
    return {**fields, **changes}


@dataclass
class Clients:
    anonymous: httpx.Client
    editor: httpx.Client
    admin: httpx.Client

    def of(self, role: str) -> httpx.Client:
        return getattr(self, role)


@pytest.fixture
def clients(site: str) -> Clients:
    return Clients(
        httpx.Client(base_url=site),
        login(site, "redaktion@example.org", role="editor"),
        login(site, "chefin@example.org", role="admin"),
    )


def token(client: httpx.Client) -> str:
    """A CSRF token of ``client``'s session ('' for visitors, who are sent to log in)."""
    page = client.get("/news/admin/")
    return csrf_of(page.text) if page.status_code == 200 else ""


def version_of(client: httpx.Client, item: store.Item) -> str:
    page = client.get(f"/news/admin/{item.id}")
    if page.status_code != 200:
        return ""
    import re

    match = re.search(r'name="version" value="([^"]+)"', page.text)
    return match.group(1) if match else ""


def judged(response: httpx.Response, changed: bool, review: bool = False) -> str:
    """The outcome of one attempt from the response and what happened to the content."""
    if response.status_code == 303 and response.headers["location"].startswith("/login"):
        assert not changed and not review
        return "login"
    if response.status_code == 403:
        assert not changed and not review, "refused, but the change happened anyway"
        return "refused"
    if response.status_code == 409:
        assert not changed
        return "conflict"
    assert response.status_code in (200, 303), (response.status_code, response.text[:500])
    if review:
        assert not changed, "a revision must not change the live version"
        return "review"
    return "done" if changed else f"no effect ({response.status_code})"


# --- the actions ---------------------------------------------------------------------
# Each takes the client and the role's name, sets up its own content, acts, and judges.


def create(client: httpx.Client, role: str, site: str) -> str:
    response = client.post(
        "/news/admin/new",
        data={"csrf_token": token(client), "title": f"Neu von {role}", "kind": "news"},
    )
    return judged(response, bool(listing.editor_items(query=f"Neu von {role}")))


def edit_in(state: str) -> Callable[[httpx.Client, str, str], str]:
    def edit(client: httpx.Client, role: str, site: str) -> str:
        item = network_item(state)
        response = client.post(
            f"/news/admin/{item.id}",
            data={"csrf_token": token(client), **item_form(item, title="Neue Fassung")},
        )
        pending = revisions.pending_revision(item.id)
        return judged(response, item_now(item.id).title == "Neue Fassung", pending is not None)

    return edit


def step(name: str, state: str) -> Callable[[httpx.Client, str, str], str]:
    targets = {
        "submit": "pending",
        "publish": "published",
        "reject": "draft",
        "retract": "retracted",
    }

    def act(client: httpx.Client, role: str, site: str) -> str:
        item = network_item(state)
        response = client.post(
            f"/news/admin/{item.id}/workflow",
            data={"csrf_token": token(client), "step": name, "version": version_of(client, item)},
        )
        return judged(response, item_now(item.id).state == targets[name])

    return act


def visibility(field: str) -> Callable[[httpx.Client, str, str], str]:
    """Set *visible until* in the past (retracts) or *visible from* in the future (hides)."""
    moment = utcnow() + (timedelta(days=-1) if field == "expires_at" else timedelta(days=3))

    def act(client: httpx.Client, role: str, site: str) -> str:
        item = network_item("published", title=f"Sichtbar {field} {role}")
        response = client.post(
            f"/news/admin/{item.id}",
            data={
                "csrf_token": token(client),
                **item_form(item, **{field: moment.strftime("%Y-%m-%dT%H:%M")}),
            },
        )
        gone = item.title not in feed_titles(site)
        return judged(response, gone, revisions.pending_revision(item.id) is not None)

    return act


def decide_revision(action: str) -> Callable[[httpx.Client, str, str], str]:
    def act(client: httpx.Client, role: str, site: str) -> str:
        item = network_item("published")
        revision = revisions.submit_revision(
            item.id, item_form(item, title="Überarbeitet"), "writer@example.org"
        )
        response = client.post(
            f"/news/admin/{item.id}/revision",
            data={
                "csrf_token": token(client),
                "action": action,
                "revision": str(revision.id),
                "version": revision.updated_at.isoformat(),
            },
        )
        decided = revisions.pending_revision(item.id) is None
        if action == "publish":
            decided = decided and item_now(item.id).title == "Überarbeitet"
        return judged(response, decided)

    return act


def hide(hidden: bool) -> Callable[[httpx.Client, str, str], str]:
    def act(client: httpx.Client, role: str, site: str) -> str:
        _, item = partner_source(hidden=not hidden)
        response = client.post(
            f"/news/admin/partner/{item.id}/hide",
            data={"csrf_token": token(client), "hidden": "1" if hidden else "0"},
        )
        return judged(response, item_now(item.id).hidden == hidden)

    return act


def add_source(client: httpx.Client, role: str, site: str) -> str:
    response = client.post(
        "/news/admin/sources",
        data={"csrf_token": token(client), "url": f"https://{role}.example.org/feed", "name": "X"},
    )
    return judged(
        response, any(s.url.startswith(f"https://{role}.") for s in partner_sources.list_all())
    )


def source_action(
    action: str, hidden_items: bool = True
) -> Callable[[httpx.Client, str, str], str]:
    def act(client: httpx.Client, role: str, site: str) -> str:
        source, _ = partner_source(hidden=hidden_items)
        if action == "resume":
            partner_sources.update_source(source.id, paused=True)
        sent: list[int] = []
        original = actors.fetch_source.send
        actors.fetch_source.send = lambda source_id: sent.append(source_id)  # type: ignore[method-assign]
        try:
            response = client.post(
                f"/news/admin/sources/{source.id}",
                data={"csrf_token": token(client), "action": action},
            )
        finally:
            actors.fetch_source.send = original  # type: ignore[method-assign]
        now = source_now(source.id)
        effects = {
            "pause": now is not None and now.paused,
            "resume": now is not None and not now.paused,
            "fetch": sent == [source.id],
            "delete": now is None,
            "hide": all(i.hidden for i in listing.partner_items() if i.source_id == source.id),
        }
        return judged(response, effects[action])

    return act


def view_sources(client: httpx.Client, role: str, site: str) -> str:
    response = client.get("/news/admin/sources", follow_redirects=False)
    if response.status_code == 200:
        # Editors see the sources and their health, without the forms that change them.
        has_forms = 'name="url"' in response.text
        return "done" if has_forms else "read-only"
    return judged(response, False)


#: action → (how, expected outcome for anonymous, editor, admin). This is the README table.
TABLE: dict[str, tuple[Callable[[httpx.Client, str, str], str], tuple[str, str, str]]] = {
    "create an item": (create, ("login", "done", "done")),
    "edit a draft": (edit_in("draft"), ("login", "done", "done")),
    "edit a pending item": (edit_in("pending"), ("login", "done", "done")),
    "edit a retracted item": (edit_in("retracted"), ("login", "done", "done")),
    "edit a published item": (edit_in("published"), ("login", "review", "done")),
    "set visible until (expiry) of a published item": (
        visibility("expires_at"),
        ("login", "review", "done"),
    ),
    "set visible from (schedule) of a published item": (
        visibility("effective_at"),
        ("login", "review", "done"),
    ),
    "submit for review": (step("submit", "draft"), ("login", "done", "done")),
    "publish": (step("publish", "pending"), ("login", "refused", "done")),
    "send back": (step("reject", "pending"), ("login", "refused", "done")),
    "retract": (step("retract", "published"), ("login", "refused", "done")),
    "publish a pending revision": (decide_revision("publish"), ("login", "refused", "done")),
    "reject a pending revision": (decide_revision("reject"), ("login", "refused", "done")),
    "hide a partner item": (hide(True), ("login", "refused", "done")),
    "show a hidden partner item": (hide(False), ("login", "refused", "done")),
    "see the sources": (view_sources, ("login", "read-only", "done")),
    "add a source": (add_source, ("login", "refused", "done")),
    "pause a source": (source_action("pause"), ("login", "refused", "done")),
    "resume a source": (source_action("resume"), ("login", "refused", "done")),
    "fetch a source now": (source_action("fetch"), ("login", "refused", "done")),
    "hide all items of a source": (
        source_action("hide", hidden_items=False),
        ("login", "refused", "done"),
    ),
    "delete a source without published items": (
        source_action("delete"),
        ("login", "refused", "done"),
    ),
    "delete a source with published items": (
        source_action("delete", hidden_items=False),
        ("login", "refused", "conflict"),
    ),
}


@pytest.mark.parametrize("action", list(TABLE))
def test_role_action_table(site: str, clients: Clients, action: str) -> None:
    how, expected = TABLE[action]
    got = tuple(how(clients.of(role), role, site) for role in ROLES)
    assert got == expected, dict(zip(ROLES, got, strict=True))


# --- pending revisions ---------------------------------------------------------------


def test_editors_change_to_a_published_item_waits_for_an_admin(site: str, clients: Clients) -> None:
    item = network_item("published", title="Förderprogramm 2027", body="<p>Alt</p>")
    editor, admin = clients.editor, clients.admin
    saved = editor.post(
        f"/news/admin/{item.id}",
        data={
            "csrf_token": token(editor),
            **item_form(item, title="Förderprogramm 2027 (verlängert)", body="<p>Neu</p>"),
        },
    )
    assert saved.status_code == 303
    # The public keeps seeing the published version: page, feeds, API.
    assert httpx.get(f"{site}/news/{item.slug}").text.count("<p>Alt</p>") == 1
    assert feed_titles(site) == {"Förderprogramm 2027"}
    api = httpx.get(f"{site}/news/api/items").json()
    assert [i["title"] for i in api["items"]] == ["Förderprogramm 2027"]
    # The editor goes on editing the revision, and is told it waits for review.
    page = editor.get(saved.headers["location"]).text
    assert 'value="Förderprogramm 2027 (verlängert)"' in page
    assert 'data-revision="pending"' in page
    # The admin sees what changed and can preview the revision in full.
    review = admin.get(f"/news/admin/{item.id}").text
    assert 'data-revision="pending"' in review and "Förderprogramm 2027 (verlängert)" in review
    preview = admin.get(f"/news/{item.slug}?revision=pending").text
    assert "<p>Neu</p>" in preview
    # Visitors cannot preview it.
    assert "<p>Neu</p>" not in httpx.get(f"{site}/news/{item.slug}?revision=pending").text
    revision = revisions.pending_revision(item.id)
    assert revision is not None
    published = admin.post(
        f"/news/admin/{item.id}/revision",
        data={
            "csrf_token": token(admin),
            "action": "publish",
            "revision": str(revision.id),
            "version": revision.updated_at.isoformat(),
            "comment": "Danke",
        },
    )
    assert published.status_code == 303
    assert feed_titles(site) == {"Förderprogramm 2027 (verlängert)"}
    assert "<p>Neu</p>" in httpx.get(f"{site}/news/{item.slug}").text
    assert history_of(item.id)[-2:] == [
        ("redaktion@example.org", "revision submitted"),
        ("chefin@example.org", "revision published"),
    ]
    history = admin.get(f"/news/admin/{item.id}?lang=en").text
    assert "revision submitted" in history and "revision published" in history


def test_a_revision_changed_after_review_is_not_published(site: str, clients: Clients) -> None:
    item = network_item("published")
    first = revisions.submit_revision(item.id, item_form(item, title="Erste"), "a@example.org")
    # The editor changes the revision again after the admin opened it: same revision, new text.
    second = revisions.submit_revision(item.id, item_form(item, title="Zweite"), "b@example.org")
    assert second.id == first.id and second.updated_at > first.updated_at
    refused = clients.admin.post(
        f"/news/admin/{item.id}/revision",
        headers=JSON,
        data={
            "csrf_token": token(clients.admin),
            "action": "publish",
            "revision": str(first.id),
            "version": first.updated_at.isoformat(),
        },
    )
    assert refused.status_code == 409 and "changed" in refused.text
    assert item_now(item.id).title == "Live-Fassung"
    assert history_of(item.id)[-2:] == [
        ("a@example.org", "revision submitted"),
        ("b@example.org", "revision updated"),
    ]


def test_a_rejected_revision_leaves_the_live_version(site: str, clients: Clients) -> None:
    item = network_item("published")
    revision = revisions.submit_revision(item.id, item_form(item, title="Nein"), "a@example.org")
    revisions.decide(
        item.id, revision.id, revisions.version_of(revision), "reject", "boss@example.org", "admin"
    )
    assert item_now(item.id).title == "Live-Fassung" and revisions.pending_revision(item.id) is None
    assert history_of(item.id)[-1] == ("boss@example.org", "revision rejected")
    # The next edit starts a new revision from the live version.
    again = revisions.submit_revision(item.id, item_form(item, title="Ja"), "a@example.org")
    assert again.id != revision.id


def test_an_admins_own_edit_of_a_published_item_goes_live(site: str, clients: Clients) -> None:
    item = network_item("published")
    clients.admin.post(
        f"/news/admin/{item.id}",
        data={"csrf_token": token(clients.admin), **item_form(item, title="Korrigiert")},
    )
    assert feed_titles(site) == {"Korrigiert"}
    assert revisions.pending_revision(item.id) is None
    assert history_of(item.id)[-1] == ("chefin@example.org", "edited")


def test_publishing_needs_the_version_the_admin_saw(site: str, clients: Clients) -> None:
    item = network_item("pending")
    seen = version_of(clients.admin, item)
    content.update_item(item.id, item_form(item, title="Nachträglich"), "writer@example.org")
    refused = clients.admin.post(
        f"/news/admin/{item.id}/workflow",
        headers=JSON,
        data={"csrf_token": token(clients.admin), "step": "publish", "version": seen},
    )
    assert refused.status_code == 409 and item_now(item.id).state == "pending"
    assert "changed" in refused.text


def test_editors_cannot_relink_a_published_translation(site: str) -> None:
    german = network_item("published", title="Netzwerktag")
    english = network_item("published", title="Network day", language="en")
    content.update_item(german.id, {**item_form(german), "translation_id": str(english.id)}, "a")
    assert item_now(english.id).translation_id == german.id
    # An editor's new draft that claims to translate the German item does not take over
    # the link the published English item has.
    content.create_item({"title": "Journée", "translation_id": str(german.id)}, "editor")
    assert item_now(german.id).translation_id == english.id


# --- deleting a source ----------------------------------------------------------------


def test_a_source_with_published_items_is_not_deleted(site: str, clients: Clients) -> None:
    source, item = partner_source()
    admin = clients.admin
    refused = admin.post(
        f"/news/admin/sources/{source.id}",
        headers=JSON,
        data={"csrf_token": token(admin), "action": "delete"},
    )
    assert refused.status_code == 409
    assert "still has published items" in refused.text and "Hide its items" in refused.text
    assert source_now(source.id) is not None
    assert "Partnermeldung" in feed_titles(site, "?partners=1")
    with pytest.raises(partner_sources.SourceInUse):
        partner_sources.delete_source(source.id)
    # Hiding all its items (one button on the source) makes deleting possible.
    admin.post(
        f"/news/admin/sources/{source.id}", data={"csrf_token": token(admin), "action": "hide"}
    )
    assert item_now(item.id).hidden
    deleted = admin.post(
        f"/news/admin/sources/{source.id}", data={"csrf_token": token(admin), "action": "delete"}
    )
    assert deleted.status_code == 303 and source_now(source.id) is None
