"""The subscribers service describes itself (see :class:`shared.service.Service`)."""

from pathlib import Path

from shared.service import Service

SERVICE = Service(
    name="subscribers",
    prefix="/subscribers",
    routes="services.subscribers.app:routes",
    actors="services.subscribers.actors",
    migrations=Path(__file__).parent / "migrations",
    tables="services.subscribers.store:metadata",
    # Mails whose worker message was lost go out again; unconfirmed sign-ups expire.
    periodic=("sweep_outbox", "purge_expired_signups"),
    templates="subscribers",
    commands="services.subscribers.commands:add_commands",
    # Its part of the admin dashboard.
    dashboard="services.subscribers.dashboard:dashboard_sections",
)
