"""The body of every Alembic ``env.py``: run migrations on the engine handed over.

Each owner's ``migrations/env.py`` is one call to :func:`run_migrations`, so the logic
lives once.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection, Engine


def run_migrations(owner: str) -> None:
    """Run the pending migrations for ``owner`` (online mode only)."""
    engine: Engine | None = context.config.attributes.get("engine")
    if engine is None:
        from shared.database import engine as engine_for

        engine = engine_for(owner)
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            _foreign_keys(connection, on=False)
        try:
            context.configure(
                connection=connection,
                # SQLite cannot ALTER most things in place; batch mode copies the table.
                render_as_batch=sqlite,
            )
            with context.begin_transaction():
                context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                # The check began a transaction; inside one SQLite ignores the pragma.
                connection.commit()
                if broken:
                    raise RuntimeError(f"{owner}: a migration broke foreign keys: {broken}")
        finally:
            if sqlite:
                if connection.in_transaction():  # a migration failed midway
                    connection.rollback()
                _foreign_keys(connection, on=True)


def _foreign_keys(connection: Connection, on: bool) -> None:
    """Switch SQLite's foreign key enforcement for this connection.

    Batch mode rebuilds a table by copying it, dropping the original and renaming the
    copy; with enforcement on, that drop fires ON DELETE CASCADE and deletes the child
    rows (the consent log, with a rebuilt subscribers table). SQLite ignores the pragma
    inside a transaction, so it is sent on the driver's connection, outside one.
    """
    raw = connection.connection.driver_connection
    assert raw is not None
    raw.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
