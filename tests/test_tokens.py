"""Our signed tokens are itsdangerous's, byte for byte: the signer and its key are kept
and the HMAC is computed in one call (:mod:`shared.tokens`), which must change nothing a
link already sent depends on. Checked against plain itsdangerous for generated payloads,
purposes and times (hypothesis)."""

from __future__ import annotations

import time
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from shared.config import get_settings
from shared.tokens import ExpiredToken, InvalidToken, make_token, read_token

PAYLOADS = st.one_of(
    st.fixed_dictionaries({"id": st.integers(1, 2**63 - 1), "k": st.text(max_size=40)}),
    st.fixed_dictionaries({"id": st.integers(1, 2**63 - 1), "n": st.text(max_size=40)}),
    st.text(max_size=200),
)
PURPOSES = st.sampled_from(["confirm", "manage", "event", "test purpose"])


def plain(purpose: str) -> URLSafeTimedSerializer:
    """itsdangerous as it comes, with the same secret and salt."""
    return URLSafeTimedSerializer(get_settings().secret_key, salt=f"kgi.{purpose}")


@settings(max_examples=300, deadline=None)
@given(payload=PAYLOADS, purpose=PURPOSES, timestamp=st.integers(0, 253_402_300_799))
def test_tokens_are_what_itsdangerous_makes(payload: object, purpose: str, timestamp: int) -> None:
    with patch.object(TimestampSigner, "get_timestamp", lambda self: timestamp):
        ours = make_token(purpose, payload)
        theirs = plain(purpose).dumps(payload)
    assert ours == theirs
    assert plain(purpose).loads(ours) == payload
    assert read_token(purpose, theirs) == payload


@settings(max_examples=100, deadline=None)
@given(payload=PAYLOADS, purpose=PURPOSES, other=PURPOSES)
def test_a_token_of_another_purpose_or_altered_is_refused(
    payload: object, purpose: str, other: str
) -> None:
    token = make_token(purpose, payload)
    if other != purpose:
        with pytest.raises(InvalidToken):
            read_token(other, token)
        with pytest.raises(BadSignature):
            plain(other).loads(token)
    # Not the last character: its lowest bits are base64 padding, which decoding drops.
    altered = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    with pytest.raises(InvalidToken):
        read_token(purpose, altered)


def test_an_old_token_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - 100)
    token = make_token("confirm", {"id": 1})
    monkeypatch.undo()
    assert read_token("confirm", token, max_age_seconds=1000) == {"id": 1}
    with pytest.raises(ExpiredToken):
        read_token("confirm", token, max_age_seconds=10)
