"""No input may add a mail header or a body part: the attack through the real sign-up,
and property tests that every mail we build parses back to exactly the intended headers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.policy
import html
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formataddr
from unittest import mock

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.config import get_settings
from shared.mail.headers import UnsafeHeader, header_line

#: A display name that decodes (RFC 2047) to a line break, a Reply-To header and an HTML body.
ATTACK = (
    "=?utf-8?q?Max=0D=0AReply-To:_boss@evil.example=0D=0AContent-Type:_text/html"
    "=0D=0A=0D=0A<h1>Konto_gesperrt</h1>?="
)


def _nothing_stored_or_sent(smtp) -> None:
    from services.subscribers import store
    from shared.database import engine

    with engine("subscribers").connect() as conn:
        assert store.find_by_key(conn, "victim@example.org") is None
    # The worker is running: had a mail been queued it would arrive within this time.
    time.sleep(1.5)
    assert smtp.mails == []


def test_attack_through_the_sign_up_form_is_refused(site, worker, smtp):
    client = httpx.Client(base_url=site)
    response = client.post(
        "/subscribers/signup",
        data={"email": "victim@example.org", "name": ATTACK, "language": "de"},
        headers={"referer": f"{site}/subscribers/signup"},
    )
    assert response.status_code == 422
    assert "encoded" in response.text
    _nothing_stored_or_sent(smtp)


def test_attack_through_the_json_api_is_refused(site, worker, smtp):
    response = httpx.post(
        f"{site}/subscribers/api/subscriptions",
        json={"email": "victim@example.org", "name": ATTACK, "language": "en"},
    )
    assert response.status_code == 422
    assert response.json()["field"] == "name"
    _nothing_stored_or_sent(smtp)


@pytest.mark.parametrize("name", [ATTACK, ATTACK.upper(), "Max =?UTF-8?B?DQpCY2M6IHg=?= Muster"])
def test_clean_name_refuses_encoded_words(name):
    from shared.addresses import InvalidInput, clean_name

    with pytest.raises(InvalidInput, match="encoded"):
        clean_name(name)


# --- the strict reading every mail must pass ------------------------------------------


def strict_parse(data: bytes) -> EmailMessage:
    """``data`` parsed by the standard library, after checks a careful MTA would make."""
    assert b"\n" not in data.replace(b"\r\n", b""), "bare LF"
    assert b"\r" not in data.replace(b"\r\n", b""), "bare CR"
    assert all(len(line) <= 998 for line in data.split(b"\r\n")), "line over 998 octets"
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii(), "8-bit header"
    message = BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    for part in (message, *message.iter_parts()):
        assert not part.defects, part.defects
        for name, header in part.items():
            assert not header.defects, (name, header.defects)
    return message


def check_mail(data: bytes, headers: dict[str, object], text: str, html: str) -> EmailMessage:
    """Exactly ``headers`` (decoded values; an Address compares name and address) at the
    top, and exactly a text/plain and a text/html part with the given content."""
    message = strict_parse(data)
    names = [name for name, _ in message.items()]
    assert sorted(names) == sorted([*headers, "Content-Type"]), names
    for name, expected in headers.items():
        header = message[name]
        if isinstance(expected, Address):
            [address] = header.addresses
            assert (address.display_name, address.addr_spec) == (
                expected.display_name,
                expected.addr_spec,
            ), name
        elif name in ("Date", "Message-ID"):
            assert header  # generated; present and without defects is what matters
        else:
            assert str(header) == expected, name
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(not part.is_multipart() for part in parts)
    contents = [part.get_content().replace("\r\n", "\n") for part in parts]
    assert contents == [text, html]
    return message


#: How many generated examples each property test ran, reported by the last test.
EXAMPLES: Counter[str] = Counter()

#: Characters that break naive encoders but that a name or subject may hold.
TRICKY_OK = st.sampled_from(
    [" ", "  ", '"', "\\", "=", "?", "_", ".", ",", "<", ">", "@", ":", ";", "(", ")",
     "\u200d", "\u00a0", "ü", "ß", "„", "😀", "\u0301", "字", "Fachtagung "]
)  # fmt: skip
#: Characters and strings no header may carry, or no name should.
TRICKY_BAD = st.sampled_from(
    ["=?", "?=", "=?utf-8?q?", "\t", "\r", "\n", "\r\n", "\x00", "\x85", "\u2028",
     "\u202e", "\ufeff", "\ud800", ATTACK]
)  # fmt: skip
CLEAN_CHAR = st.characters(exclude_categories=("Cc", "Cs", "Co", "Cn", "Zl", "Zp"))
ANY_CHAR = st.characters(exclude_categories=())


def texts(max_size: int) -> st.SearchStrategy[str]:
    """Half the time text a name could hold, half the time anything at all."""
    clean = st.lists(st.one_of(CLEAN_CHAR, TRICKY_OK), max_size=max_size)
    hostile = st.lists(st.one_of(ANY_CHAR, TRICKY_OK, TRICKY_BAD), max_size=max_size)
    return st.one_of(clean, hostile).map("".join)


TEXT = texts(60)
LONG_TEXT = texts(200)


def examples(count: int) -> settings:
    """Hypothesis settings for ``count`` examples, sized so this file runs in about 20 s."""
    return settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


UNSUBSCRIBE = "https://kgi.example.org/subscribers/unsubscribe/abc.def?lang=de"
MAILTO = "mailto:bounces+u42.0123456789@kgi.example.org?subject=unsubscribe"


def refused_anywhere(value: str) -> bool:
    """Whether ``value`` holds a character no header may carry (see shared.mail.headers)."""
    return any(ch != "\t" and unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in value)


@contextlib.contextmanager
def configured(**changes: str | None) -> Iterator[None]:
    """Settings with ``changes`` for the mail modules (they are read per message)."""
    from shared import config
    from shared.mail import message

    changed = dataclasses.replace(config.get_settings(), **changes)
    with mock.patch.object(message, "get_settings", lambda: changed):
        yield


def bodies(name: str) -> tuple[str, str]:
    # The name goes into the bodies too, as the real templates put it there.
    return f"Hallo {name},\nwillkommen.\n", f"<p>Hallo {html.escape(name)},</p>\n"


@examples(400)
@given(name=TEXT, subject=TEXT)
def test_transactional_mail_says_exactly_what_was_meant(name, subject):
    from shared.addresses import InvalidInput, clean_name
    from shared.mail.headers import parse_mailbox
    from shared.mail.message import WELCOME, PreparedMessage, Unsubscribe

    EXAMPLES["transactional"] += 1
    try:
        name = clean_name(name)
    except InvalidInput:
        EXAMPLES["transactional: name refused by clean_name"] += 1
        name = "Lena Müller"
    text, html_body = bodies(name)
    try:
        prepared = PreparedMessage(subject, WELCOME, dkim_key=None)
    except UnsafeHeader:
        # Only a subject with a character no header may carry is refused; every name
        # clean_name accepts must be sendable.
        assert refused_anywhere(subject)
        EXAMPLES["transactional: subject refused"] += 1
        return
    assert not refused_anywhere(subject)
    data = prepared.render(
        "leser@example.org", name, text, html_body, Unsubscribe(UNSUBSCRIBE, MAILTO)
    )
    check_mail(
        data,
        {
            "From": parse_mailbox(get_settings().mail_from),
            "To": Address(name, "leser", "example.org"),
            "Subject": subject,
            "Date": None,
            "Message-ID": None,
            "MIME-Version": "1.0",
            "List-Id": get_settings().list_id,
            "Feedback-ID": "welcome:welcome:kgi-infobrief",
            "Auto-Submitted": "auto-generated",
            "List-Unsubscribe": f"<{MAILTO}>, <{UNSUBSCRIBE}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        text,
        html_body,
    )


@examples(400)
@given(name=TEXT, subject=LONG_TEXT, sender=TEXT)
def test_issue_mail_says_exactly_what_was_meant(name, subject, sender):
    from shared.addresses import InvalidInput, clean_name
    from shared.mail.headers import parse_mailbox
    from shared.mail.message import ISSUE, PreparedMessage, Unsubscribe

    EXAMPLES["issue"] += 1
    try:
        name = clean_name(name)
    except InvalidInput:
        EXAMPLES["issue: name refused by clean_name"] += 1
        name = ""
    # A sender name as an operator would configure it: formataddr encodes or quotes it.
    try:
        mail_from = formataddr((sender, "infobrief@kgi.example.org"), charset="utf-8")
    except UnicodeEncodeError:  # a lone surrogate, as os.environ holds undecodable bytes
        mail_from = f'"{sender}" <infobrief@kgi.example.org>'
    try:
        sender_address = parse_mailbox(mail_from)
    except UnsafeHeader:
        EXAMPLES["issue: configured sender refused"] += 1
        mail_from = "KGI-Infobrief <infobrief@kgi.example.org>"
        sender_address = parse_mailbox(mail_from)
    reply_to = "Redaktion Köln <redaktion@kgi.example.org>"
    list_id = "KGI-Infobrief Köln <infobrief.kgi.example.org>"
    with configured(mail_from=mail_from, reply_to=reply_to, list_id=list_id):
        try:
            prepared = PreparedMessage(subject, ISSUE, campaign="issue7", dkim_key=None)
        except UnsafeHeader:
            assert refused_anywhere(subject)
            EXAMPLES["issue: subject refused"] += 1
            return
    assert not refused_anywhere(subject)
    text, html_body = bodies(name)
    data = prepared.render("leser@example.org", name, text, html_body, Unsubscribe(UNSUBSCRIBE))
    check_mail(
        data,
        {
            "From": sender_address,
            "Subject": subject,
            "MIME-Version": "1.0",
            "List-Id": list_id,
            "Reply-To": parse_mailbox(reply_to),
            "Feedback-ID": "issue7:newsletter:kgi-infobrief",
            "To": Address(name, "leser", "example.org"),
            "Date": None,
            "Message-ID": None,
            "List-Unsubscribe": f"<{UNSUBSCRIBE}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        text,
        html_body,
    )


@examples(600)
@given(name=TEXT)
def test_any_display_name_is_written_faithfully_or_refused(name):
    """Names that never passed clean_name (rows from before, configuration) are safe too."""
    EXAMPLES["header_line To"] += 1
    try:
        line = header_line("To", Address(name, "leser", "example.org"))
    except ValueError:  # UnsafeHeader, or Address() itself refusing CR and LF
        # ... or white space other than single spaces between words (see _single_spaced)
        assert refused_anywhere(name) or name != " ".join(name.split())
        EXAMPLES["header_line To: refused"] += 1
        return
    message = strict_parse(line.encode("ascii") + b"\r\n")
    assert message.keys() == ["To"]
    [address] = message["To"].addresses
    assert (address.display_name, address.addr_spec) == (name, "leser@example.org")


# --- examples ---------------------------------------------------------------------


LONG_GERMAN = "Einladung zur Fachtagung „Kommune goes International“ am 12. März 2027 in Köln"


def test_long_german_subject_folds_with_crlf_only():
    from shared.mail.message import CONFIRMATION, ISSUE, SUMMARY, PreparedMessage

    for data in (
        PreparedMessage(LONG_GERMAN, kind, dkim_key=None).render("leser@example.org", "", "x", body)
        for kind in (CONFIRMATION, ISSUE, SUMMARY)
        for body in ("<p>x</p>", None)
    ):
        assert b"\n" not in data.replace(b"\r\n", b"")
        head = data.split(b"\r\n\r\n", 1)[0]
        assert all(len(line) <= 78 for line in head.split(b"\r\n"))
        assert str(strict_parse(data)["Subject"]) == LONG_GERMAN


def test_non_ascii_configured_sender_is_encoded_in_every_mail():
    from shared.mail.message import CONFIRMATION, ISSUE, PreparedMessage

    with configured(
        mail_from="Kommunale Gemeinschaftsstelle Müller <infobrief@kgi.example.org>",
        reply_to="Redaktion Köln <redaktion@kgi.example.org>",
    ):
        mails = [
            PreparedMessage("Hallo", kind, dkim_key=None).render(
                "leser@example.org", "Lena", "x", "<p>x</p>"
            )
            for kind in (CONFIRMATION, ISSUE)
        ]
    for data in mails:
        head = data.split(b"\r\n\r\n", 1)[0]
        assert head.isascii()
        message = strict_parse(data)
        assert message["From"].addresses[0].display_name == "Kommunale Gemeinschaftsstelle Müller"
        assert message["Reply-To"].addresses[0].display_name == "Redaktion Köln"


def test_encoded_word_lookalikes_in_a_subject_stay_literal_text():
    for subject in (ATTACK, "=?utf-8?b?SGFsbG8=?=", "Preis ?= 5 =? Euro"):
        line = header_line("Subject", subject)
        assert str(strict_parse(line.encode() + b"\r\n")["Subject"]) == subject


@pytest.mark.parametrize(
    "url",
    [
        "https://kgi.example.org/u/1\r\nBcc: x@evil.example",
        "https://kgi.example.org/u/1 x",
        "https://kgi.example.org/u/1>, <https://evil.example/",
        "https://kgi.example.org/ü",
        "https://kgi.example.org/=?utf-8?q?x?=",
        "javascript:alert(1)",
    ],
)
def test_list_unsubscribe_is_a_verbatim_ascii_uri_or_refused(url):
    with pytest.raises(UnsafeHeader):
        header_line("List-Unsubscribe", f"<{url}>")


def test_list_unsubscribe_is_emitted_verbatim():
    assert header_line("List-Unsubscribe", f"<{UNSUBSCRIBE}>") == (
        f"List-Unsubscribe: <{UNSUBSCRIBE}>\r\n"
    )
    both = f"<{MAILTO}>, <{UNSUBSCRIBE}>"
    assert header_line("List-Unsubscribe", both) == f"List-Unsubscribe: {both}\r\n"


@pytest.mark.parametrize(
    "value",
    [
        f"<{MAILTO}>",  # one-click needs the https URI
        f"<{UNSUBSCRIBE}>, <{MAILTO}>",
        f"<{MAILTO}>, <{UNSUBSCRIBE}>, <{UNSUBSCRIBE}>",
        "<mailto:a@example.org,b@example.org>, <https://kgi.example.org/u>",
        f"<{MAILTO}>,<{UNSUBSCRIBE}>",
    ],
)
def test_list_unsubscribe_takes_one_mailto_and_one_https_uri_only(value):
    with pytest.raises(UnsafeHeader):
        header_line("List-Unsubscribe", value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Subject", "Hallo\r\nBcc: everyone@example.org"),
        ("Subject", "Hallo\nBcc: everyone@example.org"),
        ("Subject", "Zeile\u2028Bcc: x@example.org"),
        ("Subject", "NEL\x85Bcc: x@example.org"),
        ("X-KGI-Test", "yes\r\n\r\n<h1>body</h1>"),
        ("Bcc: x@evil.example\r\nX-Test", "yes"),
        ("X Test", "yes"),
        ("To", "leser@example.org"),  # address headers take an Address only
        ("Message-ID", "<a b@example.org>"),
        ("Date", "Mon, 1 Jan 2027\r\n 00:00:00 +0000"),
    ],
)
def test_header_line_refuses_what_cannot_be_written_safely(name, value):
    with pytest.raises(UnsafeHeader):
        header_line(name, value)


def test_extra_headers_cannot_replace_the_own_ones():
    from shared.mail.message import ISSUE, PreparedMessage

    for name in ("to", "reply-to", "Feedback-ID", "auto-submitted"):
        with pytest.raises(UnsafeHeader):
            PreparedMessage("x", ISSUE, extra_headers={name: "x"}, dkim_key=None)


@pytest.mark.parametrize(
    "name",
    [
        "Max\u2028Muster",
        "Max\u2029Muster",
        "Max\u202eretsuM",  # right-to-left override
        "Max\u2066Muster",  # bidi isolate
        "Max\x85Muster",  # C1 next line
        "Max\ud800Muster",  # lone surrogate
        "Max\ue000Muster",  # private use
        "Max\ufffeMuster",  # non-character
        "Max\u00adMuster",  # soft hyphen
        "Max\tMuster",
        "Ｍａｘ ＝？utf-8？q？x？＝",  # full-width encoded word
        "😀" * 160,  # 160 characters, 640 octets
    ],
)
def test_clean_name_refuses_unusable_characters(name):
    from shared.addresses import InvalidInput, clean_name

    with pytest.raises(InvalidInput):
        clean_name(name)


@pytest.mark.parametrize(
    "name", ["Lena Müller", "Dr. O'Brien-Smith", "مهدی\u200cزاده", "Łukasz Żółć", "山田 太郎"]
)
def test_clean_name_keeps_real_names(name):
    from shared.addresses import clean_name

    assert clean_name(f"  {name}  ") == name


@pytest.mark.parametrize("name", ["字" * 200, "😀" * 150, "Ä " * 100, ("Müller-" * 30)[:200]])
def test_the_longest_names_clean_name_accepts_can_be_sent(name):
    from shared.addresses import clean_name
    from shared.mail.message import CONFIRMATION, ISSUE, PreparedMessage

    name = clean_name(name)
    for data in (
        PreparedMessage("x", kind, dkim_key=None).render("leser@example.org", name, "x", body)
        for kind in (CONFIRMATION, ISSUE)
        for body in ("<p>x</p>", None)
    ):
        assert strict_parse(data)["To"].addresses[0].display_name == name


def test_a_stored_name_that_cannot_be_written_is_left_out(caplog):
    """Rows saved before clean_name refused C1 controls still get their mail."""
    from shared.mail.message import CONFIRMATION, ISSUE, PreparedMessage

    legacy = "Max\x9bMuster"
    for data in (
        PreparedMessage("x", kind, dkim_key=None).render("leser@example.org", legacy, "x", body)
        for kind in (CONFIRMATION, ISSUE)
        for body in ("<p>x</p>", None)
    ):
        [address] = strict_parse(data)["To"].addresses
        assert (address.display_name, address.addr_spec) == ("", "leser@example.org")
    assert "display name of leser@example.org left out" in caplog.text


def test_refused_characters_are_exactly_the_refused_categories():
    from shared.mail.headers import REFUSED_CHARACTERS

    differ = [
        code
        for code in range(0x110000)
        if (code != 9 and unicodedata.category(chr(code)) in ("Cc", "Cs", "Zl", "Zp"))
        != bool(REFUSED_CHARACTERS.fullmatch(chr(code)))
    ]
    assert differ == []


def test_zz_report_how_many_examples_ran():
    """Runs last (file order): the generated examples per property test, on the terminal."""
    if not EXAMPLES:
        pytest.skip("the property tests did not run")
    report = ", ".join(f"{what}: {count}" for what, count in sorted(EXAMPLES.items()))
    print(f"\nhypothesis examples run: {report}", file=sys.__stdout__)
    assert EXAMPLES["transactional"] >= 100 and EXAMPLES["issue"] >= 100, report
    assert EXAMPLES["header_line To"] >= 100, report
