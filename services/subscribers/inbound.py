"""``kgi inbound``: where mail that comes back to us is received and acted on.

It takes bounces, complaints and ``mailto:`` unsubscribes three ways: as an SMTP or LMTP
server behind the site's MTA (which routes the bounce address's domain or local part to
it), from a hosted mailbox over IMAP (``KGI_BOUNCE_MAILBOX_URL``), and from relays'
webhooks (see :mod:`services.subscribers.webhooks`). All three end in
:func:`receive`.

Only our own addresses are accepted: a tagged return address whose signature holds (see
:mod:`shared.mail.signing`), or the bare bounce address, where a report counts only
if the original message it quotes carries such a tag. So nobody can bounce or
unsubscribe an address by writing to us about it.

A message is answered with 250 only after its effect is committed; when the database is
away the answer is 451 and the sending MTA (or the mailbox, which keeps the message)
tries again later. Nothing is lost, and a repeat is recognised by its content.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.exc import SQLAlchemyError

from services.subscribers import feedback
from shared.mail.mailbox import MailboxEndpoint, PollResult, poll_mailbox
from shared.mail.reports import DeliveryReport, ReportKind, read_report, read_unsubscribe
from shared.mail.signing import (
    UNSUBSCRIBE,
    ReturnTag,
    is_bounce_address,
    read_return_address,
)

logger = logging.getLogger("kgi.inbound")

#: Largest message taken: a delivery report quoting a whole issue is far below this.
MAX_MESSAGE_BYTES = 10 * 1024 * 1024

#: Replies, one definition each (RFC 3463 enhanced status codes).
ACCEPTED = "250 2.0.0 OK"
NO_SUCH_MAILBOX = "550 5.1.1 No such mailbox here"
TRY_LATER = "451 4.3.0 Temporarily unable to record this message, try again later"


class RecordingFailed(Exception):
    """The report could not be recorded now (database away); try again later."""


@dataclass(frozen=True)
class Received:
    """What one message did: the report as read and the outcomes per subscriber."""

    report: DeliveryReport
    tag: ReturnTag | None
    outcomes: list[feedback.FeedbackOutcome]


def is_ours(recipient: str) -> bool:
    """Whether mail to ``recipient`` is for us: a valid tag or the bare bounce address."""
    return read_return_address(recipient) is not None or is_bounce_address(recipient)


def receive(raw: bytes, recipient: str | None) -> Received:
    """Read one message that arrived at ``recipient`` and apply it.

    ``recipient`` is the envelope recipient (None when a mailbox did not record it).
    Raises RecordingFailed when the database cannot take it now; the caller keeps the
    message for another attempt.
    """
    tag = read_return_address(recipient) if recipient else None
    if tag is not None and tag.kind == UNSUBSCRIBE:
        # A vacation message sent back to the unsubscribe address is no request.
        report = read_report(raw)
        if report.kind != ReportKind.AUTO_REPLY:
            report = read_unsubscribe(raw)
    else:
        report = read_report(raw)
        if tag is None and report.original_return_path:
            # At the bare address (a complaint loop, a mailbox without Delivered-To): only
            # the tag in the quoted original says whom it is about.
            tag = read_return_address(report.original_return_path)
    if tag is None:
        logger.info("%s report without a valid tag ignored (%s)", report.kind, report.source)
        return Received(report, None, [])
    try:
        outcomes = feedback.record(report, tag, feedback.report_key(raw))
    except SQLAlchemyError as exc:
        raise RecordingFailed(str(exc)) from exc
    logger.info("%s report: %s", report.kind, ", ".join(o.action for o in outcomes))
    return Received(report, tag, outcomes)


def poll_bounce_mailbox(url: str) -> PollResult:
    """One look into the hosted bounce mailbox: every message goes through
    :func:`receive` and is removed once recorded; one that cannot be recorded now stays
    for the next look. Raises MailboxUnavailable when the mailbox cannot be reached."""

    def handle(raw: bytes, recipient: str | None) -> None:
        receive(raw, recipient)

    return poll_mailbox(MailboxEndpoint.from_url(url), handle)


class InboundHandler:
    """aiosmtpd handler: refuses foreign recipients, records each message per recipient."""

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not is_ours(address):
            return NO_SUCH_MAILBOX
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        replies = []
        for recipient in envelope.rcpt_tos:
            try:
                # Database work runs in a thread: the event loop keeps serving others.
                await asyncio.to_thread(receive, raw, recipient)
                replies.append(ACCEPTED)
            except RecordingFailed as exc:
                logger.warning("message for %s not recorded, asked to retry: %s", recipient, exc)
                replies.append(TRY_LATER)
        if isinstance(server, LMTP):
            # LMTP answers DATA once per recipient (RFC 2033 4.2).
            return "\r\n".join(replies)
        return TRY_LATER if TRY_LATER in replies else ACCEPTED


class InboundServer(Controller):
    """``kgi inbound``'s listener in a thread of its own: SMTP, or LMTP with ``lmtp``."""

    def __init__(self, host: str, port: int, lmtp: bool = False) -> None:
        super().__init__(
            InboundHandler(),
            hostname=host,
            port=port,
            data_size_limit=MAX_MESSAGE_BYTES,
            # Bounces may quote 8-bit originals; bytes are kept as they came.
            decode_data=False,
        )
        self.lmtp = lmtp

    def factory(self) -> SMTP:
        """The protocol object for one connection."""
        if self.lmtp:
            return LMTP(self.handler, **self.SMTP_kwargs)
        return super().factory()
