"""The feeds service describes itself (see :class:`shared.service.Service`)."""

from pathlib import Path

from shared.service import Service

SERVICE = Service(
    name="feeds",
    prefix="/news",
    routes="services.feeds.app:routes",
    actors="services.feeds.actors",
    migrations=Path(__file__).parent / "migrations",
    tables="services.feeds.store:metadata",
    # Partner sources whose next fetch is due are fetched.
    periodic=("fetch_due_sources",),
    templates="feeds",
    commands="services.feeds.commands:add_commands",
    # Its part of the admin dashboard.
    dashboard="services.feeds.dashboard:dashboard_sections",
    # Its sections of the home page.
    home="services.feeds.public:home_sections",
)
