"""Subscribers in and out in bulk: CSV import and export, for the admin page and ``kgi
subscribers``; and the audience of an issue, for the newsletter service (last section).

An import never resubscribes anyone who unsubscribed or had their data erased, merges
duplicates into one subscriber, and reports per row what it did and why.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.subscribers import optin, store
from services.subscribers.store import (
    BOUNCED,
    CONFIRMED,
    UNSUBSCRIBED,
    Context,
    subscribers,
)
from shared.addresses import InvalidInput, clean_name, parse_address, parse_language
from shared.database import engine, read_connection, utcnow
from shared.spreadsheets import dict_reader, write_csv

#: Columns written by the export and understood by the import.
EXPORT_COLUMNS = (
    "email",
    "name",
    "language",
    "status",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
)

#: Largest import accepted, in rows; a bigger list is split by the operator.
MAX_IMPORT_ROWS = 100_000


class ImportRefused(ValueError):
    """The file as a whole cannot be imported (the message says why)."""


@dataclass(frozen=True)
class RowOutcome:
    """What happened to one data row (``line`` counts the header as line 1)."""

    line: int
    email: str
    outcome: str  # added | merged | skipped
    reason: str


@dataclass
class ImportReport:
    source: str
    rows: list[RowOutcome] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for row in self.rows if row.outcome == outcome)

    @property
    def summary(self) -> dict[str, int]:
        return {name: self.count(name) for name in ("added", "merged", "skipped")}


def _parse_time(raw: str | None) -> datetime | None:
    if not raw or not raw.strip():
        return None
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        return None
    try:
        # 0001-01-01T00:30+14:00 lies before the year 1 in UTC: no datetime holds it.
        return value.astimezone(UTC)
    except OverflowError:
        return None


def import_csv(text: str, source: str, status: str = CONFIRMED) -> ImportReport:
    """Import subscribers from CSV ``text``; ``source`` (the file name) goes to the consent log.

    ``status`` confirmed needs a ``consent_source`` column: consent given elsewhere must be
    documented. Pending imports are not offered: an import never sends mail.
    """
    reader = dict_reader(text)
    try:
        return _import_rows(reader, source, status)
    except csv.Error as exc:
        # A broken file (a field over the csv module's 128 KiB limit, an unbalanced quote
        # swallowing the rest): refuse it whole, in the one transaction, nothing imported.
        raise ImportRefused(
            f"The file cannot be read as CSV after line {reader.line_num} ({exc}); "
            "nothing was imported."
        ) from None


def _import_rows(reader: csv.DictReader[str], source: str, status: str) -> ImportReport:
    columns = [c.strip().lower() for c in (reader.fieldnames or [])]
    if "email" not in columns:
        raise ImportRefused("The file needs a header row with an 'email' column.")
    if status == CONFIRMED and "consent_source" not in columns:
        raise ImportRefused(
            "Importing as confirmed needs a 'consent_source' column saying where each person "
            "agreed to receive the newsletter."
        )
    reader.fieldnames = columns
    report = ImportReport(source=source)
    seen: dict[str, int] = {}
    with engine("subscribers").begin() as conn:
        for index, row in enumerate(reader):
            line = index + 2
            if index >= MAX_IMPORT_ROWS:
                raise ImportRefused(f"The file has more than {MAX_IMPORT_ROWS} rows.")
            report.rows.append(_import_row(conn, row, line, source, status, seen))
    return report


def _import_row(
    conn: Connection,
    row: dict[str, str | None],
    line: int,
    source: str,
    status: str,
    seen: dict[str, int],
) -> RowOutcome:
    """Import one row; ``seen`` maps addresses already in this file to their line."""
    raw_email = (row.get("email") or "").strip()
    if not raw_email:
        return RowOutcome(line, "", "skipped", "empty e-mail address")
    try:
        address = parse_address(raw_email)
        name = clean_name(row.get("name"))
        language = parse_language(row.get("language"))
    except InvalidInput as exc:
        return RowOutcome(line, raw_email, "skipped", f"{exc.field}: {exc.message}")
    if address.key in seen:
        return RowOutcome(line, address.display, "merged", f"duplicate of line {seen[address.key]}")
    consent_source = (row.get("consent_source") or "").strip()
    if status == CONFIRMED and not consent_source:
        return RowOutcome(line, address.display, "skipped", "no consent source given")
    if store.is_erased(conn, address.key):
        return RowOutcome(line, address.display, "skipped", "this person had their data erased")
    seen[address.key] = line
    context = Context(source=f"import {source}: {consent_source}")
    existing = store.find_by_key(conn, address.key)
    if existing is not None:
        if existing.status == UNSUBSCRIBED:
            return RowOutcome(
                line, address.display, "skipped", "unsubscribed earlier; not resubscribed"
            )
        if existing.status == BOUNCED:
            return RowOutcome(
                line,
                address.display,
                "skipped",
                "mail to it bounced; only a new sign-up brings it back",
            )
        if existing.status == CONFIRMED:
            if name and not existing.name:
                store.update(conn, existing.id, name=name)
            return RowOutcome(line, address.display, "merged", "already subscribed")
        store.update(
            conn,
            existing.id,
            status=status,
            confirmed_at=utcnow(),
            confirm_nonce=None,
            name=name or existing.name,
            language=language,
        )
        store.log_consent(conn, existing.id, "import", context)
        return RowOutcome(line, address.display, "merged", "pending sign-up confirmed by import")
    subscribed_at = _parse_time(row.get("subscribed_at")) or utcnow()
    subscriber_id = store.insert(
        conn,
        email=address.display,
        email_key=address.key,
        name=name,
        language=language,
        status=status,
        created_at=subscribed_at,
        requested_at=subscribed_at,
        confirmed_at=subscribed_at,
    )
    store.log_consent(
        conn, subscriber_id, "import", context, detail=f"subscribed_at={subscribed_at.isoformat()}"
    )
    return RowOutcome(line, address.display, "added", "")


def export_csv(status: str | None = None) -> str:
    """All subscribers (or those with ``status``) as CSV text."""
    with read_connection("subscribers") as conn:
        rows = store.all_subscribers(conn, status)
    return rows_to_csv(
        [
            [
                s.email,
                s.name,
                s.language,
                s.status,
                s.created_at.isoformat(),
                s.confirmed_at.isoformat() if s.confirmed_at else "",
                s.unsubscribed_at.isoformat() if s.unsubscribed_at else "",
            ]
            for s in rows
        ]
    )


def rows_to_csv(rows: Iterable[list[str]]) -> str:
    """Subscriber rows under the export's header."""
    return write_csv(EXPORT_COLUMNS, rows)


