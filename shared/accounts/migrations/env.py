"""Alembic environment for the accounts database."""

from shared.migration_env import run_migrations

run_migrations("accounts")
