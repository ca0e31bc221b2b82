"""The mails this service sends (confirmation, welcome), through its outbox.

The outbox row is the record of a mail, worked by the shared outbox engine
(:mod:`shared.mail.outbox`): a worker claims it for a lease, sends it exactly once and
settles it. A temporary failure puts it back with the engine's delay and a queue message
for that moment; a lost queue message is re-sent from the row by the sweep; a claimed
row is never sent by two workers at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from services.subscribers import optin, store
from services.subscribers.store import Subscriber
from shared.addresses import parse_address
from shared.config import get_settings
from shared.database import engine
from shared.i18n import translate
from shared.mail import signing
from shared.mail.message import (
    CONFIRMATION,
    WELCOME,
    MailKind,
    PreparedMessage,
    Unsubscribe,
    wrap_text,
)
from shared.mail.outbox import Delivered, Outbox, Outgoing
from shared.web.templates import render_text

#: How long a worker owns a claimed mail before another may take it over (covers a
#: worker killed mid-send; longer than one SMTP conversation with its timeouts).
CLAIM_LEASE_SECONDS = 120

#: A queued outbox row due for longer than this is handed to a worker again by the
#: sweep (its queue message was lost, e.g. Redis restarted without persistence).
STALE_PENDING_SECONDS = 120

#: The subscribers service's outbox, worked by the shared outbox engine.
OUTBOX = Outbox(store.mail_outbox, "subscribers")

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
            context["unsubscribe_url"], signing.unsubscribe_mailto(subscriber.id)
        ),
        message_id=message_id,
    )
    return ComposedMail(data, message_id, signing.envelope_sender(subscriber.id))


def _log_sent(row: sa.Row, mail: ComposedMail) -> None:
    """A confirmation mail the server accepted goes into the consent log."""
    if row.kind != "confirmation":
        return
    with engine("subscribers").begin() as conn:
        store.log_consent(
            conn,
            row.subscriber_id,
            "confirmation_mail",
            store.Context(source="outbox", consent_version=optin.CONSENT_TEXT_VERSION),
            detail=f"Message-ID {mail.message_id}",
        )


def deliver(outbox_id: int) -> Delivered:
    """Send one outbox mail exactly once; says what happened to the row."""
    return OUTBOX.deliver_one(outbox_id, CLAIM_LEASE_SECONDS, _outgoing)


def _outgoing(row: sa.Row) -> Outgoing | str:
    """The claimed row's mail, or why it need not go out any more."""
    with engine("subscribers").connect() as conn:
        subscriber = store.get(conn, row.subscriber_id)
    if subscriber is None:
        return "the subscriber is gone"
    obsolete = _obsolete(row.kind, subscriber)
    if obsolete:
        return obsolete
    mail = compose(subscriber, row.kind)
    return Outgoing(
        mail.envelope_from,
        parse_address(subscriber.email).ascii,
        mail.data,
        on_sent=lambda: _log_sent(row, mail),
    )


def _obsolete(kind: str, subscriber: Subscriber) -> str | None:
    """Why this mail need not go out any more, or None."""
    if kind == "confirmation" and (
        subscriber.status != store.PENDING or not subscriber.confirm_nonce
    ):
        return "not sent: no confirmation outstanding any more"
    if kind == "welcome" and subscriber.status != store.CONFIRMED:
        return "not sent: unsubscribed before the welcome mail"
    return None


def stale_outbox_ids() -> list[int]:
    """Rows that should be with a worker but may have lost their queue message."""
    return OUTBOX.stale(timedelta(seconds=STALE_PENDING_SECONDS), store.mail_outbox.c.created_at)
