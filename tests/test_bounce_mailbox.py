"""Reading bounces from a hosted mailbox: shared/mail/mailbox.py against a real dovecot.

Mail goes in with IMAP APPEND, the way a hosted mailbox fills up; what the poller leaves
behind is read back over IMAP as well.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import traceback
from collections.abc import Callable
from email import message_from_bytes
from pathlib import Path

import pytest

from shared.mail.mailbox import (
    MailboxEndpoint,
    MailboxUnavailable,
    PollResult,
    delivered_recipient,
    poll_mailbox,
)
from tests import dovecot_server
from tests.dovecot_server import PASSWORD, TLS, USER, DovecotServer

CA = TLS / "test-only-cert.pem"


def _crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def tagged(n: int) -> str:
    """A VERP bounce address like the ones shared/mail/signing.py hands out."""
    return f"bounces+{n}.7.1a2b3c4d5e@kgi.example.org"


def postfix_dsn(n: int, headers: str) -> bytes:
    """An RFC 3464 delivery status notification as Postfix writes it."""
    return _crlf(
        f"""Return-Path: <>
{headers}Received: from mx.example.net (mx.example.net [192.0.2.25])
\tby imap.kgi.example.org with ESMTPS id 4XyQ{n}; Tue, 3 Mar 2026 09:1{n}:00 +0100
Date: Tue,  3 Mar 2026 09:1{n}:00 +0100 (CET)
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender ({n})
To: {tagged(n)}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="DSN{n}"
Message-Id: <20260303091{n}.4XyQ{n}@mx.example.net>

--DSN{n}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<leser{n}@example.net>: host mx.example.net said: 550 5.1.1 User unknown

--DSN{n}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Arrival-Date: Tue,  3 Mar 2026 09:10:00 +0100 (CET)

Final-Recipient: rfc822; leser{n}@example.net
Original-Recipient: rfc822;leser{n}@example.net
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <leser{n}@example.net>: Recipient address
    rejected: User unknown in virtual mailbox table

--DSN{n}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Delivered-To: not-this-one@example.net
From: KGI-Infobrief <infobrief@kgi.example.org>
To: leser{n}@example.net
Subject: KGI-Infobrief 3/2026
Message-ID: <issue7.{n}@kgi.example.org>

--DSN{n}--
"""
    )


def exchange_ndr(n: int, headers: str) -> bytes:
    """A German non-delivery report from Exchange Online, plain text for brevity."""
    return _crlf(
        f"""{headers}From: postmaster@kommune.example.de
To: {tagged(n)}
Date: Wed, 4 Mar 2026 10:0{n}:00 +0000
Subject: Unzustellbar: KGI-Infobrief 3/2026 ({n})
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit
MIME-Version: 1.0
Auto-Submitted: auto-replied
Message-ID: <ndr{n}@kommune.example.de>

Ihre Nachricht hat leser{n}@kommune.example.de nicht erreicht.
Remote Server returned '550 5.4.1 Recipient address rejected: Access denied'
"""
    )


def exim_failure(n: int, headers: str) -> bytes:
    """Exim's classic failure message."""
    return _crlf(
        f"""{headers}From: Mail Delivery System <Mailer-Daemon@mail.example.org>
To: {tagged(n)}
Subject: Mail delivery failed: returning message to sender ({n})
Date: Thu, 05 Mar 2026 11:0{n}:00 +0100
Message-Id: <E1exim{n}@mail.example.org>
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  leser{n}@example.org
    mailbox is full: retry timeout exceeded
"""
    )


def bounces() -> list[tuple[bytes, str | None]]:
    """Realistic bounces and the recipient the poller must report for each."""
    return [
        # Two Delivered-To: the topmost was added by the mailbox's own system.
        (
            postfix_dsn(1, f"Delivered-To: {tagged(1)}\nDelivered-To: bounces@kgi.example.org\n"),
            tagged(1),
        ),
        (exchange_ndr(2, f"X-Original-To: {tagged(2)}\n"), tagged(2)),
        (exim_failure(3, f"Envelope-To: <{tagged(3)}>\n"), tagged(3)),
        # No header names the recipient (the one in the returned headers does not count).
        (postfix_dsn(4, ""), None),
    ]


def subject(raw: bytes) -> str:
    return str(message_from_bytes(raw)["Subject"])


class Recorder:
    """A bounce handler that remembers what it was given and fails when told to."""

    def __init__(self, fails: Callable[[bytes], bool] = lambda raw: False) -> None:
        self.calls: list[tuple[bytes, str | None]] = []
        self.fails = fails

    def __call__(self, raw: bytes, recipient: str | None) -> None:
        self.calls.append((raw, recipient))
        if self.fails(raw):
            raise RuntimeError("handler broke on purpose")

    @property
    def subjects(self) -> list[str]:
        return [subject(raw) for raw, _ in self.calls]


