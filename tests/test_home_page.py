"""The home page lives: the latest news and conference reports, the next conference
dates, the latest issue, a sign-up box and the feeds (autodiscovered), in German and
English; in Chromium it has no WCAG 2.1 AA violation (axe-core), no sideways scrolling
and no broken image, at desktop and phone width."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import feedparser
import httpx

from services.feeds import content, store
from services.newsletter import compose
from shared.database import utcnow
from shared.web.paths import path_for
from tests.browser import WIDTHS, chromium, horizontal_overflow, wcag_violations
from tests.test_newsletter import archived

#: Where the screenshots go (kept by CI as artefacts when it keeps the folder).
SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"


def publish(**fields: str) -> store.Item:
    item = content.create_item(fields, "editor@example.org")
    return content.transition(item.id, "publish", "admin@example.org", "admin")


def fill_the_site() -> dict[str, str]:
    """A news item, a conference in three weeks, one that is over, and a sent issue."""
    soon = (utcnow() + timedelta(days=21)).date()
    publish(title="Neue Partnerschaft mit Lublin", summary="Jugendaustausch ab Sommer.")
    publish(
        title="Fachtag Internationale Jugendarbeit",
        kind="conference_report",
        event_start=soon.isoformat(),
        event_end=(soon + timedelta(days=1)).isoformat(),
        event_location="Bonn",
    )
    publish(
        title="Tagung im letzten Jahr",
        kind="conference_report",
        event_start=(utcnow() - timedelta(days=400)).date().isoformat(),
    )
    issue = compose.create_issue("de", "redaktion@example.org", "KGI-Infobrief 4/2026")
    archived(issue)
    return {"soon": soon.strftime("%d.%m.%Y")}


def test_the_home_page_shows_what_is_new(site: str) -> None:
    dates = fill_the_site()
    home = httpx.get(site + path_for("portal:home"))
    assert home.status_code == 200
    page = home.text
    assert "Neue Partnerschaft mit Lublin" in page
    assert "Jugendaustausch ab Sommer." in page
    # The coming conference with its dates and place; the one that is over is only news.
    events = page[page.index('id="home-events"') :]
    assert "Fachtag Internationale Jugendarbeit" in events and dates["soon"] in events
    assert "Bonn" in events and "Tagung im letzten Jahr" not in events
    assert "KGI-Infobrief 4/2026" in page[page.index('id="home-issue"') :]
    assert "Das Netzwerk Kommune goes International" in page
    # No cookie for readers: nothing on the page is theirs.
    assert "set-cookie" not in home.headers
    english = httpx.get(site + path_for("portal:home") + "?lang=en").text
    assert "Latest news and conference reports" in english
    assert "The network Municipalities Shaping International Youth Work" in english


def test_feed_readers_find_the_feeds_on_the_home_page(site: str) -> None:
    publish(title="Gefunden über die Startseite")
    page = httpx.get(site + path_for("portal:home")).text
    announced = re.findall(
        r'<link rel="alternate" type="([^"]+)" title="[^"]*" href="([^"]+)">', page
    )
    news = {kind: href for kind, href in announced if path_for("feeds:news") in href}
    assert {"application/rss+xml", "application/atom+xml", "application/feed+json"} <= set(news)
    atom = feedparser.parse(httpx.get(httpx.URL(site).join(news["application/atom+xml"])).content)
    assert not atom.bozo and atom.entries[0].title == "Gefunden über die Startseite"
    # The archive's feeds are announced too.
    archive_feeds = re.findall(r'href="([^"]*archive/feed\.(?:rss|atom))"', page)
    assert len(archive_feeds) == 2


def test_the_sign_up_box_brings_the_address_to_the_sign_up_page(site: str) -> None:
    page = httpx.get(site + path_for("portal:home")).text
    form = re.search(r'<form method="get" action="([^"]+)">', page)
    assert form and form.group(1) == path_for("subscribers:signup")
    signup = httpx.get(site + form.group(1), params={"email": "leser@example.org"})
    assert 'value="leser@example.org"' in signup.text


def test_the_home_page_in_chromium(site: str) -> None:
    fill_the_site()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = browser.new_page()
        for language in ("de", "en"):
            page.goto(f"{site}{path_for('portal:home')}?lang={language}")
            for name, width in WIDTHS.items():
                page.set_viewport_size({"width": width, "height": 900})
                page.screenshot(
                    path=str(SCREENSHOTS / f"home-{language}-{name}.png"), full_page=True
                )
                assert wcag_violations(page) == [], (language, name)
                assert horizontal_overflow(page) == 0, (language, name)
                broken = page.evaluate(
                    "[...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                    ".map(i => i.src)"
                )
                assert broken == [], (language, name)
        # The box leads to the sign-up form with the address filled in.
        page.goto(f"{site}{path_for('portal:home')}?lang=de")
        page.fill("#home-email", "box@example.org")
        page.get_by_role("button", name="Weiter").click()
        assert page.input_value("#email") == "box@example.org"
