"""Dramatiq actors of the events service (see :mod:`shared.tasks`): its mails, and what
the scheduler asks for on every tick."""

from __future__ import annotations

from services.events import mails, upkeep
from shared.tasks import actor

#: Dramatiq's own retries are for the unexpected only (the database away mid-send);
#: what the mail system says is handled by the outbox engine's retry policy.
MAIL_MAX_RETRIES = 5


@actor(queue_name="events", max_retries=MAIL_MAX_RETRIES)
def send_event_mail(outbox_id: int) -> None:
    """Send one mail of a registration; after a temporary failure the same message comes
    back when the outbox engine's delay is over."""
    delivered = mails.deliver(outbox_id)
    if delivered.retry_after is not None:
        delay_ms = int(delivered.retry_after.total_seconds() * 1000)
        send_event_mail.send_with_options(args=(outbox_id,), delay=delay_ms)


@actor(queue_name="events", max_retries=3)
def sweep_event_mails() -> None:
    """Hand rows whose queue message was lost (Redis restart) to a worker again."""
    for outbox_id in mails.stale_outbox_ids():
        send_event_mail.send(outbox_id)


@actor(queue_name="events", max_retries=3)
def send_event_reminders() -> None:
    """Queue and send the reminders of tomorrow's events."""
    for outbox_id in upkeep.queue_reminders():
        send_event_mail.send(outbox_id)


@actor(queue_name="events", max_retries=3)
def purge_past_registrations() -> None:
    """Forget registrations whose events are long past, and unconfirmed ones."""
    upkeep.purge_registrations()
