"""All services under one origin, as ``kgi run`` and the tests serve them."""

from __future__ import annotations

from starlette.routing import Mount, Router

from kgi import devmail, portal
from services.feeds import app as feeds
from services.newsletter import app as newsletter
from services.subscribers import app as subscribers
from shared.broker import setup_broker

#: Where each service lives under the common origin.
SERVICE_PREFIXES = {"subscribers": "/subscribers", "feeds": "/news", "newsletter": "/newsletter"}


def create_site(mail_catcher_page: bool = False) -> Router:
    """The combined site; with ``mail_catcher_page`` also ``/dev/mail``."""
    setup_broker()  # pages send messages (sign-up mails, sending an issue, fetching now)
    routes = [
        Mount("/subscribers", app=subscribers.create_app()),
        Mount("/news", app=feeds.create_app()),
        Mount("/newsletter", app=newsletter.create_app()),
    ]
    if mail_catcher_page:
        routes.append(Mount("/dev/mail", app=devmail.create_app()))
    routes.append(Mount("", app=portal.create_app()))
    return Router(routes=routes)


def create_service(name: str) -> Router:
    """One service alone (``kgi serve NAME``), at the same paths as in the combined site."""
    factories = {
        "subscribers": subscribers.create_app,
        "feeds": feeds.create_app,
        "newsletter": newsletter.create_app,
        "portal": portal.create_app,
    }
    if name not in factories:
        raise SystemExit(f"unknown service {name!r}; choose from {', '.join(sorted(factories))}")
    setup_broker()
    prefix = SERVICE_PREFIXES.get(name, "")
    return Router(routes=[Mount(prefix, app=factories[name]())])
