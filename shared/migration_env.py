"""The body of every Alembic ``env.py``: run migrations on the engine handed over.

Each owner's ``migrations/env.py`` is one call to :func:`run_migrations`, so the logic
lives once.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Engine

from shared.config import get_settings


def run_migrations(owner: str) -> None:
    """Run the pending migrations for ``owner`` (online mode only)."""
    engine: Engine | None = context.config.attributes.get("engine")
    if engine is None:
        from shared.database import engine as engine_for

        engine = engine_for(owner)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            # SQLite cannot ALTER most things in place; batch mode copies the table.
            render_as_batch=get_settings().database_url(owner).startswith("sqlite"),
        )
        with context.begin_transaction():
            context.run_migrations()
