"""A reader finds news in headless Chromium: filters, an item page, feed autodiscovery."""

from __future__ import annotations

from services.feeds.demo import load_demo
from tests.browser import chromium


def test_reader_filters_news_and_opens_a_report(site):
    load_demo()
    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{site}/")
        page.get_by_role("link", name="Neuigkeiten", exact=True).first.click()
        page.wait_for_url("**/news/")
        assert page.locator("article.teaser").count() == 5
        page.get_by_label("Typ").select_option("conference_report")
        page.get_by_role("button", name="Anzeigen").click()
        page.wait_for_url("**/news/?type=conference_report**")
        assert page.locator("article.teaser").count() == 2
        feeds = page.locator('link[rel="alternate"][type="application/atom+xml"]').get_attribute(
            "href"
        )
        assert feeds.endswith("/news/feed.atom?type=conference_report")
        page.get_by_role("link", name="Netzwerktreffen Köln: Netzwerke vor Ort stärken").click()
        assert page.locator("h1").inner_text() == "Netzwerktreffen Köln: Netzwerke vor Ort stärken"
        assert "14.11.2016 – 15.11.2016" in page.content()
