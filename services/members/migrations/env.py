"""Alembic environment for the members database."""

from shared.migration_env import run_migrations

run_migrations("members")
