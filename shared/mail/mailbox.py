"""Reading bounces from a hosted mailbox over IMAP.

Some senders' mail systems cannot pipe mail to our receiver, so their bounce address
leads to a hosted mailbox instead, named by ``KGI_BOUNCE_MAILBOX_URL``::

    imaps://bounces%40kgi.example.org:secret@imap.example.org/INBOX
    imap://user:pass@127.0.0.1:1143/INBOX?starttls=true&cafile=/path/ca.pem

:func:`poll_mailbox` logs in, hands every message in the folder to a handler together
with the address it was delivered to, and removes a message only once the handler
returned normally. Delivery is at least once: a crash between the handler and the
removal means the same message is handed over again on the next poll, so the handler
must be idempotent (recording the same bounce twice must do no harm).

The mailbox's URL is parsed by :mod:`shared.mail.mailbox_endpoint`, the IMAP session
and its commands are in :mod:`shared.mail.imap_session`; this module holds the poll.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import parseaddr

from shared.mail.imap_session import (
    MailboxUnavailable,
    _capabilities,
    _fetch,
    _mailbox_name,
    _open,
    _search,
    _store,
    _text,
)
from shared.mail.mailbox_endpoint import (
    DEFAULT_FOLDER,
    IMAP_TIMEOUT_SECONDS,
    URL_PARAMETERS,
    MailboxEndpoint,
)

__all__ = [
    "DEFAULT_FOLDER",
    "DEFAULT_POLL_LIMIT",
    "IMAP_TIMEOUT_SECONDS",
    "RECIPIENT_HEADERS",
    "URL_PARAMETERS",
    "MailboxEndpoint",
    "MailboxUnavailable",
    "MessageHandler",
    "PollResult",
    "delivered_recipient",
    "poll_mailbox",
]

logger = logging.getLogger("kgi.mail.mailbox")

#: Messages handled per poll at most; the rest wait for the next poll, so one poll of a
#: flooded mailbox cannot run for hours.
DEFAULT_POLL_LIMIT = 500

#: Headers naming the address a message was delivered to, in order of preference:
#: ``Delivered-To`` (Postfix, Exim, Gmail, dovecot-lda), ``X-Original-To`` (Postfix,
#: before alias expansion), ``Envelope-To`` (Exim, many hosters).
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To")

#: Handles one message: its raw bytes and the address it was delivered to (None when no
#: header says). Must be idempotent: see the module docstring.
MessageHandler = Callable[[bytes, str | None], None]


@dataclass(frozen=True)
class PollResult:
    """What one poll did.

    ``handled``: the handler returned and the message was removed (or moved).
    ``failed``: the handler raised (or the message could not be removed afterwards);
    those messages stay in the folder for the next poll.
    ``left``: messages not looked at because of ``limit``; they wait for the next poll.
    """

    handled: int = 0
    failed: int = 0
    left: int = 0


def delivered_recipient(raw: bytes) -> str | None:
    """The address ``raw`` was delivered to, from the first of RECIPIENT_HEADERS present.

    The topmost header of a name is used: the receiving system adds its own on top, and
    the lower ones came with the message, where anybody could have written them.
    """
    # compat32 never raises on malformed headers, and only the header block is parsed.
    headers = BytesHeaderParser().parsebytes(raw)
    for name in RECIPIENT_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        address = parseaddr(str(value))[1].strip()
        if address:
            return address
    return None


def poll_mailbox(
    endpoint: MailboxEndpoint, handle: MessageHandler, limit: int = DEFAULT_POLL_LIMIT
) -> PollResult:
    """Hand each message in the endpoint's folder to ``handle``, oldest first.

    Messages are fetched with ``BODY.PEEK[]`` (they stay unread) and handed over as raw
    bytes with the address they were delivered to (:func:`delivered_recipient`). A
    message is flagged ``\\Deleted`` (and expunged at the end of the poll) or moved to
    the ``processed`` folder only after ``handle`` returned normally. When ``handle``
    raises, that is logged, the message stays for the next poll, flagged ``\\Flagged``,
    and the poll goes on with the next one. Flagged messages come after the unflagged
    ones, so messages whose handler keeps failing cannot crowd the others out of
    ``limit``.

    ``handle`` must be idempotent: a crash (or lost connection) between its return and
    the removal means the message is handed over again on the next poll. Run one poller
    per mailbox; two at once would hand over the same messages twice.

    Raises MailboxUnavailable when the server cannot be reached, refuses the login or
    the folder, or the connection breaks during the poll.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    imap = _open(endpoint)
    try:
        return _drain(imap, endpoint, handle, limit)
    except (imaplib.IMAP4.error, OSError) as exc:
        # IMAP4.abort (a dropped connection) is an IMAP4.error; ssl.SSLError an OSError.
        raise MailboxUnavailable(
            f"IMAP session with {endpoint.label} failed: {_text(exc, endpoint)}"
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            imap.logout()


def _drain(
    imap: imaplib.IMAP4, ep: MailboxEndpoint, handle: MessageHandler, limit: int
) -> PollResult:
    """The poll proper, on a logged-in connection."""
    capabilities = _capabilities(imap)
    typ, data = imap.select(_mailbox_name(ep.folder))
    if typ != "OK":
        raise MailboxUnavailable(f"cannot open {ep.label}: {_text(data, ep)}")
    # Oldest first (UIDs grow with arrival), and failed ones (flagged) after the others.
    fresh = _search(imap, "UNDELETED", "UNFLAGGED")
    retried = _search(imap, "UNDELETED", "FLAGGED")
    waiting = fresh + retried
    batch = waiting[:limit]
    handled = failed = 0
    for uid in batch:
        raw = _fetch(imap, uid)
        if raw is None:
            continue  # gone meanwhile (another client expunged it)
        try:
            handle(raw, delivered_recipient(raw))
        except Exception:
            logger.exception(
                "bounce handler failed on message UID %s of %s; left for the next poll",
                uid,
                ep.label,
            )
            failed += 1
            _store(imap, uid, "+FLAGS.SILENT", r"(\Flagged)")
            continue
        problem = _remove(imap, uid, ep, capabilities)
        if problem is None:
            handled += 1
        else:
            logger.error(
                "message UID %s of %s was handled but could not be removed (%s); "
                "it will be handled again",
                uid,
                ep.label,
                problem,
            )
            failed += 1
            _store(imap, uid, "+FLAGS.SILENT", r"(\Flagged)")
    # One EXPUNGE per poll, not one per message; only MOVE leaves nothing to expunge. A
    # poll that dies before this leaves its \Deleted messages to a later poll's EXPUNGE,
    # and SEARCH UNDELETED keeps them from being handed over again meanwhile.
    if handled and (ep.processed_folder is None or "MOVE" not in capabilities):
        imap.expunge()
    result = PollResult(handled=handled, failed=failed, left=len(waiting) - len(batch))
    if batch:
        logger.info(
            "polled %s: %d handled, %d failed, %d left",
            ep.label,
            result.handled,
            result.failed,
            result.left,
        )
    return result


def _remove(
    imap: imaplib.IMAP4, uid: int, ep: MailboxEndpoint, capabilities: frozenset[str]
) -> str | None:
    """Delete or move one handled message; a description of the failure, or None."""
    if ep.processed_folder is None:
        if _store(imap, uid, "+FLAGS.SILENT", r"(\Deleted)"):
            return None
        return "STORE \\Deleted refused"
    target = _mailbox_name(ep.processed_folder)
    # MOVE (RFC 6851) is atomic; without it COPY and \Deleted do the same in two steps.
    command = "MOVE" if "MOVE" in capabilities else "COPY"
    typ, data = imap.uid(command, str(uid), target)
    if typ != "OK" and b"TRYCREATE" in b" ".join(d for d in data if isinstance(d, bytes)):
        # The server's way of saying the folder does not exist yet (RFC 3501 6.4.7).
        imap.create(target)
        typ, data = imap.uid(command, str(uid), target)
    if typ != "OK":
        return f"{command} to {ep.processed_folder!r} refused: {_text(data, ep)}"
    if command == "COPY" and not _store(imap, uid, "+FLAGS.SILENT", r"(\Deleted)"):
        return "STORE \\Deleted after COPY refused"
    return None
