"""Items of an issue come from the feeds service or from the events service (a series'
date): a source column, and one item per source and id.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite cannot change a constraint in place: batch mode copies the table.
    with op.batch_alter_table("issue_items", recreate="auto") as batch:
        batch.add_column(sa.Column("source", sa.String(16), nullable=False, server_default="feeds"))
        batch.drop_constraint("uq_issue_items_content", type_="unique")
        batch.create_unique_constraint(
            "uq_issue_items_content", ["issue_id", "source", "content_id"]
        )


def downgrade() -> None:
    # Without the source, a date would be read as the content item of the same id.
    op.execute("DELETE FROM issue_items WHERE source = 'events'")
    with op.batch_alter_table("issue_items", recreate="auto") as batch:
        batch.drop_constraint("uq_issue_items_content", type_="unique")
        # Dates would collide with items of the same id once the source is gone.
        batch.create_unique_constraint("uq_issue_items_content", ["issue_id", "content_id"])
        batch.drop_column("source")
