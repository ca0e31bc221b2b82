"""Double opt-in: sign-up, confirmation, preferences, unsubscribe, expiry of stale sign-ups.

Each flow is one database transaction that changes the subscriber, appends to the consent
log and, where a mail is due, adds it to the outbox. The mail is handed to a worker only
after the commit, so a crash can delay a mail but never send one for a change that was
rolled back.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import sqlalchemy as sa

from services.subscribers import store
from services.subscribers.store import CONFIRMED, PENDING, UNSUBSCRIBED, Context, Subscriber
from shared import ratelimit
from shared.addresses import Address, clean_name, parse_address, parse_language
from shared.config import get_settings
from shared.database import engine, read_connection, utcnow
from shared.errors import BadRequest, Gone, TooMany
from shared.tokens import ExpiredToken, InvalidToken, make_token, read_token
from shared.web.paths import absolute_url_for

#: Version of the consent text shown beside the sign-up form. Change it whenever the
#: wording changes, so the consent log says which text each person agreed to.
CONSENT_TEXT_VERSION = "2026-11-de-en-1"

#: Most confirmation mails to one address in 24 hours, whatever the cooldown allows.
CONFIRMATIONS_PER_ADDRESS_PER_DAY = 5

#: Token purposes (each a separate signing salt).
CONFIRM_PURPOSE = "confirm"
MANAGE_PURPOSE = "manage"


#: How long a client that signed up too often waits (the allowance is per hour).
SIGNUP_RETRY_AFTER_SECONDS = 3600


class SignupRefused(TooMany):
    """Too many sign-ups from one client."""


class LinkInvalid(BadRequest):
    """A link from a mail was altered or belongs to no one."""


class LinkExpired(Gone, LinkInvalid):
    """A link from a mail that was valid once: expired, or its sign-up is gone."""


@dataclass(frozen=True)
class SignupForm:
    """What a sign-up (form or API) asked for, already checked."""

    address: Address
    name: str
    language: str


def check_signup(fields: dict[str, Any], default_language: str = "de") -> SignupForm:
    """Validate sign-up fields; raises ``InvalidInput`` naming the field."""
    return SignupForm(
        address=parse_address(fields.get("email")),
        name=clean_name(fields.get("name")),
        language=parse_language(fields.get("language"), default_language),
    )


def confirmation_url(subscriber: Subscriber) -> str:
    """The link in the confirmation mail (requires an outstanding nonce)."""
    assert subscriber.confirm_nonce, "no confirmation outstanding"
    token = make_token(CONFIRM_PURPOSE, {"id": subscriber.id, "n": subscriber.confirm_nonce})
    return absolute_url_for("subscribers:confirm", token=token) + f"?lang={subscriber.language}"


class Managed(Protocol):
    """What the personal links of a subscriber are made of: a :class:`Subscriber`, or a
    row with just these columns (the audience of an issue reads no more)."""

    @property
    def id(self) -> int: ...

    @property
    def manage_key(self) -> str: ...

    @property
    def language(self) -> str: ...


def manage_token(subscriber: Managed) -> str:
    """The token of the preferences, unsubscribe and privacy links: valid while the row lives."""
    return make_token(MANAGE_PURPOSE, {"id": subscriber.id, "k": subscriber.manage_key})


def manage_urls(subscriber: Managed) -> tuple[str, str]:
    """(one-click unsubscribe URI, preferences page), both under KGI_BASE_URL and in the
    subscriber's language; one signed token serves both."""
    token = manage_token(subscriber)
    query = f"?lang={subscriber.language}"
    return (
        absolute_url_for("subscribers:unsubscribe", token=token) + query,
        absolute_url_for("subscribers:preferences", token=token) + query,
    )


def unsubscribe_url(subscriber: Subscriber) -> str:
    """The one-click (RFC 8058) unsubscribe URI."""
    return manage_urls(subscriber)[0]


def preferences_url(subscriber: Subscriber) -> str:
    return manage_urls(subscriber)[1]


def _dispatch(outbox_ids: list[int]) -> None:
    # By name: the actors module imports this one (through mails), so this one must not
    # import it.
    from shared.tasks import enqueue

    for outbox_id in outbox_ids:
        # Redis unreachable: the row stays pending and the scheduler's outbox sweep
        # hands it to a worker once Redis is back.
        with contextlib.suppress(Exception):
            enqueue("send_subscriber_mail", outbox_id)


def check_client_allowance(ip: str) -> None:
    """Raise SignupRefused when this client has signed up too often this hour."""
    if not ratelimit.hit(f"signup-ip:{ip}", get_settings().signups_per_ip_per_hour, 3600):
        raise SignupRefused(
            "Too many sign-ups from your network. Please try again in an hour.",
            retry_after=SIGNUP_RETRY_AFTER_SECONDS,
        )


def _confirmation_due(subscriber: Subscriber | None) -> bool:
    """Whether one more confirmation mail may go to this address now (anti mail-bomb)."""
    if subscriber is not None:
        cooldown = timedelta(seconds=get_settings().confirmation_resend_seconds)
        if subscriber.status == PENDING and utcnow() - subscriber.requested_at < cooldown:
            return False
    return True


