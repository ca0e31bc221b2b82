"""Personalising a rendered issue re-wraps only the lines it changes, for any names and
links (hypothesis): every word is kept in order, every placeholder filled, every line
fits the width unless it is one word too long to break, and the lines it did not change
are the rendered ones (wrapping again would drop a list item's indent before a long
link, which the whole-text wrapping used to do)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.newsletter.render import (
    NAME,
    PREFERENCES_URL,
    UNSUBSCRIBE_URL,
    Recipient,
    RenderedIssue,
    personalise,
)
from shared.mail.message import TEXT_WIDTH, wrap_text

#: Pieces a rendered text is made of: words, placeholders, list bullets, line breaks.
PIECES = st.sampled_from(
    [NAME, UNSUBSCRIBE_URL, PREFERENCES_URL, "Hallo", "Jugendarbeit", " ,", ",", "- ", "\n",
     "\n\n", "https://www.example.org/ein/sehr/langer/pfad/der/nicht/umbrochen/wird", "  "]
)  # fmt: skip

WORDS = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=80)


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.one_of(PIECES, WORDS), max_size=80),
    name=WORDS,
    unsubscribe=WORDS.map(lambda tail: "https://kgi.example.org/u/" + tail),
    preferences=WORDS,
)
def test_the_text_is_the_whole_text_personalised_and_wrapped(
    pieces: list[str], name: str, unsubscribe: str, preferences: str
) -> None:
    # A rendered text is wrapped already (html_to_text wraps it).
    rendered = RenderedIssue("<p>" + NAME + "</p>", wrap_text(" ".join(pieces)) + "\n")
    _, text = personalise(rendered, Recipient(name, unsubscribe, preferences))
    whole = (
        rendered.text.replace(NAME, name)
        .replace(UNSUBSCRIBE_URL, unsubscribe)
        .replace(PREFERENCES_URL, preferences)
    ).replace(" ,", ",")
    assert text.split() == whole.split()
    for line in text.split("\n"):
        assert len(line) <= TEXT_WIDTH or len(line.split()) <= 1 or is_bullet(line)
    marks = (NAME, UNSUBSCRIBE_URL, PREFERENCES_URL, " ,")
    untouched = [line for line in rendered.text.split("\n") if not any(m in line for m in marks)]
    assert all(line in text.split("\n") for line in untouched)


def is_bullet(line: str) -> bool:
    """A list item's bullet and one word too long to break after it."""
    return len(line.split()) == 2 and line.split()[0] in ("-", "*", "•")
