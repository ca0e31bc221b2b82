"""Access control for ``/admin`` pages: a logged-in editor, or an admin where required."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from shared.accounts.store import ROLES
from shared.errors import Forbidden
from shared.web.paths import path_for
from shared.web.sessions import current_user

#: An endpoint as Starlette accepts it: ``async def`` for work that awaits, or a plain
#: ``def`` for blocking work (database, Redis), which then runs in the threadpool.
Endpoint = Callable[[Request], Awaitable[Response]] | Callable[[Request], Response]


def login_required(
    role: str = "editor",
) -> Callable[[Endpoint], Callable[[Request], Awaitable[Response]]]:
    """Send anonymous visitors to the login page; refuse roles weaker than ``role``."""

    def decorate(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            user = current_user(request)
            if user is None:
                target = quote(
                    request.url.path + ("?" + request.url.query if request.url.query else "")
                )
                login = path_for("portal:login")
                return RedirectResponse(f"{login}?next={target}", status_code=303)
            if ROLES.index(user["role"]) < ROLES.index(role):
                raise Forbidden("Only an administrator may do this.")
            if inspect.iscoroutinefunction(endpoint):
                return await endpoint(request)
            # A plain function blocks: keep it off the event loop, as Starlette would.
            return await run_in_threadpool(endpoint, request)

        return guarded

    return decorate