def poll(server: DovecotServer, handle: Recorder, limit: int = 500, **options: str) -> PollResult:
    return poll_mailbox(MailboxEndpoint.from_url(server.url(**options)), handle, limit=limit)


def test_every_message_is_handled_once_and_then_gone(mailbox):
    expected = bounces()
    mailbox.append(*(raw for raw, _ in expected))
    handler = Recorder()

    assert poll(mailbox, handler) == PollResult(handled=4, failed=0, left=0)

    assert handler.calls == expected  # oldest first, exact bytes, the right recipients
    assert mailbox.messages() == []
    assert poll(mailbox, handler) == PollResult(0, 0, 0)
    assert len(handler.calls) == 4


def test_a_failing_handler_leaves_exactly_that_message_unread(mailbox, caplog):
    expected = bounces()
    mailbox.append(*(raw for raw, _ in expected))
    broken = Recorder(fails=lambda raw: b"Unzustellbar" in raw)

    with caplog.at_level(logging.ERROR, logger="kgi.mail.mailbox"):
        assert poll(mailbox, broken) == PollResult(handled=3, failed=1, left=0)

    assert len(broken.calls) == 4  # the failure did not stop the poll
    [(flags, raw)] = mailbox.messages()
    assert raw == expected[1][0]
    assert "\\Seen" not in flags and "\\Deleted" not in flags  # BODY.PEEK, not removed
    assert any(
        "bounce handler failed" in record.getMessage() and record.exc_info
        for record in caplog.records
    )

    fixed = Recorder()
    assert poll(mailbox, fixed) == PollResult(handled=1, failed=0, left=0)
    assert fixed.calls == [expected[1]]
    assert mailbox.messages() == []


def test_a_message_that_keeps_failing_does_not_block_the_others(mailbox):
    mailbox.append(*(raw for raw, _ in bounces()[:3]))
    poisoned = Recorder(fails=lambda raw: b"(1)" in raw)

    results = [poll(mailbox, poisoned, limit=1) for _ in range(4)]

    # The flagged failure goes after the fresh ones; each poll still counts it as waiting.
    assert results == [
        PollResult(handled=0, failed=1, left=2),
        PollResult(handled=1, failed=0, left=2),
        PollResult(handled=1, failed=0, left=1),
        PollResult(handled=0, failed=1, left=0),
    ]
    assert [s[-3:] for s in poisoned.subjects] == ["(1)", "(2)", "(3)", "(1)"]
    [(_, raw)] = mailbox.messages()
    assert b"(1)" in raw


def test_limit_is_honoured_oldest_first(mailbox):
    mailbox.append(*(exim_failure(n, f"Delivered-To: {tagged(n)}\n") for n in range(1, 6)))
    handler = Recorder()

    assert poll(mailbox, handler, limit=2) == PollResult(handled=2, failed=0, left=3)
    assert len(mailbox.messages()) == 3
    assert poll(mailbox, handler, limit=2) == PollResult(handled=2, failed=0, left=1)
    assert poll(mailbox, handler, limit=2) == PollResult(handled=1, failed=0, left=0)

    assert [recipient for _, recipient in handler.calls] == [tagged(n) for n in range(1, 6)]
    with pytest.raises(ValueError, match="limit"):
        poll(mailbox, handler, limit=0)


@pytest.mark.parametrize(
    ("folder", "imap_name"),
    [("Processed", "Processed"), ("Rückläufer", "R&APw-ckl&AOQ-ufer")],
)
def test_processed_folder_gets_the_messages_instead_of_deletion(mailbox, folder, imap_name):
    expected = bounces()
    mailbox.append(*(raw for raw, _ in expected[:3]))
    handler = Recorder(fails=lambda raw: b"(3)" in raw)

    assert poll(mailbox, handler, processed=folder) == PollResult(handled=2, failed=1, left=0)

    assert imap_name in mailbox.folders()  # created on first use, name in modified UTF-7
    moved = mailbox.messages(imap_name)
    assert [raw for _, raw in moved] == [expected[0][0], expected[1][0]]
    assert all("\\Deleted" not in flags and "\\Seen" not in flags for flags, _ in moved)
    assert [raw for _, raw in mailbox.messages()] == [expected[2][0]]

    # Once the folder exists the next one goes there as well.
    assert poll(mailbox, Recorder(), processed=folder) == PollResult(handled=1, failed=0, left=0)
    assert len(mailbox.messages(imap_name)) == 3 and mailbox.messages() == []


