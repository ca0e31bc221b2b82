"""Sending over SMTP: one reused connection, timeouts, STARTTLS/TLS, auth, and a clear
difference between temporary failures (retry later) and permanent ones (give up).
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qs, unquote, urlsplit

#: Seconds to wait for the SMTP server to connect or answer one command.
SMTP_TIMEOUT_SECONDS = 30


class MailError(Exception):
    """Sending failed; ``code`` is the SMTP reply code when the server gave one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TemporaryMailError(MailError):
    """Worth trying again later: 4xx replies, timeouts, refused or dropped connections."""


class PermanentMailError(MailError):
    """Trying again will not help: 5xx replies (unknown user, rejected content)."""


class Abandoned(MailError):
    """The caller's commit step declined; the message was not sent."""


class _CommitStepFailed(Exception):
    """The caller's commit step raised; its exception is the cause (re-raised by send)."""


class Delivery(StrEnum):
    """How a sent message left: the server's 250 came back (ACCEPTED), or the final dot
    was handed over and the connection broke before the reply (COMMITTED, counts as
    sent). Failures are exceptions: TemporaryMailError, PermanentMailError, Abandoned."""

    ACCEPTED = "accepted"
    COMMITTED = "committed"


@dataclass(frozen=True)
class SMTPEndpoint:
    """Where and how to connect, parsed from ``smtp://user:pass@host:587?starttls=true``.

    ``smtps://`` connects with implicit TLS (port 465 by default); ``timeout=SECONDS`` and
    ``cafile=PATH`` (a CA bundle to trust instead of the system's) are optional.
    """

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None
    timeout: float
    #: CA bundle to trust instead of the system's (a private relay with its own CA).
    cafile: str | None = None

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cafile)

    @classmethod
    def from_url(cls, url: str) -> SMTPEndpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"SMTP URL must start with smtp:// or smtps://, not {url!r}")
        raw_query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        query = {k: v.lower() for k, v in raw_query.items()}
        implicit_tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or (465 if implicit_tls else 25),
            implicit_tls=implicit_tls,
            starttls=query.get("starttls") in ("1", "true", "yes"),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            timeout=float(query.get("timeout", SMTP_TIMEOUT_SECONDS)),
            cafile=raw_query.get("cafile"),
        )


def classify(exc: BaseException) -> MailError:
    """The temporary or permanent MailError that ``exc`` amounts to."""
    if isinstance(exc, MailError):
        return exc
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        code = min(codes) if codes else 550
        text = "; ".join(
            f"{rcpt}: {c} {m.decode(errors='replace')}" for rcpt, (c, m) in exc.recipients.items()
        )
        kind = TemporaryMailError if 400 <= code < 500 else PermanentMailError
        return kind(f"recipient refused: {text}", code)
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        text = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        kind = TemporaryMailError if 400 <= code < 500 or code == -1 else PermanentMailError
        return kind(f"{code} {text}", code)
    if isinstance(exc, (smtplib.SMTPException, OSError)):
        return TemporaryMailError(f"connection problem: {exc!r}")
    return PermanentMailError(f"unexpected error: {exc!r}")


