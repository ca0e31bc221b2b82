"""The mails this service sends (confirmation, welcome) and the outbox that sends them.

The outbox row is the record of a mail: a worker claims it for a lease, sends, and marks
it sent. A lost queue message is re-sent from the row by the sweep; a claimed row is
never sent by two workers at once.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from email.message import EmailMessage

import sqlalchemy as sa

from services.subscribers import optin, store
from services.subscribers.store import (
    MAIL_FAILED,
    MAIL_PENDING,
    MAIL_SENDING,
    MAIL_SENT,
    Subscriber,
)
from shared.addresses import parse_address
from shared.config import get_settings
from shared.database import engine, read_connection, utcnow
from shared.i18n import translate
from shared.mail.message import build_message, envelope_sender, recipient
from shared.mail.transport import (
    Abandoned,
    PermanentMailError,
    SMTPTransport,
    TemporaryMailError,
)
from shared.web.templates import render_text

#: How long a worker owns a claimed mail before another may take it over (covers a
#: worker killed mid-send; longer than one SMTP conversation with its timeouts).
CLAIM_LEASE_SECONDS = 120

#: A pending outbox row older than this is handed to a worker again by the sweep
#: (its queue message was lost, e.g. Redis restarted without persistence).
STALE_PENDING_SECONDS = 120

SUBJECTS = {
    "confirmation": "Please confirm your subscription to the KGI-Infobrief",
    "welcome": "Welcome to the KGI-Infobrief",
}

_local = threading.local()


def _transport() -> SMTPTransport:
    # One reused connection per worker thread.
    transport = getattr(_local, "transport", None)
    if transport is None:
        transport = _local.transport = SMTPTransport(get_settings().effective_smtp_url)
    return transport


def compose(subscriber: Subscriber, kind: str) -> EmailMessage:
    """The ``kind`` mail for ``subscriber`` in their language."""
    language = subscriber.language
    context = {
        "subscriber": subscriber,
        "confirmation_url": optin.confirmation_url(subscriber) if kind == "confirmation" else None,
    }
    context["unsubscribe_url"], context["preferences_url"] = optin.manage_urls(subscriber)
    return build_message(
        to=recipient(parse_address(subscriber.email).ascii, subscriber.name),
        subject=translate(SUBJECTS[kind], language),
        text=render_text(f"mail/subscribers/{kind}.txt", language, **context),
        html=render_text(f"mail/subscribers/{kind}.html", language, **context),
        unsubscribe_url=context["unsubscribe_url"],
    )


def _claim(outbox_id: int) -> tuple[str, Subscriber] | None:
    """Take the row for this worker, or None when it is sent, failed or owned by another."""
    now = utcnow()
    table = store.mail_outbox
    with engine("subscribers").begin() as conn:
        result = conn.execute(
            table.update()
            .where(
                table.c.id == outbox_id,
                sa.or_(
                    table.c.status == MAIL_PENDING,
                    sa.and_(table.c.status == MAIL_SENDING, table.c.lease_until < now),
                ),
            )
            .values(
                status=MAIL_SENDING,
                lease_until=now + timedelta(seconds=CLAIM_LEASE_SECONDS),
                attempts=table.c.attempts + 1,
            )
        )
        if result.rowcount != 1:
            return None
        row = conn.execute(
            sa.select(table.c.kind, table.c.subscriber_id).where(table.c.id == outbox_id)
        ).one()
        subscriber = store.get(conn, row.subscriber_id)
    if subscriber is None:
        return None
    return row.kind, subscriber


def _finish(
    outbox_id: int, status: str, error: str | None = None, only_if_sending: bool = False
) -> bool:
    """Record the outcome. False when ``only_if_sending`` and the row is no longer this
    worker's (another took it over after the lease)."""
    condition = store.mail_outbox.c.id == outbox_id
    if only_if_sending:
        condition = sa.and_(condition, store.mail_outbox.c.status == MAIL_SENDING)
    with engine("subscribers").begin() as conn:
        result = conn.execute(
            store.mail_outbox.update()
            .where(condition)
            .values(
                status=status,
                lease_until=None,
                sent_at=utcnow() if status == MAIL_SENT else None,
                last_error=error,
            )
        )
    return result.rowcount == 1


def _log_sent(outbox_id: int, message: EmailMessage) -> None:
    """A confirmation mail the server accepted goes into the consent log."""
    with engine("subscribers").begin() as conn:
        row = conn.execute(
            sa.select(store.mail_outbox.c.subscriber_id, store.mail_outbox.c.kind).where(
                store.mail_outbox.c.id == outbox_id
            )
        ).one()
        if row.kind == "confirmation":
            store.log_consent(
                conn,
                row.subscriber_id,
                "confirmation_mail",
                store.Context(source="outbox", consent_version=optin.CONSENT_TEXT_VERSION),
                detail=f"Message-ID {message['Message-ID']}",
            )


def deliver(outbox_id: int) -> str:
    """Send one outbox mail; returns what happened.

    Raises TemporaryMailError after putting the row back, so the actor retries later.
    """
    claimed = _claim(outbox_id)
    if claimed is None:
        return "skipped"
    kind, subscriber = claimed
    if kind == "confirmation" and (
        subscriber.status != store.PENDING or not subscriber.confirm_nonce
    ):
        _finish(outbox_id, MAIL_SENT, "not sent: no confirmation outstanding any more")
        return "obsolete"
    if kind == "welcome" and subscriber.status != store.CONFIRMED:
        _finish(outbox_id, MAIL_SENT, "not sent: unsubscribed before the welcome mail")
        return "obsolete"
    message = compose(subscriber, kind)
    committed = False

    def commit() -> bool:
        # The point of no return (see SMTPTransport.send_raw): the row says "sent" before
        # the final dot, so a worker killed at any moment never causes a second copy.
        nonlocal committed
        committed = _finish(outbox_id, MAIL_SENT, only_if_sending=True)
        return committed

    recipient = parse_address(subscriber.email).ascii
    try:
        _transport().send_raw(envelope_sender(), recipient, message.as_bytes(), commit)
    except Abandoned:
        return "skipped"
    except TemporaryMailError as exc:
        if committed and exc.code is None:
            _log_sent(outbox_id, message)  # the connection broke after the dot was handed over
            return "sent"
        _finish(outbox_id, MAIL_PENDING, str(exc))
        raise
    except PermanentMailError as exc:
        _finish(outbox_id, MAIL_FAILED, str(exc))
        return "failed"
    _log_sent(outbox_id, message)
    return "sent"


def stale_outbox_ids() -> list[int]:
    """Rows that should be with a worker but may have lost their queue message."""
    now = utcnow()
    table = store.mail_outbox
    with read_connection("subscribers") as conn:
        rows = conn.execute(
            sa.select(table.c.id).where(
                sa.or_(
                    sa.and_(
                        table.c.status == MAIL_PENDING,
                        table.c.created_at < now - timedelta(seconds=STALE_PENDING_SECONDS),
                    ),
                    sa.and_(table.c.status == MAIL_SENDING, table.c.lease_until < now),
                )
            )
        )
        return [row.id for row in rows]
