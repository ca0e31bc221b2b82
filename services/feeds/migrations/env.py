"""Alembic environment for the feeds database."""

from shared.migration_env import run_migrations

run_migrations("feeds")
