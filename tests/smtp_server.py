"""A real SMTP server for tests (aiosmtpd): records mails and can be told to refuse them."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    #: The DATA exactly as received (``envelope.original_content``), for byte-exact checks.
    raw: bytes = b""
    #: When the final dot came (time.monotonic()), for the pauses in a dispatch.
    received_at: float = 0.0

    @property
    def to(self) -> str:
        return self.rcpt_tos[0]

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"mail has no text/{subtype} part"
        return body.get_content()


class RecordingSMTPServer:
    """aiosmtpd on a loopback port; ``refuse_next`` queues replies for the next DATA."""

    def __init__(self) -> None:
        self.mails: list[ReceivedMail] = []
        self._replies: list[str] = []
        #: Seconds each DATA takes (a slow relay), so a test can act mid-dispatch.
        self.delay = 0.0
        self._lock = threading.Lock()
        self.controller: Controller | None = None
        self.port = 0

    def start(self) -> None:
        from tests.conftest import free_port

        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()

    def reset(self) -> None:
        self.delay = 0.0
        with self._lock:
            self.mails.clear()
            self._replies.clear()

    def refuse_next(self, *replies: str) -> None:
        """Answer the next DATA commands with these replies, e.g. ``"451 4.3.0 try later"``."""
        with self._lock:
            self._replies.extend(replies)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            if self._replies:
                return self._replies.pop(0)
            message = email.message_from_bytes(
                envelope.original_content or b"", policy=email.policy.default
            )
            assert isinstance(message, EmailMessage)
            # Like a real MTA, the server takes responsibility once it has the final dot;
            # a slow relay is slow to say so, not slow to accept.
            self.mails.append(
                ReceivedMail(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    message,
                    envelope.original_content or b"",
                    time.monotonic(),
                )
            )
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 OK"

    def count_by_recipient(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            for mail in self.mails:
                for rcpt in mail.rcpt_tos:
                    counts[rcpt.lower()] = counts.get(rcpt.lower(), 0) + 1
        return counts

    def to(self, address: str) -> list[ReceivedMail]:
        with self._lock:
            return [m for m in self.mails if address.lower() in (r.lower() for r in m.rcpt_tos)]