def test_without_move_the_processed_folder_gets_a_copy(mailbox, monkeypatch):
    import shared.mail.mailbox as module

    # A server without MOVE (RFC 6851): COPY, flag \Deleted, EXPUNGE at the end.
    real = module._capabilities
    monkeypatch.setattr(module, "_capabilities", lambda imap: real(imap) - {"MOVE"})
    expected = bounces()
    mailbox.append(*(raw for raw, _ in expected))

    assert poll(mailbox, Recorder(), processed="Processed") == PollResult(4, 0, 0)

    assert [raw for _, raw in mailbox.messages("Processed")] == [raw for raw, _ in expected]
    assert mailbox.messages() == []


def test_a_handled_message_that_cannot_be_moved_stays_and_counts_as_failed(mailbox, caplog):
    expected = bounces()[:2]
    mailbox.append(*(raw for raw, _ in expected))
    handler = Recorder()

    # Dovecot refuses folder names that begin with '~'.
    with caplog.at_level(logging.ERROR, logger="kgi.mail.mailbox"):
        result = poll(mailbox, handler, processed="~Processed")

    assert result == PollResult(handled=0, failed=2, left=0)
    assert handler.calls == expected  # the first failure did not stop the poll
    assert [raw for _, raw in mailbox.messages()] == [raw for raw, _ in expected]
    assert "could not be removed" in caplog.text


def test_tls_with_the_test_ca(mailbox):
    raw, recipient = bounces()[0]
    for url in (
        mailbox.url("imaps", cafile=str(CA)),
        mailbox.url("imap", starttls="true", cafile=str(CA)),
    ):
        mailbox.append(raw)
        handler = Recorder()
        assert poll_mailbox(MailboxEndpoint.from_url(url), handler) == PollResult(1, 0, 0)
        assert handler.calls == [(raw, recipient)]
    logins = [line for line in mailbox.log().splitlines() if f"Login: user=<{USER}>" in line]
    assert ", TLS," in logins[-1] and ", TLS," in logins[-3]  # STARTTLS, then imaps


