"""Alembic environment for the newsletter database."""

from shared.migration_env import run_migrations

run_migrations("newsletter")
