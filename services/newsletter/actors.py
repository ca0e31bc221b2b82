"""Dramatiq actors of the newsletter service.

Declared with shared.tasks.actor, which binds them to the broker
shared.broker.setup_broker() sets up, however early this module is imported. The
modules these actors call never import this one: they send by actor name.
"""

from __future__ import annotations

from services.newsletter import dispatch, process_share, sender
from shared.tasks import actor

#: A sender message runs for sender.SENDER_BUDGET_SECONDS; this leaves room to finish.
SENDER_TIME_LIMIT_MS = (sender.SENDER_BUDGET_SECONDS + 300) * 1000


@actor(
    queue_name="newsletter",
    max_retries=20,
    min_backoff=1000,
    max_backoff=60_000,
    time_limit=SENDER_TIME_LIMIT_MS,
)
def send_issue(issue_id: int, owner: str | None = None, hops: int = 0) -> None:
    """One sender working through the issue's outbox; hands over to a fresh message when
    its time budget is used up and work remains.

    ``owner`` names the sender (see :mod:`services.newsletter.seats`): a retry of this
    message after an error takes the same seat and rows straight back. ``hops`` counts
    how often it went back to the queue because its process ran its share of the
    issue's senders (:mod:`services.newsletter.process_share`).
    """
    working = sender.Sender(issue_id, owner)
    outcome = working.run(hops=hops)
    if outcome == "budget":
        send_issue.send(issue_id, working.id)
    elif outcome == "idle":
        # Rows wait for a retry time or belong to another sender's lease: look again later.
        send_issue.send_with_options(args=(issue_id, working.id), delay=5_000)
    elif outcome == "elsewhere":
        # This process runs its share of the senders: another process takes this one.
        send_issue.send_with_options(
            args=(issue_id, working.id, hops + 1), delay=process_share.elsewhere_delay_ms(hops)
        )


@actor(queue_name="newsletter", max_retries=3)
def supervise_dispatch() -> None:
    """Start scheduled issues and keep senders running for issues being sent."""
    dispatch.supervise()
