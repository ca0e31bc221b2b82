"""The registry: the parts of the house, read from their descriptors.

Services are found, not listed: every ``services/<name>/service.py`` with a ``SERVICE``
descriptor (:class:`shared.service.Service`) is one. Two parts that are not services
complete the house: the portal (home, login, the admin overview, in :mod:`kgi.portal`) and
the accounts database (:mod:`shared.accounts`). Everything that needs the list of
services (the site, the broker's actors, the scheduler's periodic jobs, ``kgi migrate``,
the command line, the route table for links) asks here.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from functools import cache
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from dramatiq.brokers.redis import RedisBroker
from starlette.requests import Request
from starlette.routing import BaseRoute, Mount

import services
from shared import broker
from shared.process_logging import quiet_libraries
from shared.service import PageSection, Service
from shared.web import paths

#: The pages that belong to no single service, at the root of the site.
PORTAL = Service(name="portal", prefix="", routes="kgi.portal:routes", templates="")

#: Users, roles and sessions of editors and administrators: a database, no pages.
ACCOUNTS = Service(
    name="accounts",
    tables="shared.accounts.store:metadata",
    migrations=Path(__file__).resolve().parents[1] / "shared" / "accounts" / "migrations",
)


def load(reference: str) -> Any:
    """The object a ``"module:attribute"`` reference names."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


@cache
def services_found() -> tuple[Service, ...]:
    """Every service under ``services/``, by name."""
    found = []
    for module in pkgutil.iter_modules(services.__path__):
        folder = Path(getattr(module.module_finder, "path", "")) / module.name
        if module.ispkg and (folder / "service.py").exists():
            found.append(importlib.import_module(f"services.{module.name}.service").SERVICE)
    return tuple(sorted(found, key=lambda service: service.name))


def parts() -> tuple[Service, ...]:
    """The services and the platform's own parts; the portal last (it is mounted at the
    root, so it must come after every prefix)."""
    return (ACCOUNTS, *services_found(), PORTAL)


def part(name: str) -> Service:
    """The part called ``name``; SystemExit naming the choices for an unknown one."""
    for candidate in parts():
        if candidate.name == name:
            return candidate
    raise SystemExit(f"unknown part {name!r}; the parts are {', '.join(p.name for p in parts())}")


def servable() -> list[str]:
    """Names of the parts with pages (``kgi serve NAME``)."""
    return [p.name for p in parts() if p.routes is not None]


def database_owners() -> list[str]:
    """Names of the parts that own a database."""
    return [p.name for p in parts() if p.migrations is not None]


def declared_tables(owner: str) -> sa.MetaData:
    """The tables ``owner`` declares (its descriptor's ``tables``)."""
    reference = part(owner).tables
    if reference is None:
        raise ValueError(f"{owner} declares no tables")
    metadata: sa.MetaData = load(reference)
    return metadata


def migrate(owner: str) -> None:
    """Bring ``owner``'s database to its newest migration."""
    part(owner).migrate()


def migrate_all() -> None:
    """Bring every database of the house to its newest migration."""
    for owner in database_owners():
        migrate(owner)


def actor_modules() -> list[str]:
    """The modules declaring actors, for the broker and the workers."""
    return [p.actors for p in parts() if p.actors is not None]


def periodic_jobs() -> list[str]:
    """Names of the actors the scheduler enqueues on every tick."""
    return [job for p in parts() for job in p.periodic]


def mounts(only: str | None = None) -> list[BaseRoute]:
    """A named Mount per part with pages (only the part ``only`` when given): the route
    table of the site, and of links in every process."""
    return [
        Mount(p.prefix or "", routes=load(p.routes), name=p.name)
        for p in parts()
        if p.routes is not None and (only is None or p.name == only)
    ]


def page_sections(page: Literal["home", "dashboard"], request: Request) -> list[PageSection]:
    """Every service's sections of ``page`` (the descriptor field of that name), in their
    order (blocking: call it in the threadpool)."""
    references = [getattr(p, page) for p in parts() if getattr(p, page) is not None]
    sections = [section for reference in references for section in load(reference)(request)]
    return sorted(sections, key=lambda section: section.order)


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Let every service add its own ``kgi`` subcommands."""
    for p in parts():
        if p.commands is not None:
            load(p.commands)(subparsers)


def setup() -> RedisBroker:
    """What every process does first: set up the broker with every service's actors and
    install the route table links are made from. Idempotent; returns the broker.

    Dramatiq's worker CLI is given ``kgi.registry:setup`` and calls it in each process."""
    quiet_libraries()
    paths.install(mounts())
    return broker.setup_broker(actor_modules())
