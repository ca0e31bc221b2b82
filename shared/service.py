"""What a part of the platform says about itself: the descriptor :mod:`kgi.registry` reads.

Every service describes itself once, in ``services/<name>/service.py`` (a module-level
``SERVICE``): where it is mounted, its routes, its actors, its migrations, its periodic
jobs, its templates and its commands. Nothing else in the house lists the services or
writes their prefixes; the site, the broker, the scheduler, ``kgi migrate`` and the
command line all read these descriptors through the registry. Adding a service means
adding one package with one descriptor. (One deliberate exception: the portal serves the
subscribers API's OpenAPI document at the site's root as well.)

References to code are ``"module:attribute"`` strings, so reading a descriptor imports
nothing heavy (the registry imports what a process needs, when it needs it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared import database


@dataclass(frozen=True)
class PageSection:
    """A part of a page of the whole site (the home page, the admin dashboard) that a
    service fills from its own data."""

    #: Where it stands on the page: lower first.
    order: int
    #: The section, rendered in the visitor's language (an HTML fragment).
    html: str
    #: Lines for the page's ``<head>`` (feed autodiscovery links).
    head: str = ""


@dataclass(frozen=True)
class Service:
    """One part of the platform, as the registry sees it."""

    #: The service's name: its database owner, its route names' namespace
    #: (``name:route``), its ``kgi serve`` argument.
    name: str
    #: Where it is mounted under the common origin (``""`` for the portal at the root);
    #: ``None`` for a part without pages (it owns a database only).
    prefix: str | None = None
    #: ``"module:attribute"`` of its list of Starlette routes, every one named.
    routes: str | None = None
    #: The module declaring its Dramatiq actors (imported by every process that sets up
    #: the broker, so actors can be sent to by name).
    actors: str | None = None
    #: The folder of its Alembic migrations; ``None`` when it owns no database.
    migrations: Path | None = None
    #: ``"module:attribute"`` of the SQLAlchemy ``MetaData`` declaring its tables: the
    #: schema its migrations must produce (tests compare the two, and empty the tables).
    tables: str | None = None
    #: Names of actors the scheduler enqueues on every tick.
    periodic: tuple[str, ...] = ()
    #: Its folder under ``templates/`` (pages and mails of this service).
    templates: str | None = None
    #: ``"module:function"`` adding its ``kgi`` subcommands to an argparse subparsers object.
    commands: str | None = None
    #: ``"module:function"`` giving its sections of the home page from its own data: called
    #: with the request (in the threadpool), it returns a list of :class:`PageSection`.
    home: str | None = None
    #: ``"module:function"`` giving its sections of the admin dashboard, like ``home``.
    dashboard: str | None = None

    def migrate(self) -> None:
        """Bring this part's database to its newest migration."""
        if self.migrations is None:
            raise ValueError(f"{self.name} owns no database")
        database.migrate(self.name, self.migrations)