# --------------------------------------------------------------------------------------
# Who receives an issue: confirmed subscribers with their personal links, for the
# newsletter service (which never sees this service's tables or secrets).
# --------------------------------------------------------------------------------------

#: Most ids one ``still_confirmed`` call may ask about: a sender asks per batch of 100,
#: and SQLite allows at most 32,766 parameters in one query.
MAX_CONFIRMED_IDS = 1000


#: The columns an issue's audience is read with (:func:`recipient_record`): reading whole
#: rows, with their five timestamps converted, was a quarter of the snapshot's time.
_AUDIENCE_COLUMNS = (
    subscribers.c.id,
    subscribers.c.email,
    subscribers.c.name,
    subscribers.c.language,
    subscribers.c.manage_key,
)


def confirmed(language: str, chunk: int = 1000) -> Iterator[sa.Row]:
    """Confirmed subscribers of ``language`` in id order, read ``chunk`` rows at a time,
    with the columns :func:`recipient_record` needs."""
    last_id = 0
    while True:
        with read_connection("subscribers") as conn:
            rows = conn.execute(
                sa.select(*_AUDIENCE_COLUMNS)
                .where(
                    subscribers.c.status == CONFIRMED,
                    subscribers.c.language == language,
                    subscribers.c.id > last_id,
                )
                .order_by(subscribers.c.id)
                .limit(chunk)
            ).all()
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id


def recipient_record(subscriber: sa.Row) -> dict[str, Any]:
    """What the newsletter needs to address and personalise one mail."""
    unsubscribe, preferences = optin.manage_urls(subscriber)
    return {
        "id": subscriber.id,
        # ASCII addresses (nearly all) need no IDNA work.
        "email": subscriber.email
        if subscriber.email.isascii()
        else parse_address(subscriber.email).ascii,
        "name": subscriber.name,
        "unsubscribe_url": unsubscribe,
        "preferences_url": preferences,
    }


def still_confirmed(ids: list[int]) -> list[int]:
    """The subset of ``ids`` that is confirmed right now."""
    if not ids:
        return []
    with read_connection("subscribers") as conn:
        rows = conn.execute(
            sa.select(subscribers.c.id).where(
                subscribers.c.id.in_(ids), subscribers.c.status == CONFIRMED
            )
        )
        return [row.id for row in rows]
