"""Path convertors shared by every service's routes.

``{id:id}`` matches the ids of database rows. Starlette's ``int`` convertor takes any
run of digits, and a large id then overflows the id column (a 500); an id that cannot
exist should simply not match, so the visitor gets the ordinary 404 page. The limit is
exact, in the regular expression itself: Starlette does not catch an error raised while
converting a matched path.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

#: Largest row id: every id column here is an ``Integer``, which is 32 bits on PostgreSQL
#: (SQLite would take 64); two billion rows are more than any table here will hold.
MAX_ROW_ID = 2**31 - 1


def digits_up_to(limit: int) -> str:
    """A regular expression matching exactly the whole numbers 1..``limit``, written
    without leading zeros (``digits_up_to(250)``: 1-9, 10-99, 100-199, 200-249, 250)."""
    text = str(limit)
    shorter = [f"[1-9][0-9]{{{n - 1}}}" if n > 1 else "[1-9]" for n in range(1, len(text))]
    same_length = []
    for i, digit in enumerate(text):
        lowest = "1" if i == 0 else "0"
        if digit > lowest:
            rest = len(text) - i - 1
            tail = f"[0-9]{{{rest}}}" if rest else ""
            below = str(int(digit) - 1)
            choice = lowest if below == lowest else f"[{lowest}-{below}]"
            same_length.append(f"{text[:i]}{choice}{tail}")
    same_length.append(text)
    return "|".join([*shorter, *same_length])


class RowIdConvertor(Convertor[int]):
    """A positive whole number up to MAX_ROW_ID, without leading zeros."""

    regex = f"(?:{digits_up_to(MAX_ROW_ID)})"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        if not 0 < value <= MAX_ROW_ID:
            raise ValueError(f"{value} is not a row id")
        return str(value)


# Registered on import, as Starlette registers its own: route tables are built when their
# modules are imported, and they import shared.web.app (which imports this) first.
register_url_convertor("id", RowIdConvertor())
