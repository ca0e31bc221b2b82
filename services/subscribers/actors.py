"""Dramatiq actors of the subscribers service."""

from __future__ import annotations

import dramatiq

import shared.broker  # noqa: F401  (installs the broker before the actors bind to it)
from services.subscribers import mails, optin
from shared.mail.transport import TemporaryMailError

#: Retries of a temporarily failing mail: with exponential backoff from 5 s up to one
#: hour, 12 retries span roughly a day before the row is left for the sweep.
MAIL_MAX_RETRIES = 12
MAIL_MIN_BACKOFF_MS = 5_000
MAIL_MAX_BACKOFF_MS = 3_600_000


@dramatiq.actor(
    queue_name="subscribers",
    max_retries=MAIL_MAX_RETRIES,
    min_backoff=MAIL_MIN_BACKOFF_MS,
    max_backoff=MAIL_MAX_BACKOFF_MS,
    retry_when=lambda retries, exc: (
        isinstance(exc, TemporaryMailError) and retries < MAIL_MAX_RETRIES
    ),
)
def send_subscriber_mail(outbox_id: int) -> None:
    """Send one confirmation or welcome mail from the outbox."""
    mails.deliver(outbox_id)


@dramatiq.actor(queue_name="subscribers", max_retries=3)
def sweep_outbox() -> None:
    """Hand rows whose queue message was lost (Redis restart) to a worker again."""
    for outbox_id in mails.stale_outbox_ids():
        send_subscriber_mail.send(outbox_id)


@dramatiq.actor(queue_name="subscribers", max_retries=3)
def purge_expired_signups() -> None:
    """Remove sign-ups that were never confirmed in time."""
    optin.purge_expired_pending()
