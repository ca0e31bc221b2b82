"""All services under one origin, as ``kgi run`` and the tests serve them."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Router

from kgi import devmail, registry
from shared.service import Service
from shared.web.app import create_service_app
from shared.web.kept_responses import KeptResponsesMiddleware

#: Where the development mail catcher's page is mounted (``kgi run`` without KGI_SMTP_URL).
MAIL_CATCHER_PREFIX = "/dev/mail"


def _mount(part: Service) -> Mount:
    # Each part is its own app (middleware, error pages), named so that its routes are
    # ``part:route`` for url_for.
    assert part.routes is not None and part.prefix is not None
    return Mount(part.prefix, app=create_service_app(registry.load(part.routes)), name=part.name)


def create_site(mail_catcher_page: bool = False) -> KeptResponsesMiddleware:
    """The combined site; with ``mail_catcher_page`` also the mail catcher's page.

    In front of the router: repeated requests for kept renderings are answered before
    any routing or middleware (the site's router is ``create_site().app``)."""
    registry.setup()  # pages send messages (sign-up mails, sending an issue, fetching now)
    mounted = [part for part in registry.parts() if part.routes is not None]
    routes: list[BaseRoute] = [_mount(part) for part in mounted if part.prefix]
    if mail_catcher_page:
        routes.append(Mount(MAIL_CATCHER_PREFIX, app=devmail.create_app(), name="devmail"))
    root = [_mount(part) for part in mounted if not part.prefix]
    routes.extend(root)  # the root, last
    # A path no mount matches (one with a line break in it: a mount's pattern stops
    # there) is answered by the root's app too, with our 404 page, not Starlette's bare
    # text.
    return KeptResponsesMiddleware(Router(routes=routes, default=root[0].app if root else None))


def create_service(name: str) -> KeptResponsesMiddleware:
    """One part alone (``kgi serve NAME``), at the same paths as in the combined site,
    with kept renderings answered in front of it as in the combined site."""
    part = registry.part(name)
    if part.routes is None:
        raise SystemExit(f"{name} has no pages; choose from {', '.join(registry.servable())}")
    registry.setup()
    mount = _mount(part)
    return KeptResponsesMiddleware(Router(routes=[mount], default=mount.app))
