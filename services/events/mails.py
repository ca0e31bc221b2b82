"""The mails of the events service, from its outbox (see :mod:`shared.mail.outbox`).

Every mail is composed when it is sent, from the registration as it is then: a mail for
a change someone undid in the meantime is skipped, and the dates listed are the current
ones. Every mail carries the link to the registration's own page, where one cancels.
Mails about a place come with an iCalendar invitation (see :mod:`.invitation`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from services.events import links, schedule, store
from services.events import registration as flows
from services.events.invitation import CANCEL, REQUEST, invitations
from services.events.store import ACTIVE_SEATS, SEATED, WAITING, Event, Registration
from services.events.times import when
from shared.addresses import parse_address
from shared.config import get_settings
from shared.database import read_connection
from shared.i18n import translate
from shared.mail import signing
from shared.mail.message import Attachment, MailKind, PreparedMessage, wrap_text
from shared.mail.outbox import Delivered, Outbox, Outgoing
from shared.web.templates import render_text

#: How long a worker owns a claimed mail before another may take it over.
CLAIM_LEASE_SECONDS = 120

#: A queued row due for longer than this goes to a worker again (lost queue message).
STALE_PENDING_SECONDS = 120

#: The service's outbox, worked by the shared engine.
OUTBOX = Outbox(store.event_mails, "events")

#: Mails about one's registration: written by the system, not part of a list.
EVENT_MAIL = MailKind("event", list_mail=False, auto_submitted=True)

#: Subject of each kind of mail (``{title}``: the series or the event).
SUBJECTS = {
    "confirm": "Please confirm your registration: {title}",
    "registered": "Your registration: {title}",
    "moved_up": "A place has become free for you: {title}",
    "reminder": "Reminder: {title}",
    "changed": "Changed: {title}",
    "event_cancelled": "Cancelled: {title}",
    "cancelled": "Your cancellation: {title}",
}

#: Kinds about one date (the others are about the registration as a whole).
ABOUT_ONE_EVENT = ("moved_up", "reminder", "changed", "event_cancelled")


@dataclass(frozen=True)
class Letter:
    """What a mail says, before it is rendered."""

    subject: str
    context: dict[str, object]
    attachments: list[Attachment]


def _events_named(row: sa.Row) -> list[Event]:
    if not row.event_ids:
        return []
    ids = [int(part) for part in row.event_ids.split(",")]
    with read_connection("events") as conn:
        return [schedule.get_event(event_id, conn) for event_id in ids]


def _letter(row: sa.Row, person: Registration) -> Letter | str:
    """The mail of ``row`` for ``person``, or why it need not go out any more."""
    series = schedule.get_series(person.series_id)
    language = person.language
    holdings = flows.holdings(person)
    seat_of = {holding.event.id: holding.status for holding in holdings}
    attendee = (parse_address(person.email).ascii, person.name)
    context: dict[str, object] = {
        "kind": row.kind,
        "person": person,
        "series": series,
        "holdings": holdings,
        "when": lambda event: when(event, language),
        "manage_url": links.manage_url(person),
    }
    title = series.title
    attachments: list[Attachment] = []
    if row.kind == "confirm":
        if person.confirm_nonce is None:
            return "not sent: nothing awaits confirmation any more"
        context["confirmation_url"] = links.confirmation_url(person)
    elif row.kind == "registered":
        seated = [h.event for h in holdings if h.status == SEATED and not h.event.cancelled_at]
        context["any_place"] = any(
            h.status in (SEATED, WAITING) and not h.event.cancelled_at for h in holdings
        )
        attachments = invitations(series, seated, REQUEST, attendee)
    elif row.kind == "cancelled":
        # Dates taken again since are not cancelled: their calendar entry must stay.
        given_back = [e for e in _events_named(row) if seat_of.get(e.id) not in ACTIVE_SEATS]
        if not given_back:
            return "not sent: the dates were taken again"
        context["events"] = given_back
        attachments = invitations(series, given_back, CANCEL, attendee)
    elif row.kind in ABOUT_ONE_EVENT:
        event = schedule.get_event(row.event_id)
        context["event"] = event
        title = event.title
        status = seat_of.get(event.id)
        context["seated"] = status == SEATED
        if row.kind in ("moved_up", "reminder") and status != SEATED:
            return "not sent: the place was given back"
        if row.kind == "reminder" and event.cancelled_at is not None:
            return "not sent: the event was cancelled"
        if row.kind == "changed" and status not in (SEATED, WAITING):
            return "not sent: no longer registered for this date"
        if row.kind == "event_cancelled":
            # Only a place came with an invitation to take back.
            if status == SEATED:
                attachments = invitations(series, [event], CANCEL, attendee)
        elif status == SEATED and row.kind != "reminder":
            attachments = invitations(series, [event], REQUEST, attendee)
    context["invited"] = bool(attachments) and attachments[0].content_type.endswith(REQUEST)
    subject = translate(SUBJECTS[row.kind], language).format(title=title)
    return Letter(subject, context, attachments)


def compose(row: sa.Row, person: Registration) -> bytes | str:
    """The bytes of the mail of ``row``, or why it need not go out any more."""
    letter = _letter(row, person)
    if isinstance(letter, str):
        return letter
    language = person.language
    settings = get_settings()
    return PreparedMessage(letter.subject, EVENT_MAIL).render(
        parse_address(person.email).ascii,
        person.name,
        text=wrap_text(render_text("mail/events/message.txt", language, **letter.context)),
        html=render_text("mail/events/message.html", language, **letter.context),
        message_id=f"<event-{row.kind}.{row.id}.{secrets.token_hex(6)}@{settings.mail_domain}>",
        attachments=letter.attachments,
    )


def _outgoing(row: sa.Row) -> Outgoing | str:
    with read_connection("events") as conn:
        person = store.registration(conn, row.registration_id)
    if person is None:
        return "the registration is gone"
    data = compose(row, person)
    if isinstance(data, str):
        return data
    return Outgoing(signing.envelope_sender(None), parse_address(person.email).ascii, data)


def deliver(outbox_id: int) -> Delivered:
    """Send one outbox mail exactly once; says what happened to the row."""
    return OUTBOX.deliver_one(outbox_id, CLAIM_LEASE_SECONDS, _outgoing)


def stale_outbox_ids() -> list[int]:
    """Rows that should be with a worker but may have lost their queue message."""
    return OUTBOX.stale(timedelta(seconds=STALE_PENDING_SECONDS), store.event_mails.c.created_at)
