"""Sending over SMTP: one reused connection, timeouts, STARTTLS/TLS, auth, and a clear
difference between temporary failures (retry later) and permanent ones (give up).
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
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
        # send_raw writes the final dot separately after the body; without TCP_NODELAY,
        # Nagle's algorithm holds that small write for the peer's delayed ACK (~40 ms).
        if smtp.sock is not None:
            smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return smtp

    def send(self, message: EmailMessage, envelope_from: str | None = None) -> None:
        """Send ``message`` to its To address; raises TemporaryMailError or PermanentMailError."""
        from shared.mail.message import envelope_sender

        recipient = message["To"].addresses[0].addr_spec
        self.send_raw(envelope_from or envelope_sender(), recipient, message.as_bytes())

    def send_raw(
        self,
        envelope_from: str,
        recipient: str,
        data: bytes,
        commit: Callable[[], bool] | None = None,
    ) -> None:
        """Send ready-made message bytes to one recipient.

        ``commit`` runs after the whole message went to the server but before the final
        dot that makes the server accept it. A server discards a message whose dot never
        came, so a sender killed before ``commit`` returned has sent nothing, and one
        killed after it has (the kernel still delivers the dot it was handed). If
        ``commit`` returns False the message is abandoned by dropping the connection.
        Raises TemporaryMailError or PermanentMailError.
        """
        try:
            self._send_raw_once(envelope_from, recipient, data, commit)
        except Abandoned:
            self.close()
            raise
        except smtplib.SMTPServerDisconnected as exc:
            # An idle connection the server closed: reconnect once, unless the dot may be out.
            self.close()
            if getattr(exc, "after_commit", False):
                raise classify(exc) from exc
            try:
                self._send_raw_once(envelope_from, recipient, data, commit)
            except Abandoned:
                self.close()
                raise
            except Exception as again:
                self._drop_after(again)
                raise classify(again) from again
        except Exception as exc:
            self._drop_after(exc)
            raise classify(exc) from exc

    def _send_raw_once(
        self, envelope_from: str, recipient: str, data: bytes, commit: Callable[[], bool] | None
    ) -> None:
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
        if commit is not None and not commit():
            raise Abandoned("the message was taken over by another sender")
        try:
            smtp.send(b".\r\n")
            code, reply = smtp.getreply()
        except smtplib.SMTPServerDisconnected as exc:
            exc.after_commit = True  # type: ignore[attr-defined]
            raise
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)

    def _drop_after(self, exc: BaseException) -> None:
        # After a reply error the session is still usable (we sent RSET, or the
        # transaction ended with the reply to the final dot);
        # after a connection problem it is not.
        if not isinstance(exc, smtplib.SMTPResponseException):
            self.close()

    def close(self) -> None:
        """Say QUIT when possible and forget the connection."""
        if self._smtp is not None:
            with contextlib.suppress(Exception):
                self._smtp.quit()
            self._smtp = None

    def __enter__(self) -> SMTPTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
