"""Path convertors shared by every service's routes.

``{id:id}`` matches the ids of database rows. Starlette's ``int`` convertor takes any
run of digits, and a 30-digit id then overflows the database's 64-bit integer (a 500
on SQLite and PostgreSQL alike); an id that cannot exist should simply not match, so
the visitor gets the ordinary 404 page.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

#: Largest row id matched: 18 digits stay below 2**63 - 1, the limit of PostgreSQL's
#: BIGINT and SQLite's INTEGER, and are more ids than any table here will ever use.
MAX_ROW_ID = 10**18 - 1


class RowIdConvertor(Convertor[int]):
    """A positive whole number that fits a 64-bit database id, without leading zeros."""

    regex = "[1-9][0-9]{0,17}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        if not 0 < value <= MAX_ROW_ID:
            raise ValueError(f"{value} is not a row id")
        return str(value)


# Registered on import, as Starlette registers its own: route tables are built when their
# modules are imported, and they import shared.web.app (which imports this) first.
register_url_convertor("id", RowIdConvertor())
