"""The ``{id:id}`` path convertor matches exactly the ids an id column can hold."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from shared.web.paths import MAX_ROW_ID, RowIdConvertor, digits_up_to


@given(limit=st.integers(1, 10**12), number=st.integers(0, 10**13))
def test_digits_up_to_matches_exactly_one_to_the_limit(limit: int, number: int) -> None:
    pattern = re.compile(f"(?:{digits_up_to(limit)})")
    assert bool(pattern.fullmatch(str(number))) == (1 <= number <= limit)
    assert not pattern.fullmatch(f"0{number}")  # no leading zeros


def test_row_ids_stop_at_the_id_columns_limit() -> None:
    pattern = re.compile(RowIdConvertor.regex)
    assert pattern.fullmatch(str(MAX_ROW_ID)) and pattern.fullmatch("1")
    for beyond in (MAX_ROW_ID + 1, 10**18 - 2, 10**30):
        assert not pattern.fullmatch(str(beyond))
