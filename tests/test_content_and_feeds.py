"""Editors' content through the workflow, public pages, and the feeds built from it."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import feedparser
import httpx
import icalendar
import pytest

from services.feeds import content, item_fields
from services.feeds.demo import load_demo
from shared import tasks
from shared.database import utcnow
from tests.conftest import csrf_of, login

RFC822 = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$")


@pytest.fixture
def demo() -> int:
    return load_demo()


def test_demo_content_is_public_but_the_draft_is_not(site, demo):
    assert demo == 6
    listing = httpx.get(f"{site}/news/")
    assert listing.text.count('<article class="teaser"') == 5
    assert "Entwurf" not in listing.text
    home = httpx.get(f"{site}/")
    assert 'href="/news/"' in home.text
    assert httpx.get(f"{site}/news/entwurf-noch-nicht-veroeffentlicht").status_code == 404
    for fmt in ("rss", "atom", "json"):
        assert "Entwurf" not in httpx.get(f"{site}/news/feed.{fmt}").text
    page = httpx.get(f"{site}/news/netzwerktreffen-koeln-netzwerke-vor-ort-staerken")
    assert page.status_code == 200 and "Köln" in page.text
    assert 'rel="alternate" type="application/rss+xml"' in page.text


def test_rss_is_valid_and_stable(site, demo):
    response = httpx.get(f"{site}/news/feed.rss")
    assert response.headers["content-type"] == "application/rss+xml; charset=utf-8"
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    self_links = [link.href for link in parsed.feed.links if link.rel == "self"]
    assert self_links == [f"{site}/news/feed.rss"]
    ids = [entry.id for entry in parsed.entries]
    assert len(ids) == len(set(ids)) == 5
    xml = response.text
    assert xml.count('isPermaLink="true"') == 5
    for date in re.findall(r"<pubDate>(.*?)</pubDate>", xml):
        assert RFC822.match(date), date
    for title in re.findall(r"<title>(.*?)</title>", xml):
        assert "<" not in title and "&lt;" not in title
    # Unchanged content gives identical bytes and the same ETag.
    again = httpx.get(f"{site}/news/feed.rss")
    assert again.content == response.content and again.headers["etag"] == response.headers["etag"]


def test_atom_and_json_feed(site, demo):
    atom = httpx.get(f"{site}/news/feed.atom?lang=en")
    parsed = feedparser.parse(atom.content)
    assert not parsed.bozo and parsed.version == "atom10"
    assert [link.href for link in parsed.feed.links if link.rel == "self"] == [
        f"{site}/news/feed.atom?lang=en"
    ]
    assert {entry.title for entry in parsed.entries} == {
        "Migration and gender: conference in Catoira",
        "Online series for municipal integration work",
    }
    assert re.search(r"<updated>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00</updated>", atom.text)
    data = httpx.get(f"{site}/news/feed.json?type=conference_report").json()
    assert data["version"] == "https://jsonfeed.org/version/1.1"
    assert data["feed_url"] == f"{site}/news/feed.json?type=conference_report"
    assert {item["_kgi"]["kind"] for item in data["items"]} == {"conference_report"}
    assert all(item["id"].startswith(site) for item in data["items"])


def test_feed_filters_and_canonical_urls(site, demo):
    by_tag = feedparser.parse(httpx.get(f"{site}/news/feed.rss?tag=Netzwerk").content)
    assert {e.title for e in by_tag.entries} == {
        "Netzwerk offen für weitere Kommunen",
        "Netzwerktreffen Köln: Netzwerke vor Ort stärken",
    }
    redirect = httpx.get(f"{site}/news/feed.rss?lang=de&type=news&junk=1", follow_redirects=False)
    assert (
        redirect.status_code == 301
        and redirect.headers["location"] == "/news/feed.rss?type=news&lang=de"
    )
    page = httpx.get(f"{site}/news/?type=news&lang=de")
    assert f'href="{site}/news/feed.atom?type=news&amp;lang=de"' in page.text


def test_conditional_get_and_invalidation_on_publish(site, demo, monkeypatch):
    from services.feeds import public

    renders = []
    original = public.render_feed
    monkeypatch.setattr(public, "render_feed", lambda *a: renders.append(a) or original(*a))
    first = httpx.get(f"{site}/news/feed.atom")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert first.headers["cache-control"].startswith("public")
    assert httpx.get(f"{site}/news/feed.atom", headers={"if-none-match": etag}).status_code == 304
    assert (
        httpx.get(f"{site}/news/feed.atom", headers={"if-modified-since": modified}).status_code
        == 304
    )
    for _ in range(5):
        httpx.get(f"{site}/news/feed.atom")
    assert len(renders) == 1  # rendered once, then served from the cache

    item = content.create_item(
        {"title": "Neue Förderrichtlinie", "summary": "Kurz", "tags": "Förderung"}, "ed"
    )
    assert len(renders) == 1  # a draft changes nothing public
    content.transition(item.id, "publish", "admin@example.org", "admin")
    fresh = httpx.get(f"{site}/news/feed.atom", headers={"if-none-match": etag})
    assert fresh.status_code == 200 and fresh.headers["etag"] != etag
    assert "Neue Förderrichtlinie" in fresh.text
    assert len(renders) == 2


def test_workflow_roles_history_and_events(site):
    item = content.create_item(
        {
            "title": "Tagung in Leipzig",
            "kind": "conference_report",
            "event_start": "2027-03-01",
            "event_end": "2027-03-02",
            "event_location": "Leipzig",
        },
        "editor@example.org",
    )
    assert item.state == "draft"
    with pytest.raises(content.WorkflowError):
        content.transition(item.id, "publish", "editor@example.org", "editor")
    content.transition(item.id, "submit", "editor@example.org", "editor", "Bitte prüfen")
    with pytest.raises(content.WorkflowError):
        content.transition(item.id, "retract", "admin@example.org", "admin")
    published = content.transition(item.id, "publish", "admin@example.org", "admin")
    assert published.state == "published" and published.published_at is not None
    retracted = content.transition(
        item.id, "retract", "admin@example.org", "admin", "Termin verschoben"
    )
    assert retracted.state == "retracted"
    names = [e["event"] for e in tasks.recent_events() if e.get("id") == item.id]
    assert names == ["content.published", "content.retracted"]
    from services.feeds import store
    from shared.database import engine

    with engine("feeds").connect() as conn:
        steps = [
            (h["actor"], h["action"], h["to_state"], h["comment"])
            for h in store.item_history(conn, item.id)
        ]
    assert steps == [
        ("editor@example.org", "created", "draft", None),
        ("editor@example.org", "submit", "pending", "Bitte prüfen"),
        ("admin@example.org", "publish", "published", None),
        ("admin@example.org", "retract", "retracted", "Termin verschoben"),
    ]
    assert "Tagung in Leipzig" not in httpx.get(f"{site}/news/feed.rss").text


def test_effective_and_expiry_window(site):
    now = utcnow()
    future = content.create_item(
        {"title": "Noch nicht", "effective_at": (now + timedelta(days=2)).isoformat()}, "e"
    )
    past = content.create_item(
        {"title": "Schon vorbei", "expires_at": (now - timedelta(days=1)).isoformat()}, "e"
    )
    current = content.create_item(
        {
            "title": "Jetzt sichtbar",
            "effective_at": (now - timedelta(hours=1)).isoformat(),
            "expires_at": (now + timedelta(days=1)).isoformat(),
        },
        "e",
    )
    for item in (future, past, current):
        content.transition(item.id, "publish", "a", "admin")
    feed = httpx.get(f"{site}/news/feed.rss").text
    assert "Jetzt sichtbar" in feed and "Noch nicht" not in feed and "Schon vorbei" not in feed
    assert httpx.get(f"{site}/news/{future.slug}").status_code == 404


def test_item_html_is_sanitised_and_titles_are_text():
    item = content.create_item(
        {
            "title": "<b>Fett</b> & <script>alert(1)</script>Titel",
            "body": "".join(
                [
                    '<p onclick="alert(1)">Hallo</p><script>alert(2)</script>',
                    '<a href="javascript:alert(3)">x</a><form action="/x"><input></form>',
                    '<style>p{}</style><iframe src="https://e.example"></iframe>',
                    '<a href="https://ok.example/">gut</a>',
                ]
            ),
        },
        "e",
    )
    assert item.title == "Fett & Titel"
    assert (
        "script" not in item.body and "onclick" not in item.body and "javascript" not in item.body
    )
    assert "<form" not in item.body and "<style" not in item.body and "<iframe" not in item.body
    assert '<a href="https://ok.example/" rel="noopener noreferrer">gut</a>' in item.body
    with pytest.raises(item_fields.InvalidItem):
        content.create_item(
            {"title": "Bild", "lead_image_url": "javascript:alert(1)", "lead_image_alt": "x"}, "e"
        )
    with pytest.raises(item_fields.InvalidItem):
        content.create_item({"title": "Bild", "lead_image_url": "https://img.example/a.jpg"}, "e")


def test_calendar_feed(site, demo):
    response = httpx.get(f"{site}/news/events.ics")
    assert response.headers["content-type"].startswith("text/calendar")
    calendar = icalendar.Calendar.from_ical(response.content)
    events_ = {str(e["summary"]): e for e in calendar.walk("VEVENT")}
    cologne = events_["Netzwerktreffen Köln: Netzwerke vor Ort stärken"]
    assert cologne.decoded("dtstart").isoformat() == "2016-11-14"
    assert cologne.decoded("dtend").isoformat() == "2016-11-16"  # exclusive end
    assert str(cologne["location"]) == "Köln"
    assert len(events_) == 2


def test_translations_link_each_other(site):
    german = content.create_item({"title": "Netzwerktag", "language": "de"}, "e")
    english = content.create_item(
        {"title": "Network day", "language": "en", "translation_id": german.id}, "e"
    )
    for item in (german, english):
        content.transition(item.id, "publish", "a", "admin")
    page = httpx.get(f"{site}/news/{german.slug}").text
    assert f'hreflang="en" href="{site}/news/{english.slug}"' in page


def version_in(page: httpx.Response) -> str:
    """The item version an editor page shows (workflow steps apply to it)."""
    match = re.search(r'name="version" value="([^"]+)"', page.text)
    assert match, "page has no item version"
    return match.group(1)


def test_admin_pages_create_submit_and_publish(site):
    editor = login(site, "redaktion@example.org", role="editor")
    form = editor.get("/news/admin/new")
    assert form.status_code == 200
    bad = editor.post("/news/admin/new", data={"csrf_token": csrf_of(form.text), "title": ""})
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text
    created = editor.post(
        "/news/admin/new",
        data={
            "csrf_token": csrf_of(form.text),
            "title": "Jugendbegegnung 2027",
            "kind": "news",
            "language": "de",
            "summary": "Anmeldung offen",
            "body": "<p>Text</p>",
            "tags": "Begegnung, Austausch",
        },
    )
    assert created.status_code == 303
    item_url = created.headers["location"].split("?")[0]
    page = editor.get(item_url)
    assert (
        'data-state="draft"' in page.text
        and 'value="submit"' in page.text
        and 'value="publish"' not in page.text
    )
    submitted = editor.post(
        f"{item_url}/workflow",
        data={"csrf_token": csrf_of(page.text), "step": "submit", "version": version_in(page)},
    )
    assert submitted.status_code == 303
    page = editor.get(item_url)
    refused = editor.post(
        f"{item_url}/workflow",
        data={"csrf_token": csrf_of(page.text), "step": "publish", "version": version_in(page)},
    )
    assert refused.status_code == 403
    admin = login(site, "chefin@example.org", role="admin")
    page = admin.get(item_url)
    assert 'value="publish"' in page.text
    published = admin.post(
        f"{item_url}/workflow",
        data={"csrf_token": csrf_of(page.text), "step": "publish", "version": version_in(page)},
    )
    assert published.status_code == 303
    assert "Jugendbegegnung 2027" in httpx.get(f"{site}/news/feed.json").text
    history = admin.get(item_url).text
    assert "redaktion@example.org" in history and "chefin@example.org" in history
    assert httpx.get(f"{site}/news/admin/", follow_redirects=False).status_code == 303
    json.loads(httpx.get(f"{site}/news/feed.json").text)


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82"
)


def test_lead_image_upload(site):
    admin = login(site)
    form = admin.get("/news/admin/new")
    fields = {
        "csrf_token": csrf_of(form.text),
        "title": "Mit Bild",
        "kind": "news",
        "language": "de",
        "lead_image_alt": "Jugendliche beim Austausch",
    }
    refused = admin.post(
        "/news/admin/new", data=fields, files={"lead_image_file": ("x.png", b"<svg/>", "image/png")}
    )
    assert refused.status_code == 422 and "PNG-, JPEG-" in refused.text
    created = admin.post(
        "/news/admin/new", data=fields, files={"lead_image_file": ("a.png", PNG, "image/png")}
    )
    assert created.status_code == 303
    page = admin.get(created.headers["location"])
    image = re.search(
        r'name="lead_image_url" type="text" value="(/news/media/[0-9a-f]+\.png)"', page.text
    ).group(1)
    served = httpx.get(f"{site}{image}")
    assert served.content == PNG and served.headers["content-type"] == "image/png"
    assert httpx.get(f"{site}/news/media/..%2Fsecret_key").status_code == 404


def test_feeds_are_paged_with_links(site, monkeypatch):
    from services.feeds import syndication

    monkeypatch.setattr(syndication, "FEED_PAGE_SIZE", 2)
    for n in range(5):
        item = content.create_item({"title": f"Meldung {n}"}, "e")
        content.transition(item.id, "publish", "a", "admin")
    first = feedparser.parse(httpx.get(f"{site}/news/feed.rss").content)
    assert not first.bozo and len(first.entries) == 2
    links = {link.rel: link.href for link in first.feed.links}
    assert (
        links["self"] == f"{site}/news/feed.rss" and links["next"] == f"{site}/news/feed.rss?page=2"
    )
    assert first.feed.link == f"{site}/news/"  # the channel's own <link> stays the site
    last = feedparser.parse(httpx.get(f"{site}/news/feed.atom?page=3").content)
    links = {link.rel: link.href for link in last.feed.links}
    assert len(last.entries) == 1 and "next" not in links and links["previous"].endswith("page=2")
    data = httpx.get(f"{site}/news/feed.json?page=2").json()
    assert data["next_url"] == f"{site}/news/feed.json?page=3"


@pytest.mark.parametrize(
    "url",
    [
        "/news/media/../../x",
        "/news/media/../../../var/secret_key",
        "/news/media/",
        "/news/media/abc.png",
        "/etc/passwd",
        "//evil.example/x.png",
        "data:image/png;base64,AAAA",
        "https://img.example/a b.png",
    ],
)
def test_lead_image_urls_are_http_or_our_media(url):
    with pytest.raises(item_fields.InvalidItem, match="image"):
        content.create_item({"title": "Bild", "lead_image_url": url, "lead_image_alt": "x"}, "e")


def test_lead_image_urls_that_are_accepted():
    for url in (
        "https://img.example/a.jpg",
        "http://img.example/a.jpg",
        "/news/media/0123456789abcdef0123456789abcdef.png",
    ):
        item = content.create_item(
            {"title": "Bild", "lead_image_url": url, "lead_image_alt": "x"}, "e"
        )
        assert item.lead_image_url == url


@pytest.mark.parametrize(
    "data,kind",
    [
        (PNG, "image/png"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "image/jpeg"),
        (b"GIF89a" + b"\x00" * 20, "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 20, "image/webp"),
    ],
)
def test_media_are_served_with_their_type_and_nosniff(site, data, kind):
    from services.feeds import media

    path = media.save_image(data)
    served = httpx.get(f"{site}{path}")
    assert served.status_code == 200 and served.content == data
    assert served.headers["content-type"] == kind
    assert served.headers["x-content-type-options"] == "nosniff"
