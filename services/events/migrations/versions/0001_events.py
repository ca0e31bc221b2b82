"""Event series, their dates, registrations, seats and the service's outbox.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
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
        "series",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("slug", sa.String(100), nullable=False, unique=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("summary", sa.String(500), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("series_id", sa.Integer, sa.ForeignKey("series.id"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("starts_at", UTCDateTime, nullable=False),
        sa.Column("ends_at", UTCDateTime, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("place", sa.String(300), nullable=False),
        sa.Column("link", sa.String(1000)),
        sa.Column("capacity", sa.Integer),
        sa.Column("registration_deadline", UTCDateTime),
        sa.Column("cancelled_at", UTCDateTime),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_events_series_start", "events", ["series_id", "starts_at"])
    op.create_index("ix_events_start", "events", ["starts_at"])
    op.create_table(
        "registrations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("series_id", sa.Integer, sa.ForeignKey("series.id"), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("email_key", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("municipality", sa.String(200), nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("confirm_nonce", sa.String(32)),
        sa.Column("manage_key", sa.String(32), nullable=False),
        sa.Column("requested_at", UTCDateTime, nullable=False),
        sa.Column("confirmed_at", UTCDateTime),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("series_id", "email_key", name="uq_registrations_series_email"),
    )
    op.create_table(
        "seats",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("registration_id", sa.Integer, sa.ForeignKey("registrations.id"), nullable=False),
        sa.Column("event_id", sa.Integer, sa.ForeignKey("events.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("queued_at", UTCDateTime, nullable=False),
        sa.Column("reminded_at", UTCDateTime),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("registration_id", "event_id", name="uq_seats_registration_event"),
    )
    op.create_index("ix_seats_event_status", "seats", ["event_id", "status", "queued_at"])
    op.create_table(
        "event_mails",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("registration_id", sa.Integer, sa.ForeignKey("registrations.id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("event_id", sa.Integer),
        sa.Column("event_ids", sa.String(1000)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("not_before", UTCDateTime),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("claimed_until", UTCDateTime),
        sa.Column("done_at", UTCDateTime),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_event_mails_status", "event_mails", ["status", "id"])


def downgrade() -> None:
    for table in ("event_mails", "seats", "registrations", "events", "series"):
        op.drop_table(table)
