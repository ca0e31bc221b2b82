"""The mails this service sends (confirmation, welcome) and the outbox that sends them.

The outbox row is the record of a mail: a worker claims it for a lease, sends, and marks
it sent. A lost queue message is re-sent from the row by the sweep; a claimed row is
never sent by two workers at once.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from datetime import timedelta

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
from shared.mail import return_paths
from shared.mail.message import CONFIRMATION, WELCOME, MailKind, PreparedMessage, Unsubscribe
from shared.mail.plain_text import wrap_text
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

#: The builder's kind of each outbox mail.
KINDS: dict[str, MailKind] = {"confirmation": CONFIRMATION, "welcome": WELCOME}


@dataclass(frozen=True)
class ComposedMail:
    """One mail ready to go: its bytes, Message-ID and envelope sender."""

    data: bytes
    message_id: str
    envelope_from: str


_local = threading.local()


def _transport() -> SMTPTransport:
    # One reused connection per worker thread.
    transport = getattr(_local, "transport", None)
    if transport is None:
        transport = _local.transport = SMTPTransport(get_settings().effective_smtp_url)
    return transport


def compose(subscriber: Subscriber, kind: str) -> ComposedMail:
    """The ``kind`` mail for ``subscriber`` in their language.

    The confirmation mail carries no List-Unsubscribe: nobody is subscribed yet, and
    ignoring it is how one says no.
    """
    language = subscriber.language
    context = {
        "subscriber": subscriber,
        "confirmation_url": optin.confirmation_url(subscriber) if kind == "confirmation" else None,
    }
    context["unsubscribe_url"], context["preferences_url"] = optin.manage_urls(subscriber)
    settings = get_settings()
    message_id = f"<{kind}.{subscriber.id}.{secrets.token_hex(8)}@{settings.mail_domain}>"
    data = PreparedMessage(translate(SUBJECTS[kind], language), KINDS[kind]).render(
        parse_address(subscriber.email).ascii,
        subscriber.name,
        text=wrap_text(render_text(f"mail/subscribers/{kind}.txt", language, **context)),
        html=render_text(f"mail/subscribers/{kind}.html", language, **context),
        unsubscribe=Unsubscribe(
            context["unsubscribe_url"], return_paths.unsubscribe_mailto(subscriber.id)
        ),
        message_id=message_id,
    )
    return ComposedMail(data, message_id, return_paths.envelope_sender(subscriber.id))


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


def _log_sent(outbox_id: int, mail: ComposedMail) -> None:
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
                detail=f"Message-ID {mail.message_id}",
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
    mail = compose(subscriber, kind)

    def commit() -> bool:
        # The point of no return (see SMTPTransport.send): the row says "sent" before
        # the final dot, so a worker killed at any moment never causes a second copy.
        return _finish(outbox_id, MAIL_SENT, only_if_sending=True)

    recipient = parse_address(subscriber.email).ascii
    try:
        _transport().send(mail.envelope_from, recipient, mail.data, commit)
    except Abandoned:
        return "skipped"
    except TemporaryMailError as exc:
        _finish(outbox_id, MAIL_PENDING, str(exc))
        raise
    except PermanentMailError as exc:
        _finish(outbox_id, MAIL_FAILED, str(exc))
        return "failed"
    _log_sent(outbox_id, mail)
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