class SMTPTransport:
    """One SMTP connection, opened on first use and reused for following messages.

    Not thread-safe: give each worker thread its own transport.
    """

    def __init__(self, url: str) -> None:
        self.endpoint = SMTPEndpoint.from_url(url)
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        ep = self.endpoint
        if ep.implicit_tls:
            context = ep.tls_context()
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                ep.host, ep.port, timeout=ep.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(ep.host, ep.port, timeout=ep.timeout)
            if ep.starttls:
                smtp.starttls(context=ep.tls_context())
        if ep.username:
            smtp.login(ep.username, ep.password or "")
        # send() writes the final dot separately after the body; without TCP_NODELAY,
        # Nagle's algorithm holds that small write for the peer's delayed ACK (~40 ms).
        if smtp.sock is not None:
            smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return smtp

    def send(
        self,
        envelope_from: str,
        recipient: str,
        data: bytes,
        commit: Callable[[], bool] | None = None,
    ) -> Delivery:
        """Send ready-made message bytes to one recipient; the one way every mail leaves.

        ``commit`` runs after the whole message went to the server but before the final
        dot that makes the server accept it. A server discards a message whose dot never
        came, so a sender killed before ``commit`` returned has sent nothing, and one
        killed after it has (the kernel still delivers the dot it was handed).

        Returns ACCEPTED when the server said so, COMMITTED when the dot was handed over
        but the connection broke before the reply (the message counts as sent: sending
        it again could make a second copy). Raises TemporaryMailError or
        PermanentMailError for what the server or the network said, Abandoned when
        ``commit`` returned False. When ``commit`` raises (its database is away), the
        transaction is abandoned without the dot and that exception propagates as it is:
        it says nothing about the mail.
        """
        try:
            try:
                return self._send_once(envelope_from, recipient, data, commit)
            except smtplib.SMTPServerDisconnected:
                # An idle connection the server closed: reconnect once. (A break after
                # the dot never gets here: _transaction reports it as COMMITTED.)
                self._drop()
            try:
                return self._send_once(envelope_from, recipient, data, commit)
            except smtplib.SMTPServerDisconnected as again:
                self._drop()
                raise classify(again) from again
        except _CommitStepFailed as failed:
            assert failed.__cause__ is not None
            raise failed.__cause__ from None

    def _send_once(
        self, envelope_from: str, recipient: str, data: bytes, commit: Callable[[], bool] | None
    ) -> Delivery:
        """One attempt; a disconnect before the dot propagates so send() can reconnect."""
        try:
            return self._transaction(envelope_from, recipient, data, commit)
        except (smtplib.SMTPServerDisconnected, _CommitStepFailed):
            raise
        except MailError:
            self._drop()
            raise
        except smtplib.SMTPResponseException as exc:
            # A reply error leaves the session usable: we sent RSET, or the transaction
            # ended with the reply to the final dot.
            raise classify(exc) from exc
        except Exception as exc:
            self._drop()
            raise classify(exc) from exc

    def _transaction(
        self, envelope_from: str, recipient: str, data: bytes, commit: Callable[[], bool] | None
    ) -> Delivery:
        if self._smtp is None:
            self._smtp = self._connect()
        smtp = self._smtp
        smtp.ehlo_or_helo_if_needed()
        # Addresses come validated; smtplib's mail()/rcpt() would parse them again each time.
        smtp.putcmd("mail", f"FROM:<{envelope_from}>")
        code, reply = smtp.getreply()
        if code != 250:
            smtp.rset()
            raise smtplib.SMTPSenderRefused(code, reply, envelope_from)
        smtp.putcmd("rcpt", f"TO:<{recipient}>")
        code, reply = smtp.getreply()
        if code not in (250, 251):
            smtp.rset()
            raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
        smtp.putcmd("data")
        code, reply = smtp.getreply()
        if code != 354:
            smtp.rset()
            raise smtplib.SMTPDataError(code, reply)
        # Dot-stuffing (RFC 5321 4.5.2); the search is cheap when no line starts with a dot.
        body = smtplib._quote_periods(data) if b"\n." in data or data.startswith(b".") else data
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        smtp.send(body)
        if commit is not None:
            try:
                go_ahead = commit()
            except Exception as exc:
                # The server is mid-DATA: without the dot it discards the message. Drop
                # the connection rather than say QUIT, which it would read as mail text.
                self._drop()
                raise _CommitStepFailed() from exc
            if not go_ahead:
                raise Abandoned("the message was taken over by another sender")
        try:
            smtp.send(b".\r\n")
            code, reply = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError):
            self._drop()
            return Delivery.COMMITTED
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)
        return Delivery.ACCEPTED

    def _drop(self) -> None:
        """Forget the connection without QUIT: after a broken or abandoned transaction a
        QUIT would only wait for a reply that never comes (or be read as mail text)."""
        if self._smtp is not None:
            with contextlib.suppress(Exception):
                self._smtp.close()
            self._smtp = None

    def close(self) -> None:
        """Say QUIT (the session is idle between messages) and forget the connection."""
        if self._smtp is not None:
            with contextlib.suppress(Exception):
                self._smtp.quit()
            self._drop()

    def __enter__(self) -> SMTPTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_per_thread = threading.local()


def thread_transport() -> SMTPTransport:
    """This thread's SMTP connection to the configured server, reused for every mail the
    thread sends (a worker thread sends one mail after another)."""
    from shared.config import get_settings

    transport: SMTPTransport | None = getattr(_per_thread, "transport", None)
    if transport is None:
        transport = _per_thread.transport = SMTPTransport(get_settings().effective_smtp_url)
    return transport
