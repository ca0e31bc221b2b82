"""The newsletter service describes itself (see :class:`shared.service.Service`)."""

from pathlib import Path

from shared.service import Service

SERVICE = Service(
    name="newsletter",
    prefix="/newsletter",
    routes="services.newsletter.app:routes",
    actors="services.newsletter.actors",
    migrations=Path(__file__).parent / "migrations",
    tables="services.newsletter.store:metadata",
    # Scheduled issues start; issues being sent keep their senders.
    periodic=("supervise_dispatch",),
    templates="newsletter",
    commands="services.newsletter.commands:add_commands",
    # Its part of the admin dashboard.
    dashboard="services.newsletter.dashboard:dashboard_sections",
    # Its sections of the home page.
    home="services.newsletter.archive:home_sections",
)
