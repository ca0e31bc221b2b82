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

The standard library's :mod:`imaplib` is enough here: the poller needs a handful of
commands (LOGIN, SELECT, UID SEARCH/FETCH/STORE/MOVE, EXPUNGE) and parses only the
literal of ``BODY[]``; a third-party client would add a dependency for no gain.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import logging
import math
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from urllib.parse import parse_qsl, unquote, urlsplit

logger = logging.getLogger("kgi.mail.mailbox")

#: Seconds to wait for the IMAP server to connect or answer one command.
IMAP_TIMEOUT_SECONDS = 30

#: The folder polled when the URL names none (every IMAP server has an INBOX).
DEFAULT_FOLDER = "INBOX"

#: Messages handled per poll at most; the rest wait for the next poll, so one poll of a
#: flooded mailbox cannot run for hours.
DEFAULT_POLL_LIMIT = 500

#: Headers naming the address a message was delivered to, in order of preference:
#: ``Delivered-To`` (Postfix, Exim, Gmail, dovecot-lda), ``X-Original-To`` (Postfix,
#: before alias expansion), ``Envelope-To`` (Exim, many hosters).
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To")

#: Query parameters a mailbox URL may carry.
URL_PARAMETERS = frozenset({"starttls", "cafile", "timeout", "processed"})

#: Spellings of yes and no accepted for ``starttls=``.
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

#: Hint for URLs that a special character in the credentials broke apart.
_ENCODE_HINT = (
    "percent-encode special characters in the user name and password "
    "(@ as %40, : as %3A, / as %2F, ? as %3F, # as %23, % as %25)"
)

#: Passwords at least this long are blanked out of error messages (see _text).
_SCRUB_MIN_LENGTH = 4

#: A control character in a folder name would end the IMAP command line early.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: Handles one message: its raw bytes and the address it was delivered to (None when no
#: header says). Must be idempotent: see the module docstring.
MessageHandler = Callable[[bytes, str | None], None]


class MailboxUnavailable(Exception):
    """The mailbox could not be reached, logged in to or opened; try again later.

    The message names host, port, user and folder, never the password.
    """


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


