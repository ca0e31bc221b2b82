"""Aggregation of partner sources served by a real HTTP server on loopback: every fixture
case, politeness (conditional GET, Retry-After, backoff, limits) and safety."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import feedparser
import httpx
import pytest
import sqlalchemy as sa

from services.feeds import aggregate, fetch, partner_sources, store
from services.feeds.store import items
from shared.database import engine, utcnow
from tests.conftest import csrf_of, login, run_kgi, wait_for
from tests.partner_server import Resource

PAGE_SELECTORS = {
    "item": "article.teaser",
    "title": ".teaser__title a",
    "date": "time.teaser__date",
    "summary": ".teaser__text",
}


def stored(source_id: int) -> list[store.Item]:
    with engine("feeds").connect() as conn:
        rows = conn.execute(
            sa.select(items).where(items.c.source_id == source_id).order_by(items.c.id)
        )
        return [store.item_from_row(row) for row in rows]


def source(source_id: int) -> store.Source:
    with engine("feeds").connect() as conn:
        found = store.get_source(conn, source_id)
    assert found is not None
    return found


def add_and_fetch(url: str, **options) -> tuple[store.Source, aggregate.FetchReport]:
    added = partner_sources.add_source(url, **options)
    return added, aggregate.fetch_source(added.id)


def test_rss_with_content_encoded_and_relative_urls(partner):
    url = partner.serve_fixture("/aktuelles/rss.xml", "feeds/partner-news.rss")
    added, report = add_and_fetch(url, name="Fachstelle")
    assert (report.status, report.new) == ("ok", 3)
    first = stored(added.id)[0]
    assert first.title == "Netzwerktreffen in Köln: Netzwerke vor Ort stärken"
    assert first.language == "de" and first.tags == ["Netzwerk", "Kommunen"]
    assert f'src="{partner.url("/bilder/koeln.jpg")}"' in first.body
    assert f'href="{partner.url("/dokumentation/koeln")}"' in first.body
    assert first.published_at.isoformat() == "2026-11-16T08:00:00+00:00"
    assert first.link == "https://partner.example.org/aktuelles/netzwerktreffen-koeln"
    user_agent = partner.requests[0][1]["User-Agent"]
    assert user_agent.startswith("KGI-Infobrief-Aggregator/")


def test_atom_xhtml_keeps_language_and_picks_the_right_link(partner):
    url = partner.serve_fixture(
        "/feed.atom", "feeds/adult-learning-blog.atom", "application/atom+xml"
    )
    added, report = add_and_fetch(url)
    assert report.new == 2
    post = stored(added.id)[0]
    assert post.language == "en"
    assert post.link == "https://blog.example.eu/posts/local-integration"
    assert "<em>Cambridge</em>" in post.body
    assert post.published_at.isoformat() == "2019-11-05T07:00:00+00:00"
    assert (
        stored(added.id)[1].summary
        == "Eight to ten online events of about 2.5 hours each, up to 50 participants per event."
    )


def test_rss1_and_latin1_without_guids(partner):
    rdf, report = add_and_fetch(
        partner.serve_fixture("/rss", "feeds/rss1.rdf", "application/rdf+xml")
    )
    assert (
        report.new == 2
        and stored(rdf.id)[0].published_at.isoformat() == "2026-09-14T09:00:00+00:00"
    )
    latin, report = add_and_fetch(partner.serve_fixture("/sjr.rss", "feeds/latin1-no-guid.rss"))
    assert report.new == 2
    entries = stored(latin.id)
    assert entries[0].title == "Jugendbegegnung mit der Partnerstadt: Anmeldung geöffnet"
    assert entries[1].title == "Workcamp in Südeuropa: Bericht"
    assert entries[1].link == partner.url("/news?id=12")  # relative link resolved
    assert {e.guid.split(":")[0] for e in entries} == {"link"}
    # Fetching again adds nothing: dedup by link.
    assert aggregate.fetch_source(latin.id).new == 0


def test_hostile_feed_is_defused(site, partner):
    added, report = add_and_fetch(partner.serve_fixture("/evil.rss", "feeds/hostile.rss"))
    assert report.status == "ok"
    entries = stored(added.id)
    assert len(entries) == 3  # two entries share a GUID but stay two
    assert {e.title for e in entries} == {"Click me", "Duplicate guid A", "Duplicate guid B"}
    for entry in entries:
        for bad in (
            "<script",
            "onclick",
            "onerror",
            "javascript:",
            "<form",
            "<style",
            "<iframe",
            "<input",
        ):
            assert bad not in entry.body.lower()
    for path in (
        "/news/?partners=1",
        "/news/feed.rss?partners=1",
        "/news/feed.atom?partners=1",
        "/news/feed.json?partners=1",
    ):
        body = httpx.get(f"{site}{path}").text.lower()
        for bad in (
            "<script",
            "onclick=",
            "onerror=",
            "javascript:alert",
            "evil.example.net/steal",
            'name="password"',
            "<iframe",
            "display:none",
        ):
            assert bad not in body, (path, bad)
    page = httpx.get(f"{site}/news/{entries[0].slug}").text
    assert "alert(" not in page


def test_malformed_feed_is_read_leniently_and_the_problem_recorded(partner):
    added, report = add_and_fetch(partner.serve_fixture("/broken.rss", "feeds/malformed.rss"))
    assert report.status == "warning" and report.new == 2
    assert "not well-formed" in source(added.id).last_error


def test_entity_bomb_is_an_error_not_a_crash(partner):
    added, report = add_and_fetch(partner.serve_fixture("/bomb.xml", "feeds/billion-laughs.xml"))
    assert report.status == "error"
    recorded = source(added.id)
    assert recorded.last_status == "error" and "entity" in recorded.last_error
    assert recorded.failures == 1 and stored(added.id) == []


def test_feedless_page_read_with_selectors(partner):
    url = partner.serve_fixture(
        "/presse/", "pages/news-without-feed.html", "text/html; charset=utf-8"
    )
    added, report = add_and_fetch(url, name="Kreisjugendamt", selectors=PAGE_SELECTORS)
    assert added.kind == "page" and report.new == 3
    entries = stored(added.id)
    assert [e.link for e in entries] == [
        partner.url("/presse/2026/servicestelle-eroeffnet"),
        partner.url("/presse/2026/tandem-partnerkommune"),
        "https://andere-seite.example.org/bericht",
    ]
    assert entries[0].published_at.isoformat() == "2026-11-03T00:00:00+00:00"
    assert entries[0].summary.startswith("Die neue Servicestelle")
    assert entries[0].language == "de"


def test_bad_selectors_and_urls_are_refused():
    with pytest.raises(partner_sources.InvalidSource, match="required"):
        partner_sources.add_source("https://example.org/", selectors={"item": "article"})
    with pytest.raises(partner_sources.InvalidSource, match="not valid CSS"):
        partner_sources.add_source(
            "https://example.org/", selectors={"item": "article[", "title": "h2"}
        )
    with pytest.raises(partner_sources.InvalidSource, match="JSON"):
        partner_sources.add_source("https://example.org/", selectors="{nope")
    with pytest.raises(partner_sources.InvalidSource, match="http"):
        partner_sources.add_source("ftp://example.org/feed")


def test_conditional_get_and_updates_in_place(partner):
    url = partner.serve_fixture("/cond.rss", "feeds/partner-news.rss", etag='"v1"')
    added, _ = add_and_fetch(url)
    report = aggregate.fetch_source(added.id)
    assert report.status == "not_modified"
    assert partner.requests[-1][1]["If-None-Match"] == '"v1"'
    changed = partner.resources["/cond.rss"].body.replace(
        b"Termine f\xc3\xbcr 2027", b"Termine 2027 ge\xc3\xa4ndert"
    )
    partner.resources["/cond.rss"] = Resource(changed, etag='"v2"')
    report = aggregate.fetch_source(added.id)
    assert (report.new, report.updated) == (0, 1)
    assert "Termine 2027 geändert" in [e.title for e in stored(added.id)][1]
    assert len(stored(added.id)) == 3


def test_retry_after_and_backoff(partner):
    partner.resources["/busy"] = Resource(b"", status=429, headers={"Retry-After": "600"})
    added, report = add_and_fetch(partner.url("/busy"))
    assert report.status == "error" and "429" in report.message
    wait = source(added.id).next_fetch_at - utcnow()
    assert timedelta(seconds=590) < wait <= timedelta(seconds=600)

    partner.resources["/down"] = Resource(b"oops", status=500)
    down, _ = add_and_fetch(partner.url("/down"), interval_minutes=10)
    aggregate.fetch_source(down.id)
    recorded = source(down.id)
    assert recorded.failures == 2 and "HTTP 500" in recorded.last_error
    assert recorded.next_fetch_at - utcnow() > timedelta(minutes=39)  # 10 min * 2**2


def test_size_cap_redirect_limit_and_timeout(partner, monkeypatch):
    monkeypatch.setattr(fetch, "MAX_BODY_BYTES", 1000)
    partner.resources["/huge"] = Resource(b"<rss>" + b"x" * 5000 + b"</rss>")
    _, report = add_and_fetch(partner.url("/huge"))
    assert "larger than" in report.message
    for n in range(10):
        partner.resources[f"/loop{n}"] = Resource(status=302, headers={"Location": f"/loop{n + 1}"})
    _, report = add_and_fetch(partner.url("/loop0"))
    assert "redirects" in report.message
    monkeypatch.setattr(fetch, "READ_TIMEOUT_SECONDS", 0.3)
    partner.resources["/slow"] = Resource(b"<rss/>", delay=2)
    _, report = add_and_fetch(partner.url("/slow"))
    assert "in time" in report.message


def test_internal_addresses_are_refused_on_every_hop(partner):
    _, report = add_and_fetch(f"http://127.0.0.2:{partner.port}/feed")
    assert "internal address" in report.message
    partner.resources["/to-metadata"] = Resource(
        status=302, headers={"Location": "http://169.254.169.254/latest"}
    )
    _, report = add_and_fetch(partner.url("/to-metadata"))
    assert "internal address 169.254.169.254" in report.message
    assert all(path != "/latest" for path, _ in partner.requests)


def test_partner_items_are_marked_filterable_and_can_be_hidden(site, partner):
    added, _ = add_and_fetch(
        partner.serve_fixture("/aktuelles/rss.xml", "feeds/partner-news.rss"), name="Fachstelle"
    )
    assert "Netzwerktreffen in Köln" not in httpx.get(f"{site}/news/feed.rss").text
    with_partners = feedparser.parse(httpx.get(f"{site}/news/feed.rss?partners=1").content)
    assert len(with_partners.entries) == 3
    assert all(not e.guidislink for e in with_partners.entries)
    assert (
        with_partners.entries[0].link
        == "https://partner.example.org/aktuelles/netzwerktreffen-koeln"
    )
    listing = httpx.get(f"{site}/news/?partners=1").text
    assert "Fachstelle" in listing
    entry = stored(added.id)[0]
    page = httpx.get(f"{site}/news/{entry.slug}").text
    assert "Fachstelle" in page and entry.link in page
    admin = login(site)
    overview = admin.get("/news/admin/")
    admin.post(
        f"/news/admin/partner/{entry.id}/hide",
        data={"csrf_token": csrf_of(overview.text), "hidden": "1"},
    )
    assert len(feedparser.parse(httpx.get(f"{site}/news/feed.rss?partners=1").content).entries) == 2


def test_command_line_add_list_fetch(partner):
    url = partner.serve_fixture("/presse/", "pages/news-without-feed.html", "text/html")
    added = run_kgi(
        "sources", "add", url, "--name", "Kreis", "--selectors", json.dumps(PAGE_SELECTORS)
    )
    assert added.returncode == 0, added.stderr
    assert run_kgi("sources", "add", "nonsense").returncode == 1
    fetched = run_kgi("sources", "fetch")
    assert fetched.returncode == 0 and "3 new" in fetched.stdout
    listing = run_kgi("sources", "list")
    assert "Kreis" in listing.stdout and "3 items" in listing.stdout and "ok" in listing.stdout


def test_scheduled_fetch_through_the_worker(site, partner, worker):
    url = partner.serve_fixture("/sched.rss", "feeds/rss1.rdf", "application/rdf+xml")
    added = partner_sources.add_source(url, interval_minutes=15)
    from kgi.scheduler import tick

    tick()
    wait_for(lambda: len(stored(added.id)) == 2, message="scheduled aggregation")
    assert source(added.id).next_fetch_at > utcnow() + timedelta(minutes=14)
    assert aggregate.due_source_ids() == []


def test_sources_admin_page(site, partner):
    admin = login(site)
    page = admin.get("/news/admin/sources")
    response = admin.post(
        "/news/admin/sources",
        data={
            "csrf_token": csrf_of(page.text),
            "url": partner.url("/x.rss"),
            "name": "X",
            "interval": "30",
        },
    )
    assert response.status_code == 303
    refused = admin.post(
        "/news/admin/sources", data={"csrf_token": csrf_of(page.text), "url": "nope"}
    )
    assert refused.status_code == 422
    listing = admin.get("/news/admin/sources")
    assert "X" in listing.text and 'data-status="new"' in listing.text
    source_id = partner_sources.list_all()[0].id
    admin.post(
        f"/news/admin/sources/{source_id}",
        data={"csrf_token": csrf_of(page.text), "action": "pause"},
    )
    assert 'data-status="paused"' in admin.get("/news/admin/sources").text
    assert aggregate.fetch_source(source_id).status == "paused"


def test_per_host_concurrency_limit(partner):
    from concurrent.futures import ThreadPoolExecutor

    body = (Path(__file__).parent / "fixtures" / "feeds" / "rss1.rdf").read_bytes()
    ids = []
    for n in range(6):
        partner.resources[f"/slow{n}.rdf"] = Resource(body, "application/rdf+xml", delay=0.4)
        ids.append(partner_sources.add_source(partner.url(f"/slow{n}.rdf")).id)
    with ThreadPoolExecutor(6) as pool:
        reports = list(pool.map(aggregate.fetch_source, ids))
    assert all(r.status == "ok" for r in reports)
    assert partner.most_in_flight == fetch.PER_HOST_CONCURRENCY


EMPTY_RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Leer</title>
<link>https://partner.example.org/</link><description>Noch nichts</description></channel></rss>"""

