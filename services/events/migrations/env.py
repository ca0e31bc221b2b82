"""Alembic environment for the events database."""

from shared.migration_env import run_migrations

run_migrations("events")
