"""The language an issue's creator works in, for the summary mail after sending.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.add_column(sa.Column("creator_language", sa.String(2)))


def downgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("creator_language")
