"""Headless Chromium for page tests, through Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, sync_playwright

#: Flags for Chromium on these machines: as root it needs --no-sandbox, and without the
#: background-networking flags it keeps trying to reach Google's hosts.
CHROMIUM_FLAGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
]


def chromium_path() -> str | None:
    """System Chromium (KGI_CHROMIUM, else Debian's), or None for Playwright's own build."""
    for candidate in (
        os.environ.get("KGI_CHROMIUM"),
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
    ):
        if candidate and shutil.which(candidate):
            return candidate
    return None


@contextmanager
def chromium() -> Iterator[Browser]:
    flags = list(CHROMIUM_FLAGS)
    if os.geteuid() == 0:
        flags.append("--no-sandbox")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=flags
        )
        try:
            yield browser
        finally:
            browser.close()


#: The rules axe-core checks pages against: WCAG 2.1 levels A and AA.
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

#: Desktop and phone: every page is checked at both.
WIDTHS = {"desktop": 1280, "phone": 375}


def wcag_violations(page: Page) -> list[str]:
    """What axe-core (carried by axe-playwright-python: a checker we did not write) finds
    on ``page`` against WCAG 2.1 AA, one line per rule with the first offending node."""
    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_21_AA}})
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes'][0]['target']}"
        for v in results.response["violations"]
    ]


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than its viewport (0: no sideways scrolling)."""
    return int(page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth"))


@contextmanager
def page_as(
    browser: Browser, site: str, client: Any | None, **options: Any
) -> Iterator[tuple[Page, list[str]]]:
    """A page whose browser carries the session cookie of ``client`` (an httpx client
    that logged in; None for an anonymous reader), and the list Chromium's Content
    Security Policy complaints on it go to. ``options`` go to the browser context
    (``java_script_enabled=False``)."""
    context = browser.new_context(**options)
    if client is not None:
        context.add_cookies(
            [{"name": "kgi_session", "value": client.cookies["kgi_session"], "url": site}]
        )
    page = context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    try:
        yield page, violations
    finally:
        context.close()
