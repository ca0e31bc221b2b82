"""Reading delivery reports, complaints, auto-replies, mailto unsubscribes and relay
webhooks (shared.mail.reports, shared.mail.webhooks): pure functions over bytes.

The fixtures in tests/fixtures/bounces are modelled on what the real MTAs and relays
send; each is read to the exact report expected. Hostile input (random bytes, mutated
fixtures, header bombs, deep MIME) must never raise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.mail.reports import (
    MAX_DIAGNOSTIC_CHARS,
    MAX_RECIPIENTS,
    DeliveryReport,
    ReportKind,
    read_report,
    read_unsubscribe,
)
from shared.mail.webhooks import MAX_AGE_SECONDS, WebhookRefused, read_mailgun, read_sendgrid

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"

#: The key the Mailgun fixture is signed with, and the time it was signed.
MAILGUN_KEY = "kgi-test-mailgun-signing-key"
MAILGUN_SIGNED_AT = 1715670800

HARD, SOFT = ReportKind.HARD_BOUNCE, ReportKind.SOFT_BOUNCE


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


EXPECTED: dict[str, DeliveryReport] = {
    "postfix-hard-user-unknown.eml": DeliveryReport(
        HARD,
        ("ghost@example.net",),
        status="5.1.1",
        diagnostic="550 5.1.1 <ghost@example.net>: Recipient address rejected: "
        "User unknown in virtual mailbox table",
        original_message_id="<issue7.r42.ab12cd34@kgi.example.org>",
        # Not in the returned message: Postfix names the sender in X-Postfix-Sender.
        original_return_path="bounces+42.7.1a2b3c4d5e@kgi.example.org",
        source="dsn",
    ),
    "postfix-soft-delayed-mailbox-full.eml": DeliveryReport(
        SOFT,
        ("full.mailbox@example.com",),
        status="4.2.2",
        diagnostic="452 4.2.2 <full.mailbox@example.com>: Mailbox full, quota exceeded",
        original_message_id="<issue7.r17.9c8b7a65@kgi.example.org>",
        original_return_path="bounces+17.7.0f1e2d3c4b@kgi.example.org",
        source="dsn",
    ),
    "exim-hard-user-unknown.eml": DeliveryReport(
        HARD,
        ("nobody@example.net",),
        status="5.1.1",
        diagnostic="550 5.1.1 <nobody@example.net>: Recipient address rejected: "
        "User unknown in local recipient table",
        original_message_id="<issue7.r43.c0ffee12@kgi.example.org>",
        original_return_path="bounces+43.7.5e4d3c2b1a@kgi.example.org",
        source="flufl:exim",
    ),
    "qmail-hard-user-unknown.eml": DeliveryReport(
        HARD,
        ("old.address@example.com",),
        status="5.1.1",
        diagnostic="550 5.1.1 <old.address@example.com>... User unknown",
        original_message_id="<issue7.r48.d00dfeed@kgi.example.org>",
        original_return_path="bounces+48.7.8d9e0f1a2b@kgi.example.org",
        source="flufl:qmail",
    ),
    "exchange-online-recipient-not-found.eml": DeliveryReport(
        HARD,
        ("niemand@example.com",),
        status="5.1.10",
        diagnostic="550 5.1.10 RESOLVER.ADR.RecipientNotFound; "
        "Recipient not found by SMTP address lookup",
        original_message_id="<issue7.r44.5d6e7f80@kgi.example.org>",
        original_return_path="bounces+44.7.2b3c4d5e6f@kgi.example.org",
        source="dsn",
    ),
    "gmail-address-not-found.eml": DeliveryReport(
        HARD,
        ("nobody.here@example.com",),
        status="5.1.1",
        # The multi-line reply's repeated "550-5.1.1" markers are gone.
        diagnostic="550 5.1.1 The email account that you tried to reach does not exist. "
        "Please try double-checking the recipient's email address for typos or unnecessary "
        "spaces. For more information, go to https://support.google.com/mail/?p=NoSuchUser "
        "41be03b00d2f7-62f7a9d1c3bsi1234567a12.123 - gsmtp",
        original_message_id="<issue7.r45.0a1b2c3d@kgi.example.org>",
        original_return_path="bounces+45.7.3c4d5e6f70@kgi.example.org",
        source="dsn",
    ),
    "arf-yahoo-abuse.eml": DeliveryReport(
        ReportKind.COMPLAINT,
        ("leser@example.com",),
        original_message_id="<issue7.r42.ab12cd34@kgi.example.org>",
        original_return_path="bounces+42.7.1a2b3c4d5e@kgi.example.org",
        feedback_type="abuse",
        source="arf",
    ),
    "arf-headers-only-no-rcpt.eml": DeliveryReport(
        ReportKind.COMPLAINT,
        # No Original-Rcpt-To: the quoted original's To.
        ("ruth@example.com",),
        original_message_id="<issue7.r51.feedc0de@kgi.example.org>",
        original_return_path="bounces+51.7.9e8d7c6b5a@kgi.example.org",
        feedback_type="abuse",
        source="arf",
    ),
    "autoreply-abwesenheitsnotiz.eml": DeliveryReport(
        ReportKind.AUTO_REPLY,
        ("anna.beispiel@example.com",),
        original_message_id="<issue7.r47.77aa88bb@kgi.example.org>",
        source="autoreply",
    ),
    "autoreply-outlook-automatische-antwort.eml": DeliveryReport(
        ReportKind.AUTO_REPLY,
        ("jonas.muster@example.net",),
        original_message_id="<issue7.r49.4455aabb@kgi.example.org>",
        source="autoreply",
    ),
    # read_report does not know the address it came to: an ordinary mail is UNKNOWN.
    "unsubscribe-mailto.eml": DeliveryReport(ReportKind.UNKNOWN, ()),
}

MAIL_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.eml"))


def assert_sane(report: DeliveryReport) -> None:
    """What every report promises, however hostile its input."""
    assert isinstance(report, DeliveryReport)
    assert report.kind in ReportKind
    assert isinstance(report.recipients, tuple)
    assert len(report.recipients) <= MAX_RECIPIENTS
    assert len(set(report.recipients)) == len(report.recipients)
    for address in report.recipients:
        assert isinstance(address, str)
        assert address == address.lower()
        assert "@" in address
        assert address.isprintable()
        assert not any(ch.isspace() for ch in address)
    if report.diagnostic is not None:
        assert 0 < len(report.diagnostic) <= MAX_DIAGNOSTIC_CHARS
        assert report.diagnostic.isprintable()
    for value in (report.status, report.original_message_id, report.original_return_path):
        assert value is None or (isinstance(value, str) and value.isprintable())
    if report.original_message_id is not None:
        assert report.original_message_id.startswith("<")
        assert report.original_message_id.endswith(">")


# --- fixtures ------------------------------------------------------------------------


def test_every_mail_fixture_has_an_expectation() -> None:
    assert sorted(EXPECTED) == MAIL_FIXTURES


@pytest.mark.parametrize("name", MAIL_FIXTURES)
def test_fixture_reads_to_the_expected_report(name: str) -> None:
    report = read_report(fixture(name))
    assert report == EXPECTED[name]
    assert_sane(report)


@pytest.mark.parametrize("name", MAIL_FIXTURES)
def test_line_endings_do_not_matter(name: str) -> None:
    raw = fixture(name).replace(b"\r\n", b"\n")
    assert read_report(raw) == read_report(raw.replace(b"\n", b"\r\n")) == EXPECTED[name]


def test_mailto_unsubscribe() -> None:
    raw = fixture("unsubscribe-mailto.eml")
    assert read_unsubscribe(raw) == DeliveryReport(
        ReportKind.UNSUBSCRIBE, ("lea.leserin@example.com",), source="mailto"
    )
    # What the receiver checks first: a person's unsubscribe mail is no auto-reply.
    assert read_report(raw).kind != ReportKind.AUTO_REPLY


def test_mailto_unsubscribe_without_a_from_still_unsubscribes() -> None:
    report = read_unsubscribe(b"To: bounces+u42.9f8e7d6c5b@kgi.example.org\n\nunsubscribe\n")
    assert report == DeliveryReport(ReportKind.UNSUBSCRIBE, (), source="mailto")


# --- DSN variants --------------------------------------------------------------------


def postfix_with(status: str, action: str = "failed", code: str = "550") -> bytes:
    raw = fixture("postfix-hard-user-unknown.eml")
    raw = raw.replace(b"Action: failed", b"Action: " + action.encode())
    raw = raw.replace(b"Status: 5.1.1", b"Status: " + status.encode())
    return raw.replace(b"smtp; 550 5.1.1", f"smtp; {code} {status}".encode())


@pytest.mark.parametrize(
    ("status", "action", "code", "kind"),
    [
        ("5.1.1", "failed", "550", HARD),
        ("5.2.2", "failed", "552", SOFT),  # mailbox full
        ("4.4.7", "failed", "421", SOFT),  # a failure after timing out on 4xx replies
        ("5.1.1", "delayed", "550", SOFT),
        ("4.2.2", "failed (mailbox full)", "452", SOFT),
        ("5.1.1", "error", "550", HARD),  # opensmtpd's non-standard action
        ("5.7.1", "failed", "554", SOFT),  # refused by policy (a block list), not gone
    ],
)
def test_dsn_kind_follows_action_and_status(status: str, action: str, code: str, kind: str) -> None:
    report = read_report(postfix_with(status, action, code))
    assert (report.kind, report.status, report.source) == (kind, status, "dsn")
    assert report.diagnostic is not None and report.diagnostic.startswith(f"{code} {status}")


def test_success_dsn_is_no_bounce() -> None:
    report = read_report(postfix_with("2.0.0", "delivered", "250"))
    assert (report.kind, report.recipients, report.source) == (ReportKind.UNKNOWN, (), "dsn")
    assert report.original_message_id == "<issue7.r42.ab12cd34@kgi.example.org>"


def dsn(blocks: list[str], content_type: str = "message/delivery-status") -> bytes:
    body = "\n\n".join(["Reporting-MTA: dns; mx.example.net", *blocks])
    return (
        "From: MAILER-DAEMON@mx.example.net\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        f"--b\nContent-Type: text/plain\n\nSorry.\n\n--b\nContent-Type: {content_type}\n\n"
        f"{body}\n\n--b--\n"
    ).encode()


def test_dsn_with_hard_and_soft_recipients_reports_the_hard_ones() -> None:
    report = read_report(
        dsn(
            [
                "Final-Recipient: rfc822; full@example.com\nAction: delayed\nStatus: 4.2.2",
                "Final-Recipient: rfc822; Gone@example.net\nAction: failed\nStatus: 5.1.1\n"
                "Diagnostic-Code: smtp; 550 5.1.1 no such user",
                "Final-Recipient: rfc822; ok@example.org\nAction: delivered\nStatus: 2.0.0",
            ]
        )
    )
    assert (report.kind, report.recipients, report.status) == (HARD, ("gone@example.net",), "5.1.1")
    assert report.diagnostic == "550 5.1.1 no such user"


def test_global_delivery_status_is_read_too() -> None:
    # RFC 6533: UTF-8 addresses; the standard library does not split this part itself.
    report = read_report(
        dsn(
            ["Final-Recipient: utf-8; jürgen@example.de\nAction: failed\nStatus: 5.1.1"],
            "message/global-delivery-status",
        )
    )
    assert (report.kind, report.recipients, report.status) == (
        HARD,
        ("jürgen@example.de",),
        "5.1.1",
    )


def test_dsn_with_ten_thousand_recipients_is_capped() -> None:
    blocks = [
        f"Final-Recipient: rfc822; user{i}@example.net\nAction: failed\nStatus: 5.1.1"
        for i in range(10_000)
    ]
    started = time.monotonic()
    report = read_report(dsn(blocks))
    assert time.monotonic() - started < 5
    assert report.kind == HARD
    assert report.recipients == tuple(f"user{i}@example.net" for i in range(MAX_RECIPIENTS))


def test_failed_without_status_or_address_is_still_a_bounce() -> None:
    report = read_report(dsn(["Action: failed"]))
    assert (report.kind, report.recipients, report.status) == (HARD, (), None)


# --- other formats -------------------------------------------------------------------


def test_exim_bounce_of_a_full_mailbox_is_soft() -> None:
    raw = fixture("exim-hard-user-unknown.eml").replace(
        b"550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown in local"
        b" recipient table",
        b"552 5.2.2 <nobody@example.net>: Mailbox full",
    )
    report = read_report(raw)
    assert (report.kind, report.status, report.source) == (SOFT, "5.2.2", "flufl:exim")
    assert report.diagnostic == "552 5.2.2 <nobody@example.net>: Mailbox full"


def test_arf_not_spam_report_is_no_complaint() -> None:
    raw = fixture("arf-yahoo-abuse.eml").replace(
        b"Feedback-Type: abuse", b"Feedback-Type: not-spam"
    )
    report = read_report(raw)
    assert (report.kind, report.feedback_type, report.source) == (
        ReportKind.UNKNOWN,
        "not-spam",
        "arf",
    )


def test_arf_without_the_original_return_path_uses_original_mail_from() -> None:
    raw = fixture("arf-yahoo-abuse.eml").replace(
        b"Return-Path: <bounces+42.7.1a2b3c4d5e@kgi.example.org>\nAuthentication", b"Authentication"
    )
    assert raw != fixture("arf-yahoo-abuse.eml")
    report = read_report(raw)
    assert report.original_return_path == "bounces+42.7.1a2b3c4d5e@kgi.example.org"


def test_a_bounce_quoted_inside_a_forwarded_message_is_not_read_as_ours() -> None:
    forwarded = (
        b"From: Kollegin <kollegin@example.com>\nSubject: Fwd: was ist das?\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="fwd"\n\n--fwd\nContent-Type: text/plain\n\n'
        b"Schau mal.\n\n--fwd\nContent-Type: message/rfc822\n\n"
        + fixture("postfix-hard-user-unknown.eml")
        + b"\n--fwd--\n"
    )
    assert read_report(forwarded).kind not in (HARD, SOFT)


# --- auto-replies --------------------------------------------------------------------

#: A body that flufl.bounce's heuristics take for a bounce (Exim's wording).
BOUNCE_LIKE_BODY = (
    b"This message was created automatically by mail delivery software.\n\n"
    b"A message that you sent could not be delivered to one or more of its\n"
    b"recipients. This is a permanent error. The following address(es) failed:\n\n"
    b"  anna@example.com\n    550 5.1.1 mailbox unavailable\n\n"
    b"------ This is a copy of the message, including all the headers. ------\n\n"
    b"RCPT TO:<anna@example.com>\n"
)

AUTO_REPLY_MARKERS = [
    b"X-Autoreply: yes\n",
    b"X-Autorespond: Out of office\n",
    b"Precedence: auto_reply\n",
    b"Subject: Out of Office: KGI-Infobrief\n",
    b"Subject: Abwesenheitsnotiz: KGI-Infobrief\n",
    b"Subject: Automatische Antwort: KGI-Infobrief\n",
    b"Subject: =?UTF-8?Q?Automatische_Antwort=3A_KGI-Infobrief?=\n",
    b"Subject: Automatic reply: KGI-Infobrief\n",
    b"Subject: AW: Re: KGI\nAuto-Submitted: auto-replied (vacation)\n",
    b"Subject: Ticket #4711\nAuto-Submitted: auto-generated\n",
]


@pytest.mark.parametrize("marker", AUTO_REPLY_MARKERS)
def test_auto_replies_are_never_bounces(marker: bytes) -> None:
    raw = b"From: Anna <anna@example.com>\n" + marker + b"\n" + BOUNCE_LIKE_BODY
    report = read_report(raw)
    assert (report.kind, report.recipients, report.source) == (
        ReportKind.AUTO_REPLY,
        ("anna@example.com",),
        "autoreply",
    )


def test_without_auto_reply_markers_the_same_body_is_a_bounce() -> None:
    # The counterpart of the test above: the body alone does look like a bounce.
    raw = b"From: Mail Delivery System <mailer-daemon@example.com>\nSubject: failed\n\n"
    report = read_report(raw + BOUNCE_LIKE_BODY)
    assert (report.kind, report.recipients) == (HARD, ("anna@example.com",))
    assert report.source.startswith("flufl:")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    markers=st.lists(st.sampled_from(AUTO_REPLY_MARKERS), min_size=1, max_size=3),
    body=st.sampled_from(
        [BOUNCE_LIKE_BODY, fixture("exim-hard-user-unknown.eml").split(b"\n\n", 1)[1]]
    ),
    sender=st.sampled_from([b"anna@example.com", b"Anna Beispiel <anna@example.com>", b""]),
)
def test_auto_replies_never_bounce_whatever_they_quote(
    markers: list[bytes], body: bytes, sender: bytes
) -> None:
    raw = (b"From: " + sender + b"\n" if sender else b"") + b"".join(markers) + b"\n" + body
    report = read_report(raw)
    assert report.kind == ReportKind.AUTO_REPLY
    assert_sane(report)


# --- hostile input -------------------------------------------------------------------

HOSTILE = {
    "empty": b"",
    "not a mail": b"\x00\xff\xfe" * 1000,
    "huge header": b"Subject: " + b"x" * 3_000_000 + b"\n\nbody",
    "huge address list": b"From: " + b"<a@b>," * 300_000 + b"\n\nbody",
    "many headers": b"".join(b"X-H%d: v\n" % i for i in range(100_000)) + b"\nbody",
    "non-utf-8": "Subject: Abwesenheitsnotiz für Jürgen\nFrom: jürgen@example.de\n\nGrüße".encode(
        "latin-1"
    ),
    "deep nesting": b"Content-Type: multipart/mixed; boundary=b0\n\n"
    + b"".join(
        b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i, i + 1) for i in range(3000)
    ),
    "many parts": b"Content-Type: multipart/mixed; boundary=b\n\n"
    + b"--b\nContent-Type: text/plain\n\nx\n" * 30_000,
    "unclosed report": b"Content-Type: multipart/report; report-type=delivery-status; "
    b"boundary=b\n\n--b\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822;",
    "bad charset and encoding": b"Content-Type: text/plain; charset=x-nonsense\n"
    b"Content-Transfer-Encoding: base64\n\n!!!not base64!!!\n",
    "garbage status fields": b"Content-Type: multipart/report; boundary=b\n\n--b\n"
    b"Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822; "
    + b"a" * 500_000
    + b"@x\nAction: failed\nStatus: 5.1.1.1.1.1\nDiagnostic-Code: smtp; "
    + b"5.1.1 " * 100_000
    + b"\n--b--\n",
    "encoded-word bomb": b"From: x@y\nSubject: " + b"=?utf-8?q?=C3?=" * 50_000 + b"\n\nx",
    # Some flufl.bounce patterns take time quadratic in a line's length: unbounded, these
    # lines took 13 seconds.
    "long lines after a bounce marker": b"From: x@y\n\nSorry, unable to deliver your message to\n"
    + (b"a" * 4000 + b"\n") * 100,
    "a line of dashes": b"From: x@y\nSubject: s\n\n" + b"-" * 60_000 + b"\n",
    "a line of spaces": b"From: x@y\n\n" + b" " * 60_000 + b"550\n" + b" 5.1.1" * 10_000,
    "arf without fields": b"Content-Type: multipart/report; report-type=feedback-report; "
    b"boundary=b\n\n--b\nContent-Type: message/feedback-report\n\n--b--\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_never_raises(name: str) -> None:
    started = time.monotonic()
    report = read_report(HOSTILE[name])
    assert_sane(report)
    unsubscribe = read_unsubscribe(HOSTILE[name])
    assert_sane(unsubscribe)
    assert unsubscribe.kind == ReportKind.UNSUBSCRIBE
    assert time.monotonic() - started < 5


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_never_raise(raw: bytes) -> None:
    assert_sane(read_report(raw))
    assert read_unsubscribe(raw).kind == ReportKind.UNSUBSCRIBE


#: Pieces that make mutations reach the interesting code paths, not only the parser.
SPLICES = [
    b"\r\n",
    b"\n\n",
    b"--",
    b"\x00",
    b"\xff\xfe",
    b"=?utf-8?b?",
    b"Action: failed\nStatus: 5.1.1\n",
    b"Final-Recipient: rfc822; x@example.net\n",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n",
    b"Content-Type: message/delivery-status\n\n",
    b"Content-Transfer-Encoding: base64\n",
    b"X-Failed-Recipients: a@b, <c@d>, ,,\n",
    b"Auto-Submitted: auto-replied\n",
]


@st.composite
def mutated_fixture(draw: st.DrawFn) -> bytes:
    raw = bytearray(fixture(draw(st.sampled_from(MAIL_FIXTURES))))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(raw)))
        operation = draw(st.sampled_from(["flip", "insert", "delete", "splice", "duplicate"]))
        if operation == "flip" and position < len(raw):
            raw[position] = draw(st.integers(0, 255))
        elif operation == "insert":
            raw[position:position] = draw(st.binary(min_size=1, max_size=40))
        elif operation == "delete":
            del raw[position : position + draw(st.integers(1, 400))]
        elif operation == "splice":
            raw[position:position] = draw(st.sampled_from(SPLICES))
        elif operation == "duplicate":
            raw[position:position] = raw[position : position + draw(st.integers(1, 2000))]
    return bytes(raw)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_fixture())
def test_mutated_fixtures_never_raise(raw: bytes) -> None:
    assert_sane(read_report(raw))
    assert_sane(read_unsubscribe(raw))


# --- Mailgun -------------------------------------------------------------------------


def mailgun_body(event: dict[str, object], timestamp: int, key: str = MAILGUN_KEY) -> bytes:
    token = "5f0c1d2e3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c"
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {
            "signature": {"timestamp": str(timestamp), "token": token, "signature": signature},
            "event-data": event,
        }
    ).encode()


def test_mailgun_fixture() -> None:
    reports = read_mailgun(
        fixture("mailgun-failed-permanent.json"), MAILGUN_KEY, now=MAILGUN_SIGNED_AT + 30
    )
    assert reports == [
        DeliveryReport(
            HARD,
            ("weg@example.net",),
            status="5.1.1",
            diagnostic="550 5.1.1 <weg@example.net>: Recipient address rejected: "
            "User unknown in virtual mailbox table",
            original_message_id="<issue7.r52.6f5e4d3c@kgi.example.org>",
            original_return_path="bounces+52.7.0a9b8c7d6e@kgi.example.org",
            source="mailgun",
        )
    ]


@pytest.mark.parametrize(
    ("changes", "kind"),
    [
        ({"event": "failed", "severity": "temporary"}, SOFT),
        ({"event": "failed", "severity": "permanent", "reason": "suppress-bounce"}, HARD),
        (
            {"event": "failed", "severity": "permanent", "reason": "suppress-complaint"},
            ReportKind.COMPLAINT,
        ),
        ({"event": "complained"}, ReportKind.COMPLAINT),
        ({"event": "unsubscribed"}, ReportKind.UNSUBSCRIBE),
    ],
)
def test_mailgun_events(changes: dict[str, str], kind: ReportKind) -> None:
    event = json.loads(fixture("mailgun-failed-permanent.json"))["event-data"]
    event.update(changes)
    now = time.time()
    [report] = read_mailgun(mailgun_body(event, int(now)), MAILGUN_KEY)
    assert (report.kind, report.recipients, report.source) == (
        kind,
        ("weg@example.net",),
        "mailgun",
    )
    assert report.original_message_id == "<issue7.r52.6f5e4d3c@kgi.example.org>"


def test_mailgun_mailbox_full_given_up_is_soft() -> None:
    event = json.loads(fixture("mailgun-failed-permanent.json"))["event-data"]
    event["delivery-status"].update(
        {"code": 552, "message": "5.2.2 Mailbox full", "enhanced-code": "5.2.2"}
    )
    [report] = read_mailgun(mailgun_body(event, MAILGUN_SIGNED_AT), MAILGUN_KEY, MAILGUN_SIGNED_AT)
    assert (report.kind, report.status, report.diagnostic) == (
        SOFT,
        "5.2.2",
        "552 5.2.2 Mailbox full",
    )


@pytest.mark.parametrize("name", ["delivered", "opened", "clicked", "accepted"])
def test_mailgun_events_that_report_nothing(name: str) -> None:
    body = mailgun_body({"event": name, "recipient": "a@example.net"}, MAILGUN_SIGNED_AT)
    assert read_mailgun(body, MAILGUN_KEY, now=MAILGUN_SIGNED_AT) == []


def test_mailgun_refuses_a_bad_signature() -> None:
    body = fixture("mailgun-failed-permanent.json")
    with pytest.raises(WebhookRefused, match="signature"):
        read_mailgun(body, "another-key", now=MAILGUN_SIGNED_AT)
    forged = body.replace(b'"signature": "', b'"signature": "0', 1)
    with pytest.raises(WebhookRefused, match="signature"):
        read_mailgun(forged, MAILGUN_KEY, now=MAILGUN_SIGNED_AT)


@pytest.mark.parametrize("delta", [MAX_AGE_SECONDS + 1, 3600, -(MAX_AGE_SECONDS + 1)])
def test_mailgun_refuses_a_replay(delta: int) -> None:
    body = fixture("mailgun-failed-permanent.json")
    with pytest.raises(WebhookRefused, match="replay"):
        read_mailgun(body, MAILGUN_KEY, now=MAILGUN_SIGNED_AT + delta)
    # At the edge of the window it is still taken.
    assert read_mailgun(body, MAILGUN_KEY, now=MAILGUN_SIGNED_AT + MAX_AGE_SECONDS)


MALFORMED_MAILGUN = [
    b"",
    b"not json",
    b"\xff\xfe{}",
    b"[1, 2]",
    b"{}",
    b'{"signature": "abc"}',
    b'{"signature": {"timestamp": "x", "token": "t", "signature": "s"}}',
    b'{"signature": {"timestamp": 1.5, "token": "t", "signature": "s"}}',
    b'{"signature": {"timestamp": "1", "token": 5, "signature": "s"}}',
    b"[" * 100_000 + b"]" * 100_000,
]


def short(value: object) -> str:
    """A test ID that stays readable for bodies of a hundred thousand bytes."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}...({len(text)} chars)"


