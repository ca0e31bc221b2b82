"""Alembic environment for the subscribers database."""

from shared.migration_env import run_migrations

run_migrations("subscribers")
