"""Every public page, judged by axe-core in Chromium against WCAG 2.1 AA at desktop and
phone width, with content on it (the demo items, a sent issue, a conference date): no
violation, no sideways scrolling, no broken image. The admin pages are checked where
their features are tested (dashboard, sources, the editors)."""

from __future__ import annotations

import pytest

from services.feeds.demo import load_demo
from services.feeds.listing import ItemFilter, public_items
from shared.web.paths import path_for
from tests.browser import WIDTHS, chromium, horizontal_overflow, wcag_violations
from tests.test_home_page import fill_the_site


@pytest.mark.parametrize("language", ["de", "en"])
def test_public_pages_have_no_wcag_violation(site: str, language: str) -> None:
    load_demo()
    fill_the_site()
    items, _ = public_items(ItemFilter(), 1)
    pages = {
        "home": path_for("portal:home"),
        "news": path_for("feeds:news"),
        "item": path_for("feeds:item", slug=items[0].slug),
        "archive": path_for("newsletter:archive"),
        "sign-up": path_for("subscribers:signup"),
        "login": path_for("portal:login"),
    }
    found: dict[str, list[str]] = {}
    with chromium() as browser:
        page = browser.new_page()
        for name, path in pages.items():
            page.goto(f"{site}{path}?lang={language}")
            for width_name, width in WIDTHS.items():
                page.set_viewport_size({"width": width, "height": 900})
                problems = wcag_violations(page)
                if horizontal_overflow(page):
                    problems.append(f"{horizontal_overflow(page)} px sideways scrolling")
                broken = page.evaluate(
                    "[...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                    ".map(i => i.src)"
                )
                problems += [f"broken image {src}" for src in broken]
                if problems:
                    found[f"{name} ({width_name})"] = problems
    assert found == {}
