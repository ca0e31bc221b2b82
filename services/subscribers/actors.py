"""Dramatiq actors of the subscribers service.

Declared with shared.tasks.actor, which binds them to the broker
shared.broker.setup_broker() sets up, however early this module is imported. The
modules these actors call never import this one: they send by actor name.
"""

from __future__ import annotations

from services.subscribers import mails, optin
from shared.tasks import actor

#: Dramatiq's own retries are for the unexpected only (the database away mid-send);
#: what the mail system says is handled by the outbox engine's retry policy.
MAIL_MAX_RETRIES = 5


@actor(queue_name="subscribers", max_retries=MAIL_MAX_RETRIES)
def send_subscriber_mail(outbox_id: int) -> None:
    """Send one confirmation or welcome mail from the outbox; after a temporary failure
    the same message comes back when the outbox engine's delay is over."""
    delivered = mails.deliver(outbox_id)
    if delivered.retry_after is not None:
        delay_ms = int(delivered.retry_after.total_seconds() * 1000)
        send_subscriber_mail.send_with_options(args=(outbox_id,), delay=delay_ms)


@actor(queue_name="subscribers", max_retries=3)
def sweep_outbox() -> None:
    """Hand rows whose queue message was lost (Redis restart) to a worker again."""
    for outbox_id in mails.stale_outbox_ids():
        send_subscriber_mail.send(outbox_id)


@actor(queue_name="subscribers", max_retries=3)
def purge_expired_signups() -> None:
    """Remove sign-ups that were never confirmed in time."""
    optin.purge_expired_pending()