@pytest.mark.parametrize("body", MALFORMED_MAILGUN, ids=short)
def test_mailgun_refuses_malformed_bodies(body: bytes) -> None:
    with pytest.raises(WebhookRefused):
        read_mailgun(body, MAILGUN_KEY, now=MAILGUN_SIGNED_AT)


@pytest.mark.parametrize(
    "event",
    [
        None,
        [],
        {"no": "event"},
        {"event": "failed"},  # no recipient
        {"event": "failed", "recipient": "not an address"},
        {"event": "failed", "recipient": "a@example.net", "severity": "sometimes"},
        {"event": 7},
    ],
)
def test_mailgun_refuses_malformed_events(event: object) -> None:
    body = json.dumps(
        {**json.loads(mailgun_body({}, MAILGUN_SIGNED_AT)), "event-data": event}
    ).encode()
    with pytest.raises(WebhookRefused):
        read_mailgun(body, MAILGUN_KEY, now=MAILGUN_SIGNED_AT)


# --- SendGrid ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_der_base64(key: ec.EllipticCurvePrivateKey) -> str:
    """The verification key as SendGrid's settings page shows it."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def sign(key: ec.EllipticCurvePrivateKey, body: bytes, timestamp: str) -> str:
    """Like SendGrid: ECDSA P-256 with SHA-256 over timestamp + body, DER, base64."""
    return base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


SENDGRID_EXPECTED = [
    DeliveryReport(
        HARD,
        ("hart@example.com",),
        status="5.1.1",
        diagnostic="550 5.1.1 The email account that you tried to reach does not exist.",
        original_message_id="<issue7.r53.11aa22bb@kgi.example.org>",
        source="sendgrid",
    ),
    DeliveryReport(
        SOFT,
        ("blockiert@example.com",),
        status="5.7.1",
        diagnostic="554 5.7.1 Service unavailable; Client host [203.0.113.45] blocked using "
        "zen.spamhaus.example",
        original_message_id="<issue7.r54.33cc44dd@kgi.example.org>",
        source="sendgrid",
    ),
    DeliveryReport(
        SOFT,
        ("spaeter@example.com",),
        status="4.2.2",
        diagnostic="452 4.2.2 Mailbox full",
        original_message_id="<issue7.r55.55ee66ff@kgi.example.org>",
        source="sendgrid",
    ),
    DeliveryReport(
        HARD,
        ("frueher@example.com",),
        status="5.0.0",
        diagnostic="Bounced Address",
        original_message_id="<issue7.r56.77009911@kgi.example.org>",
        source="sendgrid",
    ),
    DeliveryReport(ReportKind.COMPLAINT, ("genervt@example.com",), source="sendgrid"),
    DeliveryReport(ReportKind.UNSUBSCRIBE, ("tschuess@example.com",), source="sendgrid"),
    DeliveryReport(ReportKind.UNSUBSCRIBE, ("gruppe@example.com",), source="sendgrid"),
]


@pytest.mark.parametrize("key_format", ["der-base64", "pem"])
def test_sendgrid_fixture(sendgrid_key: ec.EllipticCurvePrivateKey, key_format: str) -> None:
    body = fixture("sendgrid-events.json")
    timestamp = str(int(time.time()))
    if key_format == "pem":
        public_key = (
            sendgrid_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
    else:
        public_key = public_der_base64(sendgrid_key)
    reports = read_sendgrid(body, sign(sendgrid_key, body, timestamp), timestamp, public_key)
    # delivered and open give no report.
    assert reports == SENDGRID_EXPECTED


def test_sendgrid_refuses_a_bad_signature(sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    body = fixture("sendgrid-events.json")
    timestamp = "1715670810"
    signature = sign(sendgrid_key, body, timestamp)
    public_key = public_der_base64(sendgrid_key)
    now = 1715670820
    tampered = body.replace(b'"event":"bounce"', b'"event":"delivered"', 1)
    other_key = ec.generate_private_key(ec.SECP256R1())
    refused = [
        (tampered, signature, timestamp),
        (body, signature, "1715670811"),  # the timestamp is signed too
        (body, sign(other_key, body, timestamp), timestamp),
        (body, "", timestamp),
        (body, "not base64!", timestamp),
        (body, base64.b64encode(b"\x30\x03\x02\x01\x01").decode(), timestamp),
    ]
    for refused_body, refused_signature, refused_timestamp in refused:
        with pytest.raises(WebhookRefused, match="signature"):
            read_sendgrid(refused_body, refused_signature, refused_timestamp, public_key, now)
    assert read_sendgrid(body, signature, timestamp, public_key, now) == SENDGRID_EXPECTED


def test_sendgrid_refuses_a_replay(sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    body = fixture("sendgrid-events.json")
    timestamp = "1715670810"
    signature = sign(sendgrid_key, body, timestamp)
    with pytest.raises(WebhookRefused, match="replay"):
        read_sendgrid(body, signature, timestamp, public_der_base64(sendgrid_key))
    with pytest.raises(WebhookRefused, match="replay"):
        read_sendgrid(
            body, signature, timestamp, public_der_base64(sendgrid_key), now=1715670810 - 301
        )


@pytest.mark.parametrize("timestamp", ["", "soon", "-1", "1715670810.5", "1" * 20])
def test_sendgrid_refuses_a_malformed_timestamp(
    sendgrid_key: ec.EllipticCurvePrivateKey, timestamp: str
) -> None:
    body = b"[]"
    with pytest.raises(WebhookRefused, match="timestamp"):
        read_sendgrid(
            body, sign(sendgrid_key, body, timestamp), timestamp, public_der_base64(sendgrid_key)
        )


@pytest.mark.parametrize(
    "public_key",
    [
        "",
        "not a key",
        "-----BEGIN PUBLIC KEY-----\nnonsense\n-----END PUBLIC KEY-----",
        base64.b64encode(b"\x30\x00").decode(),
    ],
)
def test_sendgrid_refuses_an_unreadable_key(public_key: str) -> None:
    with pytest.raises(WebhookRefused, match="key"):
        read_sendgrid(b"[]", "", str(int(time.time())), public_key)


def test_sendgrid_refuses_a_key_on_another_curve() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    body, timestamp = b"[]", str(int(time.time()))
    signature = base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256())))
    with pytest.raises(WebhookRefused, match="P-256"):
        read_sendgrid(body, signature.decode(), timestamp, public_der_base64(key))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b"\xff\xfe[]",
        b'{"event": "bounce"}',
        b"[1]",
        b'[{"email": "a@example.net"}]',
        b'[{"event": "bounce"}]',
        b'[{"event": "bounce", "email": "no address"}]',
        b'[{"event": "spamreport", "email": ["a@example.net"]}]',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=short,
)
def test_sendgrid_refuses_malformed_bodies(
    sendgrid_key: ec.EllipticCurvePrivateKey, body: bytes
) -> None:
    timestamp = str(int(time.time()))
    with pytest.raises(WebhookRefused):
        read_sendgrid(
            body, sign(sendgrid_key, body, timestamp), timestamp, public_der_base64(sendgrid_key)
        )


def test_sendgrid_skips_odd_optional_fields(sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    body = b'[{"event": "bounce", "email": "A@example.net", "reason": 550, "smtp-id": null}]'
    timestamp = str(int(time.time()))
    reports = read_sendgrid(
        body, sign(sendgrid_key, body, timestamp), timestamp, public_der_base64(sendgrid_key)
    )
    assert reports == [DeliveryReport(HARD, ("a@example.net",), source="sendgrid")]


#: One key for the property test: generating one per example would dominate its time.
_FUZZ_KEY = ec.generate_private_key(ec.SECP256R1())
_FUZZ_PUBLIC_KEY = public_der_base64(_FUZZ_KEY)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(
        st.binary(max_size=512),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(
                    st.sampled_from(["event", "email", "type", "reason", "status", "smtp-id", "x"]),
                    inner,
                    max_size=5,
                )
            ),
            max_leaves=12,
        ).map(lambda value: json.dumps(value).encode()),
    )
)
def test_signed_webhook_bodies_never_raise_anything_else(body: bytes) -> None:
    key = _FUZZ_KEY
    timestamp = str(int(time.time()))
    for call in (
        lambda: read_sendgrid(body, sign(key, body, timestamp), timestamp, _FUZZ_PUBLIC_KEY),
        lambda: read_mailgun(body, MAILGUN_KEY),
    ):
        try:
            reports = call()
        except WebhookRefused:
            continue
        assert isinstance(reports, list)
        for report in reports:
            assert_sane(report)