def sign_up(form: SignupForm, context: Context) -> None:
    """Start (or restart) the double opt-in for ``form.address``.

    Answers nothing: the caller shows the same page whatever happened, so the form cannot
    be used to find out who subscribes.
    """
    outbox: list[int] = []
    with engine("subscribers").begin() as conn:
        existing = store.find_by_key(conn, form.address.key)
        if existing is not None and existing.status == CONFIRMED:
            return  # already subscribed: nothing new, and nothing that tells.
        if not _confirmation_due(existing):
            return
        if not ratelimit.hit(
            f"confirm-addr:{form.address.key}", CONFIRMATIONS_PER_ADDRESS_PER_DAY, 86400
        ):
            return
        now = utcnow()
        if existing is None:
            subscriber_id = store.insert(
                conn,
                email=form.address.display,
                email_key=form.address.key,
                name=form.name,
                language=form.language,
                status=PENDING,
                confirm_nonce=store.new_secret(),
            )
        else:
            subscriber_id = existing.id
            store.update(
                conn,
                subscriber_id,
                status=PENDING,
                name=form.name or existing.name,
                language=form.language,
                requested_at=now,
                # Keep an outstanding nonce so the earlier mail's link still works.
                confirm_nonce=existing.confirm_nonce or store.new_secret(),
            )
        store.log_consent(conn, subscriber_id, "signup", context)
        outbox.append(store.queue_mail(conn, subscriber_id, "confirmation"))
    _dispatch(outbox)


def _read_link(purpose: str, token: str, max_age: int | None = None) -> dict[str, Any]:
    try:
        payload = read_token(purpose, token, max_age)
    except ExpiredToken:
        raise LinkExpired(
            "This confirmation link has expired. Please sign up again to get a new one."
        ) from None
    except InvalidToken:
        raise LinkInvalid(
            "This link is damaged or incomplete. Please copy the whole link from the mail."
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), int):
        raise LinkInvalid(
            "This link is damaged or incomplete. Please copy the whole link from the mail."
        )
    return payload


def subscriber_for_confirmation(token: str) -> Subscriber:
    """The subscriber a confirmation link belongs to; raises LinkInvalid."""
    payload = _read_link(CONFIRM_PURPOSE, token, get_settings().pending_ttl_seconds)
    with read_connection("subscribers") as conn:
        subscriber = store.get(conn, payload["id"])
    if subscriber is None:
        raise LinkExpired("This link is no longer valid. Please sign up again.")
    if subscriber.status == CONFIRMED:
        return subscriber
    if subscriber.confirm_nonce is None or not secrets.compare_digest(
        subscriber.confirm_nonce, str(payload.get("n", ""))
    ):
        raise LinkExpired("This link is no longer valid. Please sign up again.")
    return subscriber


def confirm(token: str, context: Context) -> Subscriber:
    """Confirm the subscription behind ``token`` (idempotent) and queue the welcome mail."""
    subscriber = subscriber_for_confirmation(token)
    if subscriber.status == CONFIRMED:
        return subscriber
    outbox: list[int] = []
    with engine("subscribers").begin() as conn:
        # Conditional update: two clicks at once confirm (and welcome) only once.
        result = conn.execute(
            store.subscribers.update()
            .where(
                store.subscribers.c.id == subscriber.id,
                store.subscribers.c.confirm_nonce == subscriber.confirm_nonce,
            )
            .values(
                status=CONFIRMED, confirmed_at=utcnow(), updated_at=utcnow(), confirm_nonce=None
            )
        )
        if result.rowcount == 1:
            store.log_consent(conn, subscriber.id, "confirmed", context)
            conn.execute(
                store.erasures.delete().where(
                    store.erasures.c.email_hash == store.email_hash(subscriber.email_key)
                )
            )
            outbox.append(store.queue_mail(conn, subscriber.id, "welcome"))
        confirmed = store.get(conn, subscriber.id)
    _dispatch(outbox)
    assert confirmed is not None
    return confirmed


def subscriber_for_manage_link(token: str) -> Subscriber | None:
    """The subscriber of a preferences/unsubscribe link; None once erased or purged.

    Raises LinkInvalid for a tampered token.
    """
    payload = _read_link(MANAGE_PURPOSE, token)
    with read_connection("subscribers") as conn:
        subscriber = store.get(conn, payload["id"])
    if subscriber is None or not secrets.compare_digest(
        subscriber.manage_key, str(payload.get("k", ""))
    ):
        return None
    return subscriber


def unsubscribe(subscriber: Subscriber, context: Context) -> None:
    """Take effect at once; repeating it changes nothing and logs nothing."""
    with engine("subscribers").begin() as conn:
        store.end_subscription(conn, subscriber.id, UNSUBSCRIBED, context, "unsubscribed")


def update_preferences(
    subscriber: Subscriber, fields: dict[str, Any], context: Context
) -> Subscriber:
    """Change name and language; raises InvalidInput for bad values."""
    name = clean_name(fields.get("name"))
    language = parse_language(fields.get("language"), subscriber.language)
    with engine("subscribers").begin() as conn:
        store.update(conn, subscriber.id, name=name, language=language)
        store.log_consent(
            conn, subscriber.id, "preferences", context, detail=f"name={name!r} language={language}"
        )
        updated = store.get(conn, subscriber.id)
    assert updated is not None
    return updated


def purge_expired_pending() -> int:
    """Delete sign-ups never confirmed within the lifetime; returns how many went.

    A pending row that once was subscribed (a re-sign-up left unconfirmed) goes back to
    ``unsubscribed`` instead, so its history stays.
    """
    cutoff = utcnow() - timedelta(seconds=get_settings().pending_ttl_seconds)
    table = store.subscribers
    stale = sa.and_(table.c.status == PENDING, table.c.requested_at < cutoff)
    with engine("subscribers").begin() as conn:
        conn.execute(
            table.update()
            .where(
                stale,
                sa.or_(table.c.confirmed_at.is_not(None), table.c.unsubscribed_at.is_not(None)),
            )
            .values(status=UNSUBSCRIBED, confirm_nonce=None, updated_at=utcnow())
        )
        result = conn.execute(table.delete().where(stale))
    return int(result.rowcount)