@dataclass(frozen=True)
class MailboxEndpoint:
    """Where and how to read, parsed from ``imaps://user:pass@host/FOLDER?options``.

    ``imap://`` connects in plain text (port 143), upgraded with ``starttls=true``;
    without it the password crosses the network unencrypted, which is fine on loopback
    only. ``imaps://`` connects with implicit TLS (port 993). The path names the folder
    as the server spells it (``INBOX`` when empty). Options: ``cafile=PATH`` (a CA
    bundle to trust instead of the system's), ``timeout=SECONDS`` and
    ``processed=FOLDER`` (move handled messages there instead of deleting them).
    """

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str
    # Kept out of repr() so that logging an endpoint cannot leak it.
    password: str = field(repr=False)
    folder: str = DEFAULT_FOLDER
    #: Handled messages are moved here instead of being deleted; None: deleted.
    processed_folder: str | None = None
    timeout: float = IMAP_TIMEOUT_SECONDS
    #: CA bundle to trust instead of the system's (a private server with its own CA).
    cafile: str | None = None

    @property
    def label(self) -> str:
        """Who, where and which folder, for messages and logs (no password)."""
        scheme = "imaps" if self.implicit_tls else "imap"
        return f"{self.username} on {scheme}://{self.host}:{self.port}/{self.folder}"

    def tls_context(self) -> ssl.SSLContext:
        """A verifying TLS context: the system's CAs, or only those of ``cafile``."""
        return ssl.create_default_context(cafile=self.cafile)

    @classmethod
    def from_url(cls, url: str) -> MailboxEndpoint:
        """Parse a mailbox URL; raises ValueError naming what is wrong.

        The messages never repeat the password, nor any part of the URL where a
        mistyped password could have ended up.
        """
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in ("imap", "imaps"):
            raise ValueError("bounce mailbox URL must start with imap:// or imaps://")
        # An unencoded / ? or # in the password moves the rest of the credentials, and
        # with them the @ before the host, out of the network location part.
        if "@" in parts.path or "@" in parts.query or "@" in parts.fragment:
            raise ValueError(f"bounce mailbox URL has an '@' after the host: {_ENCODE_HINT}")
        if parts.fragment:
            raise ValueError(f"bounce mailbox URL must not have a '#' part: {_ENCODE_HINT}")
        try:
            port = parts.port
        except ValueError:
            # urllib's own message quotes the text, which may be a piece of the password.
            raise ValueError(
                f"bounce mailbox URL: the port is not a number from 1 to 65535; {_ENCODE_HINT}"
            ) from None
        if port == 0:
            raise ValueError("bounce mailbox URL: the port must be a number from 1 to 65535")
        if not parts.hostname:
            raise ValueError("bounce mailbox URL names no host")
        if not parts.username or parts.password is None:
            raise ValueError(
                "bounce mailbox URL needs a user name and password: "
                "imaps://USER:PASSWORD@host/FOLDER"
            )
        query: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key not in URL_PARAMETERS:
                known = ", ".join(sorted(URL_PARAMETERS))
                raise ValueError(f"bounce mailbox URL: unknown option {key!r} (known: {known})")
            query[key] = value  # the last one wins, as for the SMTP URL
        implicit_tls = scheme == "imaps"
        starttls = _flag(query.get("starttls", "false"), "starttls")
        if starttls and implicit_tls:
            raise ValueError(
                "bounce mailbox URL: starttls=true is for imap://; imaps:// is TLS already"
            )
        folder = _folder(unquote(parts.path).strip("/") or DEFAULT_FOLDER, "folder")
        processed = query.get("processed")
        if processed is not None:
            processed = _folder(processed.strip("/"), "processed")
            if processed.casefold() == folder.casefold():
                raise ValueError("bounce mailbox URL: processed= must name another folder")
        cafile = query.get("cafile")
        if cafile is not None and not cafile:
            raise ValueError("bounce mailbox URL: cafile= needs the path of a CA bundle")
        return cls(
            host=parts.hostname,
            port=port or (993 if implicit_tls else 143),
            implicit_tls=implicit_tls,
            starttls=starttls,
            username=unquote(parts.username),
            password=unquote(parts.password),
            folder=folder,
            processed_folder=processed,
            timeout=_timeout(query.get("timeout")),
            cafile=cafile,
        )


def _flag(value: str, name: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"bounce mailbox URL: {name}= must be true or false, not {value!r}")


def _folder(name: str, what: str) -> str:
    if not name:
        raise ValueError(f"bounce mailbox URL: the {what} folder name is empty")
    if _CONTROL.search(name):
        raise ValueError(f"bounce mailbox URL: the {what} folder name has control characters")
    return name


def _timeout(value: str | None) -> float:
    if value is None:
        return IMAP_TIMEOUT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"bounce mailbox URL: timeout= must be seconds above 0, not {value!r}")
    return seconds


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


def _open(ep: MailboxEndpoint) -> imaplib.IMAP4:
    """Connect, secure and log in; every failure is a MailboxUnavailable."""
    try:
        context = ep.tls_context()
    except OSError as exc:
        raise MailboxUnavailable(
            f"cannot load the CA bundle {ep.cafile!r} for {ep.label}: {exc.strerror or exc}"
        ) from exc
    try:
        if ep.implicit_tls:
            imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                ep.host, ep.port, ssl_context=context, timeout=ep.timeout
            )
        else:
            imap = imaplib.IMAP4(ep.host, ep.port, timeout=ep.timeout)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailboxUnavailable(
            f"cannot connect to {ep.label}: {_text(exc, ep)}{_tls_hint(exc)}"
        ) from exc
    try:
        if ep.starttls:
            imap.starttls(ssl_context=context)
    except (OSError, imaplib.IMAP4.error) as exc:
        _close(imap)
        raise MailboxUnavailable(
            f"STARTTLS with {ep.label} failed: {_text(exc, ep)}{_tls_hint(exc)}"
        ) from exc
    try:
        _login(imap, ep)
    except (imaplib.IMAP4.abort, OSError) as exc:
        _close(imap)
        raise MailboxUnavailable(
            f"the connection to {ep.label} broke during login: {_text(exc, ep)}"
        ) from None
    except imaplib.IMAP4.error as exc:
        _close(imap)
        # No exception chained: the server's reply is in the message already, and the
        # traceback of a login is the one place a password could surface.
        raise MailboxUnavailable(f"login refused for {ep.label}: {_text(exc, ep)}") from None
    return imap


