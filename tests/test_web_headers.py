"""Security headers, compression and the one trusted proxy."""

from __future__ import annotations

import gzip
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from kgi.cli import server_options
from services.newsletter import compose
from shared.config import ConfigurationError, get_settings, load_settings
from shared.web.paths import path_for
from tests.browser import chromium, page_as
from tests.conftest import free_port, login

PAGES = ["/", "/login", "/subscribers/signup", "/news/", "/newsletter/archive/", "/nowhere"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_security_headers(site: str, path: str) -> None:
    response = httpx.get(site + path)
    assert response.status_code in (200, 404)
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "SAMEORIGIN"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in headers["content-security-policy"].split(";")
    )
    assert "'unsafe-inline'" not in policy["script-src"]
    # A nonce only where the page has inline script: these pages have none.
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'self'"
    assert policy["object-src"] == "'none'"


def test_nonce_is_new_on_every_response_of_a_page_with_inline_script(site: str) -> None:
    client = login(site, "nonce@example.org", "admin")
    issue = compose.create_issue("de", "nonce@example.org", "Nonce")
    nonces = set()
    for _ in range(3):
        response = client.get(path_for("newsletter:admin_issue", id=issue.id))
        assert response.status_code == 200
        found = re.search(r"'nonce-([^']+)'", response.headers["content-security-policy"])
        assert found is not None
        # The page's scripts carry the nonce its policy allows.
        assert f'<script nonce="{found.group(1)}">' in response.text
        nonces.add(found.group(1))
    assert len(nonces) == 3


def test_public_pages_set_no_cookie_and_are_the_same_for_every_visitor(site: str) -> None:
    """Pages without a form or inline script print nothing of their visitor's own: no
    session cookie is set (no tracking of readers) and one rendering serves everyone."""
    # The sign-up's form carries no token (shared.web.forms.verify_same_origin).
    for path in ("/news/", "/newsletter/archive/", "/subscribers/signup"):
        first, second = httpx.get(site + path), httpx.get(site + path)
        assert first.status_code == 200
        assert "set-cookie" not in first.headers, path
        assert first.text == second.text
    # A form of a session still gets its visitor's token, in a session cookie.
    login_page = httpx.get(site + "/login")
    assert "kgi_session=" in login_page.headers["set-cookie"]


def test_inline_scripts_run_and_nothing_is_refused_in_chromium(site: str) -> None:
    """Chromium enforces the policy: the pages work and report no violation, while a
    script without the nonce (what an injection would add) is refused."""
    client = login(site, "csp@example.org", "admin")
    page_html = client.get("/newsletter/admin/")
    assert page_html.status_code == 200
    with chromium() as browser, page_as(browser, site, client) as (page, violations):
        for path in ("/", "/subscribers/signup", "/news/", "/newsletter/admin/"):
            page.goto(site + path)
        assert violations == []
        # An injected inline script (no nonce) does not run.
        page.goto(site + "/")
        ran = page.evaluate(
            """() => new Promise(resolve => {
                document.addEventListener('securitypolicyviolation', () => resolve('refused'));
                const s = document.createElement('script');
                s.textContent = 'window.injected = true';
                document.body.appendChild(s);
                setTimeout(() => resolve(window.injected ? 'ran' : 'silent'), 500);
            })"""
        )
        assert ran == "refused"


def test_feeds_are_compressed(site: str) -> None:
    response = httpx.get(site + "/news/feed.atom", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["vary"]
    raw = httpx.get(site + "/news/feed.atom", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    assert raw.content.startswith(b"<?xml")
    # The compressed body decodes to the same feed.
    with httpx.stream(
        "GET", site + "/news/feed.atom", headers={"Accept-Encoding": "gzip"}
    ) as streamed:
        body = b"".join(streamed.iter_raw())
    assert gzip.decompress(body) == raw.content


# --- the one trusted proxy --------------------------------------------------------------


async def _echo_client(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the client address the server decided on."""
    assert scope["type"] == "http"
    host = scope["client"][0] if scope.get("client") else "-"
    body = f"{host} {scope['scheme']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def _served(trusted_proxy: str | None) -> Iterator[str]:
    settings = replace(get_settings(), trusted_proxy=trusted_proxy)
    port = free_port()
    config = uvicorn.Config(
        _echo_client, host="127.0.0.1", port=port, log_level="warning", **server_options(settings)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


def test_without_a_trusted_proxy_forwarded_headers_are_ignored() -> None:
    # uvicorn alone would trust every local address: a process on the machine could then
    # choose the client IP written into rate limits and the consent log.
    with _served(None) as url:
        assert httpx.get(url, headers=FORWARDED).text == "127.0.0.1 http"


def test_the_configured_proxy_is_believed() -> None:
    with _served("127.0.0.1") as url:
        assert httpx.get(url, headers=FORWARDED).text == "203.0.113.9 https"


def test_another_proxy_address_is_not_believed() -> None:
    with _served("127.0.0.2") as url:
        assert httpx.get(url, headers=FORWARDED).text == "127.0.0.1 http"


def test_trusted_proxy_must_be_one_address(monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("127.0.0.1,10.0.0.1", "10.0.0.0/8", "*", "proxy.local"):
        monkeypatch.setenv("KGI_TRUSTED_PROXY", bad)
        with pytest.raises(ConfigurationError, match="KGI_TRUSTED_PROXY"):
            load_settings()
    monkeypatch.setenv("KGI_TRUSTED_PROXY", "::1")
    assert load_settings().trusted_proxy == "::1"


def test_a_path_no_mount_can_match_gets_our_404(site: str) -> None:
    # A mount's pattern stops at a line break: such a path used to fall through to
    # Starlette's bare "Not Found" text, which the API documents as JSON (schemathesis
    # found it on /subscribers/internal/issues/{id}/feedback).
    for path in ("/subscribers/internal/issues/0%0A/feedback", "/members/x%0Ay", "/%0Ax"):
        page = httpx.get(site + path)
        assert page.status_code == 404
        assert page.headers["content-type"].split(";")[0] in ("text/html", "application/json")
        answer = httpx.get(site + path, headers={"accept": "application/json"})
        assert answer.json()["status"] == 404
