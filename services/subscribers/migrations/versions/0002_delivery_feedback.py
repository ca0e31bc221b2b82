"""Bounces and complaints: the ``bounced`` state's timestamp and the feedback log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from shared.database import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("bounced_at", UTCDateTime))
    op.create_table(
        "delivery_feedback",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "subscriber_id",
            sa.Integer,
            sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("issue_id", sa.Integer, index=True),
        sa.Column("status", sa.String(16)),
        sa.Column("detail", sa.Text),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("report_key", sa.String(64), nullable=False, unique=True),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("delivery_feedback")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("bounced_at")
