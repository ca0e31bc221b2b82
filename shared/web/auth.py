"""Access control for ``/admin`` pages: a logged-in editor, or an admin where required."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from shared.accounts.store import ROLES
from shared.web.sessions import current_user

Endpoint = Callable[[Request], Awaitable[Response]]


def login_required(role: str = "editor") -> Callable[[Endpoint], Endpoint]:
    """Send anonymous visitors to the login page; refuse roles weaker than ``role``."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            user = current_user(request)
            if user is None:
                target = quote(
                    request.url.path + ("?" + request.url.query if request.url.query else "")
                )
                return RedirectResponse(f"/login?next={target}", status_code=303)
            if ROLES.index(user["role"]) < ROLES.index(role):
                raise HTTPException(403, "Only an administrator may do this.")
            return await endpoint(request)

        return guarded

    return decorate
