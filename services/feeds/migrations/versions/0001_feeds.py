"""Items, their history, and partner sources.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from shared.database import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("url", sa.String(1000), nullable=False, unique=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("selectors", sa.Text),
        sa.Column("language", sa.String(2)),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("interval_minutes", sa.Integer, nullable=False),
        sa.Column("etag", sa.String(300)),
        sa.Column("last_modified", sa.String(100)),
        sa.Column("last_fetch_at", UTCDateTime),
        sa.Column("next_fetch_at", UTCDateTime, index=True),
        sa.Column("last_status", sa.String(32)),
        sa.Column("last_error", sa.Text),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column(
            "source_id", sa.Integer, sa.ForeignKey("sources.id", ondelete="CASCADE"), index=True
        ),
        sa.Column("slug", sa.String(200), nullable=False, unique=True),
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
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("effective_at", UTCDateTime),
        sa.Column("expires_at", UTCDateTime),
        sa.Column("published_at", UTCDateTime, index=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("hidden", sa.Boolean, nullable=False),
        sa.Column("guid", sa.String(1000)),
        sa.Column("link", sa.String(1000)),
        sa.Column("content_hash", sa.String(64)),
        sa.UniqueConstraint("source_id", "guid", name="uq_items_source_guid"),
    )
    op.create_table(
        "item_history",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "item_id",
            sa.Integer,
            sa.ForeignKey("items.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(254), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(16)),
        sa.Column("to_state", sa.String(16)),
        sa.Column("comment", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("item_history")
    op.drop_table("items")
    op.drop_table("sources")