def _login(imap: imaplib.IMAP4, ep: MailboxEndpoint) -> None:
    if ep.username.isascii() and ep.password.isascii():
        # LOGIN is the one command every server has.
        imap.login(ep.username, ep.password)
        return
    # LOGIN carries ASCII only (imaplib refuses anything else); SASL PLAIN is UTF-8
    # (RFC 4616) and offered by practically every server.
    if "AUTH=PLAIN" not in imap.capabilities:
        raise imaplib.IMAP4.error(
            "the server offers no AUTH=PLAIN, needed for a non-ASCII user name or password"
        )
    credentials = f"\0{ep.username}\0{ep.password}".encode()
    imap.authenticate("PLAIN", lambda _challenge: credentials)


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


def _capabilities(imap: imaplib.IMAP4) -> frozenset[str]:
    # Asked again after login: servers announce MOVE and UIDPLUS to logged-in clients
    # only, and imaplib keeps the list from before the login.
    typ, data = imap.capability()
    words = b" ".join(item for item in data if isinstance(item, bytes)) if typ == "OK" else b""
    return frozenset(words.decode("ascii", "replace").upper().split())


def _search(imap: imaplib.IMAP4, *criteria: str) -> list[int]:
    typ, data = imap.uid("SEARCH", *criteria)
    if typ != "OK":
        raise imaplib.IMAP4.error(f"UID SEARCH failed: {data!r}")
    return sorted(int(word) for item in data if item for word in item.split())


def _fetch(imap: imaplib.IMAP4, uid: int) -> bytes | None:
    # BODY.PEEK, unlike BODY, does not set \Seen: a failed message stays unread.
    typ, data = imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
    if typ != "OK":
        raise imaplib.IMAP4.error(f"UID FETCH {uid} failed: {data!r}")
    for item in data:
        if isinstance(item, tuple) and b"BODY[]" in item[0].upper():
            return item[1]
    return None


def _store(imap: imaplib.IMAP4, uid: int, how: str, flags: str) -> bool:
    typ, _ = imap.uid("STORE", str(uid), how, flags)
    return typ == "OK"


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


def _mailbox_name(name: str) -> str:
    """``name`` as an IMAP quoted string, non-ASCII in modified UTF-7 (RFC 3501 5.1.3)."""
    encoded: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            utf16 = "".join(pending).encode("utf-16-be")
            encoded.append("&" + base64.b64encode(utf16).decode().rstrip("=").replace("/", ","))
            encoded.append("-")
            pending.clear()

    for char in name:
        if " " <= char <= "~":
            flush()
            encoded.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    text = "".join(encoded).replace("\\", "\\\\").replace('"', '\\"')
    # imaplib sends arguments as they are: without quotes a space would split the name.
    return f'"{text}"'


def _text(what: object, ep: MailboxEndpoint) -> str:
    """Readable text of an exception or a server reply, with the password blanked out."""
    if isinstance(what, BaseException):
        what = what.args[0] if len(what.args) == 1 else str(what)
    if isinstance(what, list):
        what = b" ".join(item for item in what if isinstance(item, bytes))
    text = what.decode("utf-8", "replace") if isinstance(what, bytes) else str(what)
    # A server echoing the command, or an error quoting a URL, must not spread it. A
    # shorter password would only garble the text: such a string turns up by chance.
    if len(ep.password) >= _SCRUB_MIN_LENGTH:
        text = text.replace(ep.password, "***")
    return text


def _tls_hint(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return " (the server's certificate is not trusted; cafile= names a CA bundle)"
    return ""


def _close(imap: imaplib.IMAP4) -> None:
    with contextlib.suppress(Exception):
        imap.shutdown()
