"""Pending revisions of published items; the moment public content last changed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from shared.database import UTCDateTime, utcnow

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "item_revisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "item_id",
            sa.Integer,
            sa.ForeignKey("items.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("lead_image_url", sa.String(1000)),
        sa.Column("lead_image_alt", sa.String(300)),
        sa.Column("author", sa.String(200)),
        sa.Column("event_start", sa.Date),
        sa.Column("event_end", sa.Date),
        sa.Column("event_location", sa.String(200)),
        sa.Column("event_organiser", sa.String(200)),
        sa.Column("translation_id", sa.Integer, sa.ForeignKey("items.id", ondelete="SET NULL")),
        sa.Column("effective_at", UTCDateTime),
        sa.Column("expires_at", UTCDateTime),
        sa.Column("submitted_by", sa.String(254), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("decided_by", sa.String(254)),
        sa.Column("decided_at", UTCDateTime),
    )
    op.create_index(
        "uq_item_revisions_pending",
        "item_revisions",
        ["item_id"],
        unique=True,
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )
    content_version = op.create_table(
        "content_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("changed_at", UTCDateTime, nullable=False),
    )
    # Existing feeds have been served with older dates; starting now keeps them monotonic.
    op.bulk_insert(content_version, [{"id": 1, "version": 1, "changed_at": utcnow()}])


def downgrade() -> None:
    op.drop_table("content_version")
    op.drop_index("uq_item_revisions_pending", table_name="item_revisions")
    op.drop_table("item_revisions")
