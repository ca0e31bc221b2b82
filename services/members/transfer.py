"""Members in and out in bulk: CSV import and export, for the admin page and ``kgi
members``.

An import adds new municipalities, updates the ones it names again (same name and
federal state) and reports per row what it did, or why a row was refused; the good rows
go in together, in one transaction, whatever the bad ones say. The file's header may be
English (as the export writes it) or German, separated by commas or semicolons.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

from services.members import store
from services.members.fields import FIELDS, InvalidMember, parse_member
from shared.database import engine
from shared.spreadsheets import decode_csv, dict_reader, write_csv

#: Largest file an import takes, and its most rows: the network has some hundred
#: members, so a bigger file is not a member list.
MAX_IMPORT_BYTES = 2 * 1024 * 1024
MAX_IMPORT_ROWS = 5_000

#: Header names understood besides the English ones of :data:`FIELDS` (lowercase).
HEADER_ALIASES = {
    "kommune": "name",
    "gemeinde": "name",
    "bundesland": "federal_state",
    "state": "federal_state",
    "breitengrad": "latitude",
    "breite": "latitude",
    "lat": "latitude",
    "längengrad": "longitude",
    "länge": "longitude",
    "lon": "longitude",
    "lng": "longitude",
    "kontakt": "contact",
    "ansprechperson": "contact",
    "e-mail": "email",
    "mail": "email",
    "webseite": "website",
    "website-adresse": "website",
    "link": "website",
    "url": "website",
}

#: Columns every file must have.
REQUIRED = ("name", "federal_state", "latitude", "longitude")

#: What happened to a row.
ADDED, UPDATED, UNCHANGED, REFUSED = "added", "updated", "unchanged", "refused"
OUTCOMES = (ADDED, UPDATED, UNCHANGED, REFUSED)


class ImportRefused(ValueError):
    """The file as a whole cannot be imported (the message says why); nothing changed."""


@dataclass(frozen=True)
class RowOutcome:
    """What happened to one data row (``line`` counts the header as line 1)."""

    line: int
    name: str
    outcome: str
    reason: str = ""


@dataclass
class ImportReport:
    rows: list[RowOutcome] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        """How many rows had ``outcome``."""
        return sum(1 for row in self.rows if row.outcome == outcome)


def _column(header: str) -> str:
    name = header.strip().lower()
    return HEADER_ALIASES.get(name, name.replace(" ", "_"))


def import_csv(data: bytes) -> ImportReport:
    """Import members from a CSV file's bytes (see the module's docstring)."""
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportRefused(f"The file is larger than {MAX_IMPORT_BYTES // 1024 // 1024} MB.")
    reader = dict_reader(decode_csv(data))
    try:
        return _import_rows(reader)
    except csv.Error as exc:
        raise ImportRefused(
            f"The file cannot be read as CSV after line {reader.line_num} ({exc}); "
            "nothing was imported."
        ) from None


def _import_rows(reader: csv.DictReader[str]) -> ImportReport:
    columns = [_column(name) for name in reader.fieldnames or []]
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise ImportRefused(
            "The file needs a header row with the columns name, federal_state, latitude "
            f"and longitude (missing: {', '.join(missing)}); nothing was imported."
        )
    reader.fieldnames = columns
    report = ImportReport()
    seen: dict[tuple[str, str], int] = {}
    with engine("members").begin() as conn:
        for index, row in enumerate(reader):
            if index >= MAX_IMPORT_ROWS:
                raise ImportRefused(
                    f"The file has more than {MAX_IMPORT_ROWS} rows; nothing was imported."
                )
            line = reader.line_num
            raw_name = " ".join(str(row.get("name") or "").split())[:200]
            try:
                fields = parse_member({name: row.get(name) for name in FIELDS})
            except InvalidMember as exc:
                report.rows.append(RowOutcome(line, raw_name, REFUSED, str(exc)))
                continue
            key = (fields.name, fields.federal_state)
            if key in seen:
                reason = f"The same municipality as line {seen[key]}."
                report.rows.append(RowOutcome(line, fields.name, REFUSED, reason))
                continue
            seen[key] = line
            existing = store.find(conn, fields.name, fields.federal_state)
            if existing is None:
                store.insert(conn, fields)
                outcome = ADDED
            elif existing.fields == fields:
                outcome = UNCHANGED
            else:
                store.update(conn, existing.id, fields)
                outcome = UPDATED
            report.rows.append(RowOutcome(line, fields.name, outcome))
    return report


def export_csv() -> str:
    """Every member as CSV, in the columns an import reads."""
    return write_csv(
        FIELDS,
        (
            [
                member.name,
                member.federal_state,
                f"{member.latitude:.6f}",
                f"{member.longitude:.6f}",
                member.contact or "",
                member.email or "",
                member.website or "",
            ]
            for member in store.all_members()
        ),
    )
