"""The development mail catcher: an SMTP server that keeps every mail for a web page.

Mails land as JSON files in the data directory, so the page works from any process and
the captured mail survives a restart of ``kgi run``.
"""

from __future__ import annotations

import email
import email.policy
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from shared.database import utcnow


class CatchingHandler:
    """aiosmtpd handler that stores each accepted mail as one file in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        received = utcnow()
        name = f"{received.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}"
        record = {
            "id": name,
            "received_at": received.isoformat(),
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": (envelope.original_content or envelope.content or b"").decode(
                "utf-8", "replace"
            ),
        }
        temporary = self.directory / f".{name}.tmp"
        temporary.write_text(json.dumps(record), "utf-8")
        temporary.rename(self.directory / f"{name}.json")
        return "250 Message accepted for delivery"


def start_catcher(directory: Path, port: int, host: str = "127.0.0.1") -> Controller:
    """Start the catcher in a background thread; call ``.stop()`` on the result to end it."""
    controller = Controller(CatchingHandler(directory), hostname=host, port=port)
    controller.start()
    return controller


@dataclass(frozen=True)
class CaughtMail:
    """One captured mail, parsed."""

    id: str
    received_at: datetime
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    def part(self, subtype: str) -> str | None:
        """The decoded ``text/<subtype>`` body, if the mail has one."""
        body = self.message.get_body(preferencelist=(subtype,))
        return body.get_content() if body is not None else None


def _load(path: Path) -> CaughtMail:
    record: dict[str, Any] = json.loads(path.read_text("utf-8"))
    message = email.message_from_string(record["data"], policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return CaughtMail(
        id=record["id"],
        received_at=datetime.fromisoformat(record["received_at"]),
        mail_from=record["mail_from"],
        rcpt_tos=record["rcpt_tos"],
        message=message,
    )


def list_caught(directory: Path, limit: int = 200) -> list[CaughtMail]:
    """The newest ``limit`` captured mails, newest first."""
    if not directory.exists():
        return []
    paths = sorted(directory.glob("*.json"), reverse=True)[:limit]
    return [_load(path) for path in paths]


def find_caught(directory: Path, mail_id: str) -> CaughtMail | None:
    """One captured mail by id, or None (ids are file names, so refuse anything path-like)."""
    if not mail_id.replace("-", "").isalnum():
        return None
    path = directory / f"{mail_id}.json"
    return _load(path) if path.exists() else None
