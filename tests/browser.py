"""Headless Chromium for page tests, through Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright

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
