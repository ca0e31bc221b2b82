"""CSV files as office staff make and open them: the one reader and writer of every
import and export (subscribers, members, registrations).

Spreadsheets differ from the csv module's defaults in three ways this module absorbs:
Excel writes Windows-1252 unless told otherwise and UTF-8 with a byte-order mark when
told; German Excel separates fields with semicolons (the comma is the decimal mark); and
a cell starting with ``=``, ``+``, ``-`` or ``@`` is run as a formula when a file is
opened, so what we write must never start that way (CSV injection).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

#: Separators a header line may use, in order of preference when none is clearly used.
SEPARATORS = (",", ";", "\t")

#: First characters that make a spreadsheet cell a formula.
FORMULA_STARTS = ("=", "+", "-", "@")


def decode_csv(data: bytes) -> str:
    """CSV bytes as text: UTF-8 (with or without BOM), else Windows-1252 as Excel writes it."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def separator_of(text: str) -> str:
    """The field separator of ``text``: the one its header line uses most (commas when
    it uses none, a one-column file)."""
    header = text.split("\n", 1)[0]
    counts = {separator: header.count(separator) for separator in SEPARATORS}
    best = max(SEPARATORS, key=lambda separator: counts[separator])
    return best if counts[best] else ","


def dict_reader(text: str) -> csv.DictReader[str]:
    """A reader of the rows of ``text`` by their header, whatever separator it uses.
    Reading may raise :class:`csv.Error` for a broken file (an unbalanced quote, a field
    over the csv module's limit): callers refuse the file with the reader's line."""
    return csv.DictReader(io.StringIO(text, newline=""), delimiter=separator_of(text))


def neutralised(value: str) -> str:
    """``value`` as a cell no spreadsheet runs as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def write_csv(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """``rows`` under ``header`` as CSV text (commas, quoted where needed), every cell
    neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(list(header))
    for row in rows:
        writer.writerow([neutralised(value) for value in row])
    return buffer.getvalue()
