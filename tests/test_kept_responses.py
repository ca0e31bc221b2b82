"""Repeated anonymous requests for kept renderings, answered before the middleware chain
(shared.web.kept_responses): the same bytes the chain gave, never once the rendering is
no longer kept, never to a visitor with a session, never with a cookie being set."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.feeds import content
from shared.web.caching import Rendered, RenderingCache, conditional
from shared.web.kept_responses import KeptResponsesMiddleware

#: Headers that differ between two answers of the same response (uvicorn adds them).
PER_ANSWER = ("date",)


def test_the_endpoint_runs_again_only_when_the_rendering_is_no_longer_kept() -> None:
    version, calls = [1], []
    cache = RenderingCache(lambda: version[0], trust_seconds=60)

    async def endpoint(request: Request) -> Response:
        calls.append(request.url.path)
        body = f"Fassung {version[0]} ".encode() * 100
        rendered = await cache.served("feed", lambda: Rendered(body, "text/plain", 'W/"1"'))
        return conditional(request, rendered, 60)

    app = KeptResponsesMiddleware(Starlette(routes=[Route("/", endpoint)]))

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kgi") as client:
            first, again = await client.get("/"), await client.get("/")
            assert len(calls) == 1 and again.content == first.content
            assert again.headers.multi_items() == first.headers.multi_items()
            # Each variant of the request is its own: a 304 is not a 200, identity not gzip.
            revalidate = {"if-none-match": 'W/"1"'}
            assert (await client.get("/", headers=revalidate)).status_code == 304
            assert (await client.get("/", headers=revalidate)).status_code == 304
            assert len(calls) == 2
            plain = await client.get("/", headers={"accept-encoding": "identity"})
            assert "content-encoding" not in plain.headers and len(calls) == 3
            # A visitor with a session cookie may be logged in: always through the chain.
            for cookie in ("kgi_session=x", "kgi_session =x"):
                await client.get("/", headers={"cookie": cookie})
            assert len(calls) == 5
            # This process changed the data: the next answer is the endpoint's, changed.
            version[0] = 2
            cache.distrust()
            assert b"Fassung 2" in (await client.get("/")).content and len(calls) == 6

    asyncio.run(scenario())


def publish(title: str, **fields: str) -> None:
    item = content.create_item({"title": title, **fields}, "editor@example.org")
    content.transition(item.id, "publish", "admin@example.org", "admin")


def test_a_kept_feed_is_answered_again_exactly_and_a_change_at_once(site: str) -> None:
    publish("Erste Meldung", summary="Über Jugendarbeit in Kommunen. " * 40)
    url = f"{site}/news/feed.atom"
    for encoding in ("gzip", "identity"):
        asked = {"accept-encoding": encoding}
        first, again = httpx.get(url, headers=asked), httpx.get(url, headers=asked)
        assert again.content == first.content
        assert strip(again.headers) == strip(first.headers)
        assert again.headers.get_list("vary") == ["Accept-Encoding"]  # once, not twice
        revalidate = {**asked, "if-none-match": first.headers["etag"]}
        not_modified = [httpx.get(url, headers=revalidate) for _ in range(2)]
        assert [answer.status_code for answer in not_modified] == [304, 304]
        assert strip(not_modified[1].headers) == strip(not_modified[0].headers)
        assert not_modified[1].headers["vary"] == "Accept-Encoding"
    # A change this process commits is in the next answer to the same request.
    etag = first.headers["etag"]
    publish("Zweite Meldung")
    changed = httpx.get(url, headers={"if-none-match": etag})
    assert changed.status_code == 200 and "Zweite Meldung" in changed.text
    # A request that sets a cookie (the language chosen) is never answered from memory.
    for _ in range(2):
        assert "kgi_lang=en" in httpx.get(f"{site}/news/?lang=en").headers["set-cookie"]


def strip(headers: httpx.Headers) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers.multi_items() if name not in PER_ANSWER]
