"""The members service describes itself (see :class:`shared.service.Service`)."""

from pathlib import Path

from shared.service import Service

SERVICE = Service(
    name="members",
    prefix="/members",
    routes="services.members.app:routes",
    migrations=Path(__file__).parent / "migrations",
    tables="services.members.store:metadata",
    templates="members",
    commands="services.members.commands:add_commands",
    # How many members, and the way to the map.
    home="services.members.public:home_sections",
)