def impostor_ca(directory: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 like the test one, but with another key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    path = directory / "impostor-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_an_untrusted_certificate_is_refused(mailbox, tmp_path):
    raw, _ = bounces()[0]
    mailbox.append(raw)
    wrong = impostor_ca(tmp_path)
    handler = Recorder()
    for url in (
        mailbox.url("imaps", cafile=str(wrong), timeout="5"),
        mailbox.url("imap", starttls="true", cafile=str(wrong), timeout="5"),
        mailbox.url("imaps", timeout="5"),  # the system's CAs do not know the test CA either
    ):
        with pytest.raises(MailboxUnavailable, match="certificate") as refused:
            poll_mailbox(MailboxEndpoint.from_url(url), handler)
        assert PASSWORD not in str(refused.value)
    assert handler.calls == []
    assert [r for _, r in mailbox.messages()] == [raw]

    with pytest.raises(MailboxUnavailable, match="CA bundle"):
        poll(mailbox, handler, cafile=str(tmp_path / "missing.pem"))


def test_a_wrong_password_is_unavailable_without_the_password(mailbox):
    mailbox.append(bounces()[0][0])
    handler = Recorder()
    secret = "Wrong-But-Secret-4711"
    with pytest.raises(MailboxUnavailable) as refused:
        poll_mailbox(MailboxEndpoint.from_url(mailbox.url(password=secret)), handler)

    message = str(refused.value)
    assert "login" in message and USER in message and "AUTHENTICATIONFAILED" in message
    everything = "".join(traceback.format_exception(refused.value))
    assert secret not in everything and PASSWORD not in everything
    assert handler.calls == [] and len(mailbox.messages()) == 1


def test_a_non_ascii_password_logs_in_with_sasl_plain(mailbox):
    unicode_inbox = MailboxEndpoint.from_url(
        mailbox.url(user=dovecot_server.UNICODE_USER, password=dovecot_server.UNICODE_PASSWORD)
    )
    assert poll_mailbox(unicode_inbox, Recorder()) == PollResult(0, 0, 0)
    wrong = mailbox.url(user=dovecot_server.UNICODE_USER, password="Grüße-falsch")
    with pytest.raises(MailboxUnavailable, match="login refused") as refused:
        poll_mailbox(MailboxEndpoint.from_url(wrong), Recorder())
    assert "Grüße-falsch" not in "".join(traceback.format_exception(refused.value))


def test_unreachable_server_and_missing_folder_are_unavailable(mailbox):
    from tests.conftest import free_port

    closed = f"imap://{USER.replace('@', '%40')}:x@127.0.0.1:{free_port()}/INBOX?timeout=5"
    with pytest.raises(MailboxUnavailable, match="cannot connect"):
        poll_mailbox(MailboxEndpoint.from_url(closed), Recorder())
    with pytest.raises(MailboxUnavailable, match="Nowhere"):
        poll_mailbox(MailboxEndpoint.from_url(mailbox.url(folder="Nowhere")), Recorder())


def test_recipient_headers():
    assert delivered_recipient(b"Delivered-To: a@example.org\r\n\r\nbody") == "a@example.org"
    assert (
        delivered_recipient(b"X-Original-To: b@example.org\r\nEnvelope-To: c@example.org\r\n\r\n")
        == "b@example.org"
    )
    assert delivered_recipient(b"Envelope-To: <c@example.org>\r\n\r\n") == "c@example.org"
    assert delivered_recipient(b"Subject: hi\r\n\r\nDelivered-To: d@example.org\r\n") is None
    assert delivered_recipient(b"") is None


def test_endpoint_parsing():
    hosted = MailboxEndpoint.from_url(
        "imaps://bounces%40kgi.example.org:secret@imap.example.org/INBOX"
    )
    assert hosted == MailboxEndpoint(
        host="imap.example.org",
        port=993,
        implicit_tls=True,
        starttls=False,
        username="bounces@kgi.example.org",
        password="secret",
        folder="INBOX",
        processed_folder=None,
        timeout=30,
        cafile=None,
    )
    assert "secret" not in repr(hosted) and "secret" not in hosted.label

    local = MailboxEndpoint.from_url(
        "imap://user:p%40ss%2Fw%3Ard@127.0.0.1:1143/INBOX?starttls=true&cafile=/path/ca.pem"
        "&timeout=7.5&processed=Processed"
    )
    assert (local.port, local.starttls, local.implicit_tls, local.cafile) == (
        1143,
        True,
        False,
        "/path/ca.pem",
    )
    assert (local.password, local.timeout, local.processed_folder) == (
        "p@ss/w:rd",
        7.5,
        "Processed",
    )

    plain = MailboxEndpoint.from_url("IMAP://u:p@mail.example.org")
    assert (plain.port, plain.folder, plain.starttls) == (143, "INBOX", False)
    assert MailboxEndpoint.from_url("imap://u:p@h/Bounces/2026/").folder == "Bounces/2026"
    assert MailboxEndpoint.from_url("imap://u:p@h/R%C3%BCckl%C3%A4ufer").folder == "Rückläufer"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("", "imap:// or imaps://"),
        ("not a url at all", "imap:// or imaps://"),
        ("smtps://u:geheimWort42@mail.example.org", "imap:// or imaps://"),
        ("imap://mail.example.org/INBOX", "user name and password"),
        ("imap://u@mail.example.org/INBOX", "user name and password"),
        ("imap://u:geheim/Wort42@mail.example.org/INBOX", "percent-encode"),
        ("imap://u:geheim?Wort42@mail.example.org/INBOX", "percent-encode"),
        ("imap://u:geheim#Wort42@mail.example.org/INBOX", "percent-encode"),
        ("imap://u:geheimWort42@mail.example.org:99999/", "port"),
        ("imap://u:geheimWort42@mail.example.org:0/", "port"),
        ("imap://u:geheimWort42@mail.example.org:imap/", "port"),
        ("imap://u:geheimWort42@:143/INBOX", "no host"),
        ("imap://u:geheimWort42@mail.example.org/?starttls=perhaps", "starttls"),
        ("imaps://u:geheimWort42@mail.example.org/?starttls=true", "starttls"),
        ("imap://u:geheimWort42@mail.example.org/?timeout=-1", "timeout"),
        ("imap://u:geheimWort42@mail.example.org/?timeout=soon", "timeout"),
        ("imap://u:geheimWort42@mail.example.org/?color=blue", "unknown option 'color'"),
        ("imap://u:geheimWort42@mail.example.org/?cafile=", "cafile"),
        ("imap://u:geheimWort42@mail.example.org/INBOX?processed=inbox", "another folder"),
        ("imap://u:geheimWort42@mail.example.org/IN%0D%0ABOX", "control characters"),
    ],
)
def test_bad_urls_are_clear_value_errors_without_the_password(url, complaint):
    with pytest.raises(ValueError) as bad:
        MailboxEndpoint.from_url(url)
    assert complaint in str(bad.value)
    everything = "".join(traceback.format_exception(bad.value))
    assert "Wort42" not in everything and "geheim" not in everything
