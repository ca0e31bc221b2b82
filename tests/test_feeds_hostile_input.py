"""No input makes the feeds service answer 5xx: the known cases from the audit, then a
generated sweep of hostile strings over every feeds route (public and admin)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import feedparser
import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from services.feeds import actors, aggregate, content, listing, partner_sources, store
from shared.database import engine, read_connection, utcnow
from tests.conftest import csrf_of, login
from tests.partner_server import Resource

HUGE = "99999999999999999999999"


def encoded(value: str) -> str:
    """Percent-encoding of any str, lone surrogates included (as a broken client sends them)."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def query(params: dict[str, str]) -> str:
    return "&".join(f"{encoded(k)}={encoded(v)}" for k, v in params.items())


def post_form(
    client: httpx.Client, path: str, fields: dict[str, str], utf7: bool = False
) -> httpx.Response:
    """POST ``fields`` urlencoded, or as multipart declared UTF-7: the one way a str with
    lone surrogates reaches the form parser (Starlette decodes with the declared charset)."""
    if not utf7:
        return client.post(
            path,
            content=query(fields).encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    boundary = "kgi-sweep-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value.encode("utf-7")
        + b"\r\n"
        for name, value in fields.items()
    ]
    return client.post(
        path,
        content=b"".join(parts) + f"--{boundary}--\r\n".encode(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}; charset=utf-7"},
    )


def no_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.request.url, response.text[:300])


@pytest.fixture
def admin(site: str) -> httpx.Client:
    return login(site, "chefin@example.org", role="admin")


def token(client: httpx.Client) -> str:
    return csrf_of(client.get("/news/admin/").text)


# --- the cases the audit found ---------------------------------------------------------


@pytest.mark.parametrize(
    "since", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:00-14:00", "0001-01-01", "\x00"]
)
def test_since_out_of_range_is_422(site: str, since: str) -> None:
    response = httpx.get(f"{site}/news/api/items?since={encoded(since)}")
    assert response.status_code == 422
    assert "since" in response.json()["error"]


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_control_characters_in_the_tag_filter(site: str, fmt: str) -> None:
    content.transition(content.create_item({"title": "X"}, "e").id, "publish", "a", "admin")
    for tag in ("%00", "%07", "a%00b", "%ED%A0%80", "%EF%BF%BE"):
        response = httpx.get(f"{site}/news/feed.{fmt}?tag={tag}", follow_redirects=True)
        assert response.status_code == 200, tag


