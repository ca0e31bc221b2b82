"""Paths of named routes, for code and templates, in any process.

Every route has a name ``service:route`` (``feeds:item``, ``subscribers:signup``).
Code asks :func:`path_for` and templates ``url_for(...)``; mails and feeds, which leave
the site, ask :func:`absolute_url_for` (the same name in templates). So a service's
prefix is written once (its descriptor) and each path once (its route). The registry
(:func:`kgi.registry.setup`) installs the site's route table when a process starts, web
server and worker alike: workers build links in mails without ever serving a request.

The ``{id:id}`` path convertor of every service's routes is defined here too (last
section below): importing this module registers it.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from starlette.convertors import Convertor, register_url_convertor
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


# --------------------------------------------------------------------------------------
# Path convertors shared by every service's routes.
#
# ``{id:id}`` matches the ids of database rows. Starlette's ``int`` convertor takes any
# run of digits, and a large id then overflows the id column (a 500); an id that cannot
# exist should simply not match, so the visitor gets the ordinary 404 page. The limit is
# exact, in the regular expression itself: Starlette does not catch an error raised while
# converting a matched path.
# --------------------------------------------------------------------------------------

#: Largest row id: every id column here is an ``Integer``, which is 32 bits on PostgreSQL
#: (SQLite would take 64); two billion rows are more than any table here will hold.
MAX_ROW_ID = 2**31 - 1


def digits_up_to(limit: int) -> str:
    """A regular expression matching exactly the whole numbers 1..``limit``, written
    without leading zeros (``digits_up_to(250)``: 1-9, 10-99, 100-199, 200-249, 250)."""
    text = str(limit)
    shorter = [f"[1-9][0-9]{{{n - 1}}}" if n > 1 else "[1-9]" for n in range(1, len(text))]
    same_length = []
    for i, digit in enumerate(text):
        lowest = "1" if i == 0 else "0"
        if digit > lowest:
            rest = len(text) - i - 1
            tail = f"[0-9]{{{rest}}}" if rest else ""
            below = str(int(digit) - 1)
            choice = lowest if below == lowest else f"[{lowest}-{below}]"
            same_length.append(f"{text[:i]}{choice}{tail}")
    same_length.append(text)
    return "|".join([*shorter, *same_length])


class RowIdConvertor(Convertor[int]):
    """A positive whole number up to MAX_ROW_ID, without leading zeros."""

    regex = f"(?:{digits_up_to(MAX_ROW_ID)})"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        if not 0 < value <= MAX_ROW_ID:
            raise ValueError(f"{value} is not a row id")
        return str(value)


# Registered on import, as Starlette registers its own: route tables are built when their
# modules are imported, and they import shared.web.app (which imports this) first.
register_url_convertor("id", RowIdConvertor())
