"""Issues, their items and log, and the dispatch outbox.

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
        "issues",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("preheader", sa.String(200), nullable=False),
        sa.Column("intro", sa.Text, nullable=False),
        sa.Column("closing", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("scheduled_at", UTCDateTime),
        sa.Column("created_by", sa.String(254), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("audience_count", sa.Integer, nullable=False),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("pause_reason", sa.Text),
        # Rendered once when dispatch starts (Jinja2 + premailer + text), with placeholders
        # for the per-recipient parts.
        sa.Column("rendered_html", sa.Text),
        sa.Column("rendered_text", sa.Text),
        sa.Column("summary_sent", sa.Boolean, nullable=False),
    )
    op.create_table(
        "issue_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "issue_id",
            sa.Integer,
            sa.ForeignKey("issues.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("content_id", sa.Integer, nullable=False),
        sa.Column("snapshot", sa.Text, nullable=False),
        sa.UniqueConstraint("issue_id", "content_id", name="uq_issue_items_content"),
    )
    op.create_table(
        "issue_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "issue_id",
            sa.Integer,
            sa.ForeignKey("issues.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(254), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "issue_id", sa.Integer, sa.ForeignKey("issues.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("unsubscribe_url", sa.String(1000), nullable=False),
        sa.Column("preferences_url", sa.String(1000), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("not_before", UTCDateTime),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("claimed_until", UTCDateTime),
        sa.Column("done_at", UTCDateTime),
        sa.Column("error", sa.Text),
        sa.UniqueConstraint("issue_id", "email", name="uq_outbox_issue_email"),
    )
    op.create_index("ix_outbox_issue_status", "outbox", ["issue_id", "status"])


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("issue_log")
    op.drop_table("issue_items")
    op.drop_table("issues")