PARTNER_WITH_BELL = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Partner</title><link>https://p.example.org/</link>
<description>x</description>
<item><title>Glocke \x07 im Titel</title><link>https://p.example.org/a</link>
<description>Text mit \x07 Glocke und \x1b Escape</description>
<category>Tag\x07</category><author>Autor\x07in</author></item>
</channel></rss>"""


def test_a_partner_entry_with_control_characters_breaks_no_feed(site: str, partner: Any) -> None:
    partner.resources["/bell.rss"] = Resource(PARTNER_WITH_BELL)
    source = partner_sources.add_source(partner.url("/bell.rss"), name="Partner\x07")
    report = aggregate.fetch_source(source.id)
    assert report.new == 1, report
    item = listing.partner_items()[0]
    for text in (item.title, item.summary, item.body, *item.tags, item.author or ""):
        assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", text), text
    for fmt in ("rss", "atom", "json"):
        response = httpx.get(f"{site}/news/feed.{fmt}?partners=1")
        assert response.status_code == 200, fmt
        if fmt != "json":
            assert not feedparser.parse(response.content).bozo
    assert httpx.get(f"{site}/news/?partners=1").status_code == 200


def test_feed_writers_survive_stored_control_characters(site: str) -> None:
    """Content stored before cleaning existed (or written around it) still gives a feed."""
    item = content.create_item({"title": "Alt"}, "e")
    content.transition(item.id, "publish", "a", "admin")
    with engine("feeds").begin() as conn:
        # NUL only where it can be stored at all: PostgreSQL text refuses it.
        nul = "\x00" if conn.dialect.name == "sqlite" else ""
        conn.execute(
            store.items.update()
            .where(store.items.c.id == item.id)
            .values(
                title="Alt\x07",
                summary=f"S{nul}\x1b",
                body="<p>\x0b</p>",
                tags='["a\\u0007"]',
                author="A\x07",
            )
        )
        store.mark_content_changed(conn, utcnow())
    for fmt in ("rss", "atom", "json"):
        response = httpx.get(f"{site}/news/feed.{fmt}")
        assert response.status_code == 200, fmt
    assert httpx.get(f"{site}/news/events.ics").status_code == 200


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", f"/news/admin/{HUGE}"),
        ("POST", f"/news/admin/{HUGE}"),
        ("POST", f"/news/admin/{HUGE}/workflow"),
        ("POST", f"/news/admin/{HUGE}/revision"),
        ("POST", f"/news/admin/partner/{HUGE}/hide"),
        ("POST", f"/news/admin/sources/{HUGE}"),
        ("GET", "/news/admin/9223372036854775808"),
        ("POST", "/news/admin/9223372036854775807/workflow"),
    ],
)
def test_huge_ids_in_admin_urls_are_404(admin: httpx.Client, method: str, path: str) -> None:
    fields = {"csrf_token": token(admin), "title": "x", "step": "publish", "action": "pause"}
    response = admin.get(path) if method == "GET" else post_form(admin, path, fields)
    assert response.status_code == 404, (path, response.status_code)


@pytest.mark.parametrize(
    "field,value",
    [
        ("effective_at", "0001-01-01T00:30"),
        ("expires_at", "9999-12-31T23:59"),
        ("effective_at", "99999-01-01T00:00"),
        ("event_start", "0001-01-01"),
        ("event_end", "9999-12-31"),
        ("translation_id", HUGE),
        ("translation_id", "12345"),
    ],
)
def test_out_of_range_item_fields_are_422(admin: httpx.Client, field: str, value: str) -> None:
    fields = {"csrf_token": token(admin), "title": "Datum", "kind": "conference_report"}
    if field == "event_end":
        fields["event_start"] = "2027-01-01"
    response = post_form(admin, "/news/admin/new", {**fields, field: value})
    assert response.status_code == 422, response.text[:300]
    assert f'id="{field}-error"' in response.text


def test_a_source_port_out_of_range_is_refused_and_the_actor_survives(
    admin: httpx.Client,
) -> None:
    response = post_form(
        admin,
        "/news/admin/sources",
        {"csrf_token": token(admin), "url": "https://partner.example.org:99999/feed"},
    )
    assert response.status_code == 422 and "port" in response.text
    for url in ("http://[::1/feed", "http://exa mple.org/", "https://" + "a" * 64 + ".org/"):
        with pytest.raises(partner_sources.InvalidSource):
            partner_sources.add_source(url)
    # A source stored before the check (or reached by a redirect) is an error, not a crash.
    with engine("feeds").begin() as conn:
        source_id = conn.execute(
            store.sources.insert(),
            {
                "name": "Alt",
                "url": "https://partner.example.org:99999/feed",
                "kind": "feed",
                "paused": False,
                "interval_minutes": 30,
                "failures": 0,
                "created_at": utcnow(),
            },
        ).inserted_primary_key[0]
    actors.fetch_source.fn(source_id)
    with read_connection("feeds") as conn:
        recorded = store.get_source(conn, source_id)
    assert recorded is not None and recorded.last_status == "error"
    assert "port" in (recorded.last_error or "")


def test_a_redirect_to_a_bad_port_is_an_error(partner: Any) -> None:
    partner.resources["/moved"] = Resource(
        status=301, headers={"Location": "http://127.0.0.1:99999/feed"}
    )
    source = partner_sources.add_source(partner.url("/moved"))
    report = aggregate.fetch_source(source.id)
    assert report.status == "error" and "port" in (report.message or "")


@pytest.mark.parametrize(
    "path,fields",
    [
        ("/news/admin/new", {"title": "A\ud800B", "summary": "\udfff", "tags": "x\ud800"}),
        ("/news/admin/sources", {"url": "https://ex\ud800.org/", "name": "\ud800"}),
    ],
)
def test_lone_surrogates_in_form_fields(admin: httpx.Client, path: str, fields: dict) -> None:
    response = post_form(admin, path, {"csrf_token": token(admin), **fields}, utf7=True)
    assert response.status_code in (303, 422), response.text[:300]


def test_lone_surrogates_in_a_workflow_comment(admin: httpx.Client) -> None:
    item = content.create_item({"title": "Kommentar"}, "e")
    page = admin.get(f"/news/admin/{item.id}").text
    version = re.search(r'name="version" value="([^"]+)"', page).group(1)
    response = post_form(
        admin,
        f"/news/admin/{item.id}/workflow",
        {"csrf_token": token(admin), "step": "submit", "comment": "\ud800", "version": version},
        utf7=True,
    )
    assert response.status_code == 303
    with read_connection("feeds") as conn:
        assert store.item_history(conn, item.id)[-1]["comment"] in (None, "")


# --- the generated sweep ----------------------------------------------------------------

#: Strings that have broken web applications before.
HOSTILE = [
    "",
    "\x00",
    "\x07",
    "a\x00b",
    "\ud800",
    "\udfff",
    "\ufffe",
    "../",
    "../../etc/passwd",
    "..%2F..%2F",
    "%00",
    "%",
    "%%",
    "'",
    '"',
    "<script>alert(1)</script>",
    "&lt;img src=x onerror=alert(1)&gt;",
    "]]>",
    "=?utf-8?b?w6TDtsO8?=",
    "=?iso-8859-1?q?=E4?=",
    "0",
    "-1",
    "1e309",
    "NaN",
    HUGE,
    "9" * 5000,
    "9223372036854775808",
    "0001-01-01",
    "0001-01-01T00:00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31",
    "9999-12-31T23:59+14:00",
    "9999-12-31T23:59-14:00",
    "2027-02-30",
    "x" * 20_000,
    "ä" * 3000,
    "😀",
    "{}",
    '{"item": "a", "title": "' + "[" * 3000 + '"}',
    "[" * 5000,
    "http://127.0.0.1:99999/",
    "http://[::1/",
    "javascript:alert(1)",
    "/news/media/../../x",
    "news",
    "conference_report",
    "de",
    "en",
    "1",
]

hostile = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(st.characters(codec=None), max_size=30),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)

SWEEP = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

PUBLIC_PARAMS = ("type", "tag", "lang", "partners", "page", "since", "limit")
PUBLIC_PATHS = (
    "/news/",
    "/news/feed.rss",
    "/news/feed.atom",
    "/news/feed.json",
    "/news/events.ics",
    "/news/api/items",
)


#: The longest URL httpx sends (httpx._urlparse.MAX_URL_LENGTH): four of the longest
#: hostile values together pass it, and the client refuses before anything is sent.
LONGEST_URL = 65_536


def get_public(client: httpx.Client, path: str, params: dict[str, str]) -> None:
    no_server_error(client.get(f"{path}?{query(params)}", follow_redirects=True))


def has_surrogate(value: str) -> bool:
    """Only a form declared UTF-7 can carry lone surrogates to the server."""
    return any("\ud800" <= c <= "\udfff" for c in value)


def all_feeds_written(site: str) -> None:
    """Everything stored so far, published, still makes a valid feed in every format."""
    with engine("feeds").begin() as conn:
        conn.execute(
            store.items.update()
            .where(store.items.c.origin == store.NETWORK)
            .values(
                state=store.PUBLISHED, published_at=utcnow(), effective_at=None, expires_at=None
            )
        )
        store.mark_content_changed(conn, utcnow())
    for fmt in ("rss", "atom", "json"):
        response = httpx.get(f"{site}/news/feed.{fmt}?partners=1")
        assert response.status_code == 200, fmt
        if fmt != "json":
            parsed = feedparser.parse(response.content)
            assert not parsed.bozo, (fmt, parsed.get("bozo_exception"))
    for path in ("/news/events.ics", "/news/?partners=1", "/news/api/items?partners=1"):
        assert httpx.get(f"{site}{path}").status_code == 200, path


@pytest.mark.parametrize("path", PUBLIC_PATHS)
def test_every_hostile_string_in_every_public_parameter(site: str, path: str) -> None:
    content.transition(content.create_item({"title": "Da"}, "e").id, "publish", "a", "admin")
    with httpx.Client(base_url=site) as client:
        for name in PUBLIC_PARAMS:
            for value in HOSTILE:
                get_public(client, path, {name: value})


def test_every_hostile_string_in_every_item_field(site: str, admin: httpx.Client) -> None:
    csrf = token(admin)
    target = content.create_item({"title": "Ziel"}, "e")
    content.transition(target.id, "publish", "a", "admin")
    for name in ITEM_FIELDS:
        for value in HOSTILE:
            fields = {"csrf_token": csrf, "title": "Sweep", name: value}
            utf7 = has_surrogate(value)
            no_server_error(post_form(admin, "/news/admin/new", fields, utf7))
            no_server_error(post_form(admin, f"/news/admin/{target.id}", fields, utf7))
    all_feeds_written(site)


def test_every_hostile_string_in_every_admin_action(site: str, admin: httpx.Client) -> None:
    csrf = token(admin)
    item = content.create_item({"title": "Ziel"}, "e")
    fields = ("step", "comment", "version", "action", "revision", "hidden")
    for name in fields:
        for value in HOSTILE:
            for path in (
                f"/news/admin/{item.id}/workflow",
                f"/news/admin/{item.id}/revision",
                f"/news/admin/partner/{item.id}/hide",
            ):
                no_server_error(post_form(admin, path, {"csrf_token": csrf, name: value}))
    for value in HOSTILE:
        no_server_error(admin.get(f"/news/admin/?{query({'state': value, 'q': value})}"))
        no_server_error(admin.get(f"/news/{encoded(value)[:6000]}"))
        no_server_error(admin.get(f"/news/admin/{encoded(value)[:6000]}"))


def test_every_hostile_string_in_every_source_field(site: str, admin: httpx.Client) -> None:
    csrf = token(admin)
    for name in SOURCE_FIELDS:
        for value in HOSTILE:
            fields = {"csrf_token": csrf, "url": "https://partner.example.org/", name: value}
            no_server_error(post_form(admin, "/news/admin/sources", fields, has_surrogate(value)))
    no_server_error(admin.get("/news/admin/sources"))
    for source in partner_sources.list_all():
        for value in HOSTILE:
            path = f"/news/admin/sources/{source.id}"
            no_server_error(post_form(admin, path, {"csrf_token": csrf, "action": value}))


@SWEEP
@given(
    path=st.sampled_from(PUBLIC_PATHS),
    params=st.dictionaries(st.sampled_from(PUBLIC_PARAMS), hostile, max_size=4),
)
def test_sweep_public_queries(site: str, path: str, params: dict[str, str]) -> None:
    with httpx.Client(base_url=site) as client:
        assume(len(f"{client.base_url}{path}?{query(params)}") <= LONGEST_URL)
        get_public(client, path, params)


@SWEEP
@given(
    prefix=st.sampled_from(("/news/", "/news/media/", "/news/feed.", "/news/admin/")), name=hostile
)
def test_sweep_public_paths(site: str, prefix: str, name: str) -> None:
    response = httpx.get(f"{site}{prefix}{encoded(name)[:6000]}", follow_redirects=False)
    no_server_error(response)


ITEM_FIELDS = (
    "kind",
    "language",
    "title",
    "slug",
    "summary",
    "body",
    "tags",
    "lead_image_url",
    "lead_image_alt",
    "author",
    "event_start",
    "event_end",
    "event_location",
    "event_organiser",
    "effective_at",
    "expires_at",
    "translation_id",
)


@SWEEP
@given(
    fields=st.dictionaries(st.sampled_from(ITEM_FIELDS), hostile, max_size=6), utf7=st.booleans()
)
def test_sweep_item_forms(admin: httpx.Client, fields: dict[str, str], utf7: bool) -> None:
    csrf = token(admin)
    fields = {"title": "Sweep", **fields}
    no_server_error(post_form(admin, "/news/admin/new", {"csrf_token": csrf, **fields}, utf7))
    item = content.create_item({"title": "Ziel"}, "e")
    content.transition(item.id, "publish", "a", "admin")
    no_server_error(
        post_form(admin, f"/news/admin/{item.id}", {"csrf_token": csrf, **fields}, utf7)
    )
    no_server_error(admin.get(f"/news/admin/{item.id}"))
    no_server_error(admin.get("/news/admin/"))


@SWEEP
@given(
    step=hostile,
    comment=hostile,
    version=hostile,
    action=hostile,
    revision=hostile,
    hidden=hostile,
    state=hostile,
    q=hostile,
    utf7=st.booleans(),
)
def test_sweep_admin_actions(
    admin: httpx.Client,
    step: str,
    comment: str,
    version: str,
    action: str,
    revision: str,
    hidden: str,
    state: str,
    q: str,
    utf7: bool,
) -> None:
    csrf = token(admin)
    item = content.create_item({"title": "Ziel"}, "e")
    with engine("feeds").begin() as conn:
        partner_id = conn.execute(sa.select(sa.func.max(store.items.c.id))).scalar()
    fields = {
        "csrf_token": csrf,
        "step": step,
        "comment": comment,
        "version": version,
        "action": action,
        "revision": revision,
        "hidden": hidden,
    }
    for path in (
        f"/news/admin/{item.id}/workflow",
        f"/news/admin/{item.id}/revision",
        f"/news/admin/partner/{partner_id}/hide",
    ):
        no_server_error(post_form(admin, path, fields, utf7))
    no_server_error(admin.get(f"/news/admin/?{query({'state': state, 'q': q})}"))


SOURCE_FIELDS = ("url", "name", "selectors", "language", "interval")


@SWEEP
@given(
    fields=st.dictionaries(st.sampled_from(SOURCE_FIELDS), hostile, max_size=5),
    action=hostile,
    utf7=st.booleans(),
)
def test_sweep_source_forms(
    admin: httpx.Client, fields: dict[str, str], action: str, utf7: bool
) -> None:
    csrf = token(admin)
    no_server_error(post_form(admin, "/news/admin/sources", {"csrf_token": csrf, **fields}, utf7))
    no_server_error(admin.get("/news/admin/sources"))
    sources = partner_sources.list_all()
    if sources:
        path = f"/news/admin/sources/{sources[0].id}"
        sent = actors.fetch_source.send
        actors.fetch_source.send = lambda *a: None  # type: ignore[method-assign]
        try:
            no_server_error(post_form(admin, path, {"csrf_token": csrf, "action": action}, utf7))
        finally:
            actors.fetch_source.send = sent  # type: ignore[method-assign]