EMPTY_ATOM = b"""<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">
<title>Leer</title><id>urn:x</id><updated>2026-01-01T00:00:00Z</updated></feed>"""


@pytest.mark.parametrize("body", [EMPTY_RSS, EMPTY_ATOM])
def test_an_empty_feed_is_fine_not_an_error(partner, body):
    partner.resources["/empty"] = Resource(body)
    added, report = add_and_fetch(partner.url("/empty"))
    assert (report.status, report.new) == ("ok", 0)
    recorded = source(added.id)
    assert recorded.last_status == "ok" and recorded.last_error is None
    assert recorded.failures == 0
    assert recorded.next_fetch_at - utcnow() <= timedelta(minutes=added.interval_minutes)


def test_a_page_that_is_no_feed_is_still_an_error(partner):
    partner.resources["/html"] = Resource(b"<html><body>Hallo</body></html>", "text/html")
    _, report = add_and_fetch(partner.url("/html"))
    assert report.status == "error"


def test_not_modified_keeps_the_last_warning(partner):
    body = (Path(__file__).parent / "fixtures" / "feeds" / "malformed.rss").read_bytes()
    partner.resources["/broken"] = Resource(body, etag='"b1"')
    added, report = add_and_fetch(partner.url("/broken"))
    assert report.status == "warning"
    again = aggregate.fetch_source(added.id)
    assert again.status == "not_modified"
    recorded = source(added.id)
    assert recorded.last_status == "warning" and "not well-formed" in recorded.last_error
