"""The events service describes itself (see :class:`shared.service.Service`)."""

from pathlib import Path

from shared.service import Service

SERVICE = Service(
    name="events",
    prefix="/events",
    routes="services.events.app:routes",
    actors="services.events.actors",
    migrations=Path(__file__).parent / "migrations",
    tables="services.events.store:metadata",
    # Mails whose worker message was lost go out again; tomorrow's participants are
    # reminded; registrations of long-past events and unconfirmed ones are forgotten.
    periodic=("sweep_event_mails", "send_event_reminders", "purge_past_registrations"),
    templates="events",
    # The next dates, and the way to register.
    home="services.events.public:home_sections",
)
