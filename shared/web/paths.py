"""Paths of named routes, for code and templates, in any process.

Every route has a name ``service:route`` (``feeds:item``, ``subscribers:signup``).
Code asks :func:`path_for` and templates ``url_for(...)``; mails and feeds, which leave
the site, ask :func:`absolute_url_for` (the same name in templates). So a service's
prefix is written once (its descriptor) and each path once (its route). The registry
(:func:`kgi.registry.setup`) installs the site's route table when a process starts, web
server and worker alike: workers build links in mails without ever serving a request.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from starlette.routing import BaseRoute, Mount, NoMatchFound, Router

from shared.config import get_settings

#: ``{id:id}`` in a route's path → ``{id}`` in a path template (OpenAPI, documentation).
_CONVERTOR = re.compile(r"{(\w+):\w+}")

_table: Router | None = None


class RouteTableMissing(RuntimeError):
    """A path was asked for before :func:`install` ran in this process."""


def install(routes: list[BaseRoute]) -> None:
    """Make ``routes`` (the site's mounts, each named after its service) the table every
    :func:`path_for` reads. Called once per process by the registry."""
    global _table
    _table = Router(routes=routes)
    _template.cache_clear()


def _installed() -> Router:
    if _table is None:
        raise RouteTableMissing(
            "no route table in this process: call kgi.registry.setup() when it starts"
        )
    return _table


def path_for(name: str, /, **params: Any) -> str:
    """The path of the route ``name`` (``service:route``) with ``params`` filled in.

    Raises starlette's NoMatchFound for an unknown name or missing parameters."""
    # Searching the route table costs about 50 µs, and an issue asks twice per recipient
    # (100,000 recipients: 10 s of its audience snapshot). A route's path is searched
    # once per set of parameter names, then filled in. Only with plain text values,
    # which every convertor that takes them at all puts in as they are.
    if all(isinstance(v, str) and v and "/" not in v and _MARK not in v for v in params.values()):
        template = _template(name, tuple(sorted(params)))
        if template is not None:
            for key, value in params.items():
                template = template.replace(f"{_MARK}{key}{_MARK}", value)
            return template
    return str(_installed().url_path_for(name, **params))


#: Stands around a parameter's name in a path template (no URL can contain it).
_MARK = "\x00"


@cache
def _template(name: str, keys: tuple[str, ...]) -> str | None:
    """The route's path with a marker for each parameter, or None when a convertor will
    not take text (a number, for instance): such paths are searched every time."""
    try:
        return str(_installed().url_path_for(name, **{k: f"{_MARK}{k}{_MARK}" for k in keys}))
    except (ValueError, TypeError, AssertionError):
        return None


def absolute_url_for(name: str, /, **params: Any) -> str:
    """The absolute URL (under KGI_BASE_URL) of the route ``name``; for mails and feeds."""
    return get_settings().absolute_url(path_for(name, **params))


def path_template(name: str) -> str:
    """The route's path with its parameters left open (``/subscribers/admin/{id}``)."""
    service, _, route_name = name.partition(":")
    for mount in _installed().routes:
        if isinstance(mount, Mount) and mount.name == service:
            for route in mount.routes:
                if getattr(route, "name", None) == route_name:
                    return mount.path + _CONVERTOR.sub(r"{\1}", route.path)  # type: ignore[attr-defined]
    raise NoMatchFound(name, {})
