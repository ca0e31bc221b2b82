"""Answering a repeated request for a kept rendering before the middleware chain.

Most of the site's traffic is the same few requests again: feed readers polling a feed
(with the ETag they hold), visitors opening the news page. Their answers come from
renderings kept in memory (:mod:`shared.web.caching`), yet every one of them went
through the whole chain (security headers, compression, session, language, exception
handling, routing, the endpoint), which cost several times the answer itself.

:class:`KeptResponsesMiddleware` sits in front of the site's router (:mod:`kgi.site`),
before routing and every service app's middleware. When an endpoint answered with a
kept rendering, it remembers the response exactly as it left the chain
(status, every header, the body), under everything in the request that the response
depends on. The same request again is answered with those bytes, without the chain,
as long as the rendering's cache would still answer with that very rendering
(:meth:`shared.web.caching.Rendered.still_kept`): it expires exactly as the rendering
does, and nothing is answered that the chain would not answer itself.

Only anonymous GETs qualify: a request with a session cookie may be a logged-in editor,
who always gets fresh pages, and a response that sets a cookie is never remembered.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.web.caching import KEPT_SCOPE_KEY, Rendered

#: Responses remembered per site and process (each variant of URL, encoding, validator
#: and cookie is one). Their bodies are the kept renderings' own bytes, not copies; the
#: bound matches the renderings kept (RenderingCache.max_entries), so that a flood of
#: made-up query strings keeps no more alive than the caches themselves would.
MAX_REMEMBERED = 512

#: Request headers a kept response depends on, besides its URL (the compression,
#: conditional GET, and the language cookie).
_VARYING_HEADERS = (b"accept-encoding", b"if-none-match", b"if-modified-since", b"cookie")

#: A session cookie (``shared.web.sessions.SESSION_COOKIE``) means a visitor who may be
#: logged in: such requests always go through the chain. Searched without its "=":
#: cookie parsers trim spaces around names, so ``kgi_session =...`` is one as well.
_SESSION_COOKIE = b"kgi_session"


@dataclass(frozen=True)
class _Remembered:
    """A response as it left the chain, and the rendering it was made of."""

    rendered: Rendered
    start: Message
    body: bytes


class KeptResponsesMiddleware:
    """Answers repeated anonymous GETs of kept renderings with the response remembered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._remembered: OrderedDict[tuple[object, ...], _Remembered] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        signature = _signature(scope)
        if signature is None:
            await self.app(scope, receive, send)
            return
        remembered = self._remembered.get(signature)
        if remembered is not None:
            if remembered.rendered.still_kept():
                await send(remembered.start)
                await send({"type": "http.response.body", "body": remembered.body})
                return
            del self._remembered[signature]
        await self._answer_and_remember(signature, scope, receive, send)

    async def _answer_and_remember(
        self, signature: tuple[object, ...], scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Let the chain answer; remember the response if it was a kept rendering."""
        start: Message | None = None
        body: list[bytes] = []
        whole = True

        async def send_and_keep(message: Message) -> None:
            nonlocal start, whole
            if message["type"] == "http.response.start":
                start = {**message, "headers": list(message.get("headers", []))}
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                whole = whole and not message.get("more_body", False)
            await send(message)

        await self.app(scope, receive, send_and_keep)
        rendered = scope.get(KEPT_SCOPE_KEY)
        if (
            isinstance(rendered, Rendered)
            and start is not None
            and start["status"] in (200, 304)
            and whole
            and not any(name.lower() == b"set-cookie" for name, _ in start["headers"])
        ):
            self._remembered[signature] = _Remembered(rendered, start, b"".join(body))
            while len(self._remembered) > MAX_REMEMBERED:
                self._remembered.popitem(last=False)


def _signature(scope: Scope) -> tuple[object, ...] | None:
    """Everything in an anonymous GET that its response depends on; None for requests
    that always go through the chain."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return None
    varying: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in _VARYING_HEADERS:
            if name in varying:
                return None  # a header sent twice: rare, and read differently by parts
            varying[name] = value
    if _SESSION_COOKIE in varying.get(b"cookie", b""):
        return None
    return (
        scope["scheme"],
        scope.get("root_path", ""),
        scope["path"],
        scope["query_string"],
        b"gzip" in varying.get(b"accept-encoding", b""),
        *(varying.get(name) for name in _VARYING_HEADERS[1:]),
    )
