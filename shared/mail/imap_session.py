"""The IMAP side of the bounce poller: opening a verified, logged-in session, the few
commands a poll sends, and error text with the password blanked out.

The standard library's :mod:`imaplib` is enough here: the poller needs a handful of
commands (LOGIN, SELECT, UID SEARCH/FETCH/STORE/MOVE, EXPUNGE) and parses only the
literal of ``BODY[]``; a third-party client would add a dependency for no gain.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import ssl

from shared.mail.mailbox_endpoint import MailboxEndpoint

#: Passwords at least this long are blanked out of error messages (see _text).
_SCRUB_MIN_LENGTH = 4


class MailboxUnavailable(Exception):
    """The mailbox could not be reached, logged in to or opened; try again later.

    The message names host, port, user and folder, never the password.
    """


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
