"""The mail outbox moves to the shared outbox engine: its columns and states.

pending → queued, sending → claimed, sent → delivered (or skipped, for mails found
obsolete before sending, which carried their reason in last_error), failed stays.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from shared.database import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mail_outbox") as batch:
        batch.alter_column("lease_until", new_column_name="claimed_until")
        batch.alter_column("sent_at", new_column_name="done_at")
        batch.alter_column("last_error", new_column_name="error")
        batch.add_column(sa.Column("not_before", UTCDateTime))
        batch.add_column(sa.Column("claimed_by", sa.String(64)))
    op.execute(
        "UPDATE mail_outbox SET status = CASE"
        " WHEN status = 'pending' THEN 'queued'"
        " WHEN status = 'sending' THEN 'claimed'"
        " WHEN status = 'sent' AND error IS NOT NULL THEN 'skipped'"
        " WHEN status = 'sent' THEN 'delivered'"
        " ELSE status END"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE mail_outbox SET status = CASE"
        " WHEN status = 'queued' THEN 'pending'"
        " WHEN status = 'claimed' THEN 'sending'"
        " WHEN status IN ('committed', 'delivered', 'skipped') THEN 'sent'"
        " ELSE status END"
    )
    with op.batch_alter_table("mail_outbox") as batch:
        batch.drop_column("claimed_by")
        batch.drop_column("not_before")
        batch.alter_column("error", new_column_name="last_error")
        batch.alter_column("done_at", new_column_name="sent_at")
        batch.alter_column("claimed_until", new_column_name="lease_until")
