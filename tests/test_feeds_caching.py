"""Caching headers that tell feed readers the truth: Last-Modified never goes backwards,
weak ETags (responses are gzip-compressed), 404 past the last page; and what a reader
needs per item: its language, and who wrote a partner item."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import feedparser
import httpx
import pytest
from lxml import etree

from services.feeds import aggregate, cache, content, listing, partner_sources, store
from services.feeds.parse import Entry
from shared.database import engine, utcnow
from shared.redis_client import get_redis
from tests.conftest import csrf_of, login, run_kgi, wait_for

FEEDS = ("rss", "atom", "json")


def publish(title: str, **fields: str) -> store.Item:
    item = content.create_item({"title": title, **fields}, "editor@example.org")
    return content.transition(item.id, "publish", "admin@example.org", "admin")


def next_second() -> None:
    """HTTP dates have one-second resolution: let the clock move on to the next second."""
    time.sleep(1 - time.time() % 1 + 0.05)


def modified(response: httpx.Response) -> datetime:
    return parsedate_to_datetime(response.headers["last-modified"])


@pytest.mark.parametrize("fmt", FEEDS)
def test_last_modified_moves_forward_when_the_newest_item_is_retracted(site: str, fmt: str) -> None:
    publish("Älter")
    next_second()
    newest = publish("Neuer")
    first = httpx.get(f"{site}/news/feed.{fmt}")
    next_second()
    content.transition(newest.id, "retract", "admin@example.org", "admin")
    again = httpx.get(
        f"{site}/news/feed.{fmt}", headers={"if-modified-since": first.headers["last-modified"]}
    )
    assert again.status_code == 200 and "Neuer" not in again.text
    assert modified(again) > modified(first)
    assert modified(again) <= utcnow()
    # The moment comes from the database: it survives a Redis flush and a new process.
    get_redis().flushdb()
    cache.RENDERINGS.clear()
    assert (
        httpx.get(f"{site}/news/feed.{fmt}").headers["last-modified"]
        == (again.headers["last-modified"])
    )


def test_feeds_follow_the_database_when_redis_loses_its_keys(site: str) -> None:
    """Finding 5 of issue 10: the cache key was a Redis counter, which a flush (or an AOF
    that lost its last second) sets back, so feeds kept serving a copy without an item the
    list showed. After every publish, with Redis emptied in between, all three formats
    and the news page show the new item."""
    for title in ("Erste Meldung", "Zweite Meldung", "Dritte Meldung"):
        get_redis().flushdb()
        publish(title)
        assert title in httpx.get(f"{site}/news/").text
        for fmt in FEEDS:
            assert title in httpx.get(f"{site}/news/feed.{fmt}").text, (title, fmt)


def test_a_change_by_another_process_is_served_within_the_trusted_second(site: str) -> None:
    """Feeds are answered from memory while the content version read last is trusted
    (a second). A change this process makes is served at once (publish above); one made
    by another process, here `kgi demo` loading items, within that second."""
    assert "Werkstattgespräche" not in httpx.get(f"{site}/news/feed.atom").text
    assert httpx.get(f"{site}/news/feed.atom").status_code == 200  # answered from memory
    loaded = run_kgi("demo")
    assert loaded.returncode == 0, loaded.stderr
    seen = time.monotonic()
    wait_for(
        lambda: "Werkstattgespräche" in httpx.get(f"{site}/news/feed.atom").text,
        timeout=5,
        message="the other process's items in the feed",
    )
    assert time.monotonic() - seen <= cache.RENDERINGS.trust_seconds + 0.5


def test_hiding_a_partner_item_moves_last_modified_forward(site: str) -> None:
    source = partner_sources.add_source("https://partner.example.org/feed", name="Partner")
    with engine("feeds").begin() as conn:
        aggregate.store_entries(
            conn, source, [Entry(title="Partnernews", link="https://partner.example.org/1")], "de"
        )
        store.mark_content_changed(conn, utcnow())
    first = httpx.get(f"{site}/news/feed.atom?partners=1")
    assert "Partnernews" in first.text
    next_second()
    item = listing.partner_items()[0]
    admin = login(site)
    admin.post(
        f"/news/admin/partner/{item.id}/hide",
        data={"csrf_token": csrf_of(admin.get("/news/admin/").text), "hidden": "1"},
    )
    again = httpx.get(
        f"{site}/news/feed.atom?partners=1",
        headers={"if-modified-since": first.headers["last-modified"]},
    )
    assert again.status_code == 200 and "Partnernews" not in again.text


def test_an_expiry_that_passes_moves_last_modified_forward(site: str) -> None:
    publish("Bleibt")
    publish("Läuft ab", expires_at=(utcnow() + timedelta(seconds=2)).isoformat())
    first = httpx.get(f"{site}/news/feed.rss")
    assert "Läuft ab" in first.text
    time.sleep(2.5)
    again = httpx.get(
        f"{site}/news/feed.rss", headers={"if-modified-since": first.headers["last-modified"]}
    )
    assert again.status_code == 200 and "Läuft ab" not in again.text
    assert modified(again) > modified(first)


@pytest.mark.parametrize("fmt", (*FEEDS, "ics"))
def test_etags_are_weak_and_compare_weakly(site: str, fmt: str) -> None:
    publish("Eins", kind="conference_report", event_start="2027-01-01")
    path = "/news/events.ics" if fmt == "ics" else f"/news/feed.{fmt}"
    response = httpx.get(f"{site}{path}", headers={"accept-encoding": "gzip"})
    etag = response.headers["etag"]
    assert etag.startswith('W/"') and etag.endswith('"')
    for sent in (etag, etag[2:]):
        assert httpx.get(f"{site}{path}", headers={"if-none-match": sent}).status_code == 304
    unchanged = httpx.get(
        f"{site}{path}", headers={"if-modified-since": response.headers["last-modified"]}
    )
    assert unchanged.status_code == 304


@pytest.mark.parametrize("fmt", FEEDS)
def test_a_page_past_the_last_is_not_found(site: str, fmt: str) -> None:
    assert httpx.get(f"{site}/news/feed.{fmt}").status_code == 200  # empty, but it exists
    publish("Einzige")
    assert httpx.get(f"{site}/news/feed.{fmt}").status_code == 200
    assert httpx.get(f"{site}/news/feed.{fmt}?page=2").status_code == 404
    assert httpx.get(f"{site}/news/feed.{fmt}?page=99999999999999999999").status_code == 404


def test_the_news_page_past_the_last_is_not_found(site: str) -> None:
    assert httpx.get(f"{site}/news/").status_code == 200
    publish("Einzige")
    assert httpx.get(f"{site}/news/?page=1").status_code == 200
    for page in ("2", "0", "-1", "abc", "99999999999999999999"):
        assert httpx.get(f"{site}/news/?page={page}").status_code == 404, page


def test_each_item_carries_its_language(site: str) -> None:
    publish("Deutsch", language="de")
    publish("English", language="en")
    rss = etree.fromstring(httpx.get(f"{site}/news/feed.rss").content)
    languages = {
        item.findtext("title"): item.findtext("{http://purl.org/dc/elements/1.1/}language")
        for item in rss.iter("item")
    }
    assert languages == {"Deutsch": "de", "English": "en"}
    atom = feedparser.parse(httpx.get(f"{site}/news/feed.atom").content)
    assert {e.title: e.title_detail.language for e in atom.entries} == {
        "Deutsch": "de",
        "English": "en",
    }
    data = httpx.get(f"{site}/news/feed.json").json()
    assert {i["title"]: i["language"] for i in data["items"]} == {"Deutsch": "de", "English": "en"}


def test_partner_items_name_their_author_in_json_feed(site: str) -> None:
    source = partner_sources.add_source("https://partner.example.org/feed", name="Fachstelle Süd")
    with engine("feeds").begin() as conn:
        aggregate.store_entries(
            conn, source, [Entry(title="Von draußen", link="https://partner.example.org/1")], "de"
        )
        store.mark_content_changed(conn, utcnow())
    item = httpx.get(f"{site}/news/feed.json?partners=1").json()["items"][0]
    assert item["authors"] == [{"name": "Fachstelle Süd"}]
    rss = feedparser.parse(httpx.get(f"{site}/news/feed.rss?partners=1").content)
    assert rss.entries[0].author == "Fachstelle Süd"


def test_public_pages_are_kept_for_readers_and_fresh_for_editors(site: str) -> None:
    """The news list and item pages are rendered once per content version, language and
    URL for visitors who are not logged in; a change is on them at once, an item that
    expires leaves them when it expires, and an editor always gets a page of their own."""
    item = publish("Seite im Speicher")
    url = f"{site}/news/"
    assert "Seite im Speicher" in httpx.get(url).text
    # Kept per language: the English page is another rendering, not the German one.
    german, english = httpx.get(url), httpx.get(url + "?lang=en")
    assert '<html lang="de">' in german.text
    assert '<html lang="en">' in english.text
    # A change this process makes is on the kept page at once.
    content.transition(item.id, "retract", "admin@example.org", "admin")
    assert "Seite im Speicher" not in httpx.get(url).text
    # An expiry date that passes takes the item off without any change being made.
    expiring = publish("Läuft gleich ab", expires_at=(utcnow() + timedelta(seconds=2)).isoformat())
    item_url = f"{site}/news/{expiring.slug}"
    assert httpx.get(item_url).status_code == 200
    assert "Läuft gleich ab" in httpx.get(url).text
    wait_for(
        lambda: "Läuft gleich ab" not in httpx.get(url).text,
        timeout=10,
        message="the expired item off the kept news page",
    )
    assert httpx.get(item_url).status_code == 404
    # An editor sees the editors' links, though readers were just served from memory.
    editor = login(site, "kept-pages@example.org", "editor")
    assert 'href="/admin' in editor.get("/news/").text
    assert 'href="/admin' not in httpx.get(url).text


def test_a_kept_feed_and_page_are_compressed_once_for_every_reader(site: str) -> None:
    import gzip

    for number in range(5):
        publish(f"Meldung {number}", summary="Ein Absatz über Jugendarbeit. " * 20)
    for path in ("/news/feed.atom", "/news/"):
        plain = httpx.get(site + path, headers={"accept-encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert "Accept-Encoding" in plain.headers["vary"]
        raw = []
        for _ in range(2):  # the second from memory
            with httpx.stream("GET", site + path, headers={"accept-encoding": "gzip"}) as answer:
                assert answer.headers["content-encoding"] == "gzip"
                assert "Accept-Encoding" in answer.headers["vary"]
                body = b"".join(answer.iter_raw())
                assert int(answer.headers["content-length"]) == len(body)
                raw.append(body)
        # The same compressed bytes for every reader: compressed once, not per request.
        assert raw[0] == raw[1] and gzip.decompress(raw[1]) == plain.content
