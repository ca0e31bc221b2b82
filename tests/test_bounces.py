"""Mail that comes back: bounces, complaints and mailto unsubscribes sent by a real SMTP
client to a real ``kgi inbound`` process, and what they do to subscribers and issues."""

from __future__ import annotations

import os
import smtplib
import socket
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid

import httpx
import pytest

from services.newsletter import dispatch
from services.subscribers import feedback, store, transfer
from shared.database import engine
from shared.mail import signing
from tests.conftest import free_port, login, wait_for
from tests.test_newsletter import new_issue, state_of, subscribe


@pytest.fixture
def inbound() -> Iterator[int]:
    """``kgi inbound`` as operators start it, on a free loopback port; yields the port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "kgi", "inbound", "--port", str(port)],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: _listening(port), timeout=20, message="kgi inbound listening")
        yield port
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0].decode(errors="replace")
        assert process.returncode == 0, output


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def subscriber(email_key: str) -> store.Subscriber:
    with engine("subscribers").connect() as conn:
        found = store.find_by_key(conn, email_key)
    assert found is not None
    return found


def consent_actions(subscriber_id: int) -> list[str]:
    with engine("subscribers").connect() as conn:
        return [event.action for event in store.history(conn, subscriber_id)]


def delivery_report(
    original_from: str, recipient: str, status: str, *, action: str = "failed", note: str = ""
) -> bytes:
    """A delivery status notification (RFC 3464) as Postfix writes one."""
    text = f"""\
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: {original_from}
Subject: Undelivered Mail Returned to Sender
Message-ID: {make_msgid(domain="mx.example.net")}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"

--dsn
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.{note}

<{recipient}>: host mx.example.net said: {status[0]}50 {status} mailbox problem

--dsn
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822; {recipient}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {status[0]}50 {status} <{recipient}>: mailbox problem

--dsn
Content-Type: text/rfc822-headers

Return-Path: <{original_from}>
From: KGI-Infobrief <infobrief@kgi.example.org>
To: {recipient}
Subject: KGI-Infobrief

--dsn--
"""
    return text.replace("\n", "\r\n").encode()


def send_to_inbound(port: int, envelope_to: str, data: bytes, mail_from: str = "") -> None:
    """Deliver as an MTA does: the null sender for reports, one recipient."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(mail_from, [envelope_to], data)


def issue_sent_to(readers: list[str], smtp) -> tuple[int, dict[str, str]]:
    """Send a new issue to everyone; returns its id and each reader's envelope sender."""
    issue = new_issue()
    dispatch.start(issue.id, "redaktion@example.org")
    wait_for(lambda: state_of(issue.id) == "sent", timeout=30, message="issue sent")
    return issue.id, {reader: smtp.to(reader)[-1].mail_from for reader in readers}


def test_a_hard_bounce_stops_the_next_issue_for_that_address(site, worker, smtp, inbound):
    readers = subscribe(3)
    issue_id, senders = issue_sent_to(readers, smtp)
    gone = readers[1]
    tag = signing.read_return_address(senders[gone])
    assert tag is not None and tag.issue_id == issue_id

    send_to_inbound(inbound, senders[gone], delivery_report(senders[gone], gone, "5.1.1"))

    row = subscriber(gone)
    assert row.status == "bounced" and row.bounced_at is not None
    assert consent_actions(row.id)[-1] == "bounced"
    assert feedback.issue_counts(issue_id)["hard_bounce"] == 1
    assert subscriber(readers[0]).status == "confirmed"

    # The issue's page shows it; the subscriber's page shows the report.
    admin = login(site)
    page = admin.get(f"/newsletter/admin/{issue_id}").text
    assert '<span data-feedback="hard_bounce">1</span>' in page
    detail = admin.get(f"/subscribers/admin/{row.id}").text
    assert "5.1.1" in detail and "dauerhaft unzustellbar" in detail

    smtp.reset()
    issue_sent_to([readers[0], readers[2]], smtp)
    assert not smtp.to(gone), "a bounced address got the next issue"
    assert len(smtp.to(readers[0])) == 1 and len(smtp.to(readers[2])) == 1


def test_soft_bounces_count_once_each_until_the_limit(site, worker, smtp, inbound):
    [reader] = subscribe(1)
    _, senders = issue_sent_to([reader], smtp)
    sender = senders[reader]
    reports = [
        delivery_report(sender, reader, "4.2.2", action="delayed", note=f" ({n})") for n in range(3)
    ]
    send_to_inbound(inbound, sender, reports[0])
    send_to_inbound(inbound, sender, reports[0])  # the same report again: counted once
    send_to_inbound(inbound, sender, reports[1])
    assert subscriber(reader).status == "confirmed"
    send_to_inbound(inbound, sender, reports[2])
    row = subscriber(reader)
    assert row.status == "bounced"
    with engine("subscribers").connect() as conn:
        assert [r.kind for r in feedback.history(conn, row.id)] == ["soft_bounce"] * 3


def test_a_complaint_unsubscribes_at_once(site, worker, smtp, inbound):
    [reader] = subscribe(1)
    issue_id, senders = issue_sent_to([reader], smtp)
    original = smtp.to(reader)[-1].raw
    complaint = (
        (
            "From: feedback@arf.example.net\r\nTo: bounces@kgi.example.org\r\n"
            "Subject: FW: KGI-Infobrief\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=feedback-report; boundary="arf"\r\n\r\n'
            "--arf\r\nContent-Type: text/plain\r\n\r\n"
            "This is an email abuse report for an email message.\r\n\r\n"
            "--arf\r\nContent-Type: message/feedback-report\r\n\r\n"
            "Feedback-Type: abuse\r\nUser-Agent: ExampleFBL/1.0\r\nVersion: 1\r\n"
            f"Original-Mail-From: <{senders[reader]}>\r\nOriginal-Rcpt-To: <{reader}>\r\n\r\n"
            "--arf\r\nContent-Type: message/rfc822\r\n\r\n"
            f"Return-Path: <{senders[reader]}>\r\n"
        ).encode()
        + original
        + b"\r\n--arf--\r\n"
    )
    # Feedback loops report to the plain address; the quoted original carries the tag.
    send_to_inbound(inbound, "bounces@kgi.example.org", complaint)
    row = subscriber(reader)
    assert row.status == "unsubscribed"
    assert consent_actions(row.id)[-1] == "complaint"
    assert feedback.issue_counts(issue_id)["complaint"] == 1


def test_a_mail_to_the_unsubscribe_address_unsubscribes(site, worker, smtp, inbound):
    [reader, other] = subscribe(2)
    issue_sent_to([reader, other], smtp)
    mail = smtp.to(reader)[-1].message
    mailto = str(mail["List-Unsubscribe"]).split(">")[0].removeprefix("<")
    address = mailto.removeprefix("mailto:").split("?")[0]

    vacation = EmailMessage()
    vacation["From"] = other
    vacation["To"] = address
    vacation["Subject"] = "Abwesenheitsnotiz: unsubscribe"
    vacation["Auto-Submitted"] = "auto-replied"
    vacation.set_content("Ich bin bis zum 3. Januar nicht im Büro.\n")
    send_to_inbound(inbound, address, vacation.as_bytes(), mail_from=other)
    assert subscriber(reader).status == "confirmed"  # an auto-reply is no request

    request = EmailMessage()
    request["From"] = reader
    request["To"] = address
    request["Subject"] = "unsubscribe"
    request.set_content("")
    send_to_inbound(inbound, address, request.as_bytes(), mail_from=reader)
    row = subscriber(reader)
    assert row.status == "unsubscribed" and consent_actions(row.id)[-1] == "unsubscribed"
    assert subscriber(other).status == "confirmed"


def test_forged_reports_change_nothing(site, worker, smtp, inbound):
    [reader] = subscribe(1)
    _, senders = issue_sent_to([reader], smtp)
    real = senders[reader]
    local, _, domain = real.partition("@")
    forged = local[:-1] + ("0" if local[-1] != "0" else "1") + "@" + domain
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send_to_inbound(inbound, forged, delivery_report(forged, reader, "5.1.1"))
    assert refused.value.recipients[forged][0] == 550
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send_to_inbound(inbound, "postmaster@kgi.example.org", b"Subject: x\r\n\r\nx\r\n")
    # At the plain bounce address a report counts only with a tagged original.
    untagged = delivery_report("infobrief@kgi.example.org", reader, "5.1.1")
    send_to_inbound(inbound, "bounces@kgi.example.org", untagged)
    assert subscriber(reader).status == "confirmed"


def test_lmtp_answers_per_recipient(site, worker, smtp):
    from services.subscribers.inbound import InboundServer

    [reader] = subscribe(1)
    _, senders = issue_sent_to([reader], smtp)
    server = InboundServer("127.0.0.1", free_port(), lmtp=True)
    server.start()
    try:
        with smtplib.LMTP("127.0.0.1", server.port, timeout=30) as client:
            client.ehlo_or_helo_if_needed()
            data = delivery_report(senders[reader], reader, "5.1.1")
            refused = client.sendmail("", [senders[reader], "nobody@kgi.example.org"], data)
        assert list(refused) == ["nobody@kgi.example.org"]
    finally:
        server.stop()
    assert subscriber(reader).status == "bounced"


def test_database_trouble_asks_the_sender_to_retry_and_loses_nothing(
    site, worker, smtp, monkeypatch
):
    """451 while the report cannot be recorded; the MTA's retry then records it once."""
    from sqlalchemy.exc import OperationalError

    from services.subscribers.inbound import InboundServer

    [reader] = subscribe(1)
    _, senders = issue_sent_to([reader], smtp)
    record = feedback.record
    failures = [OperationalError("insert", {}, Exception("server closed the connection"))]

    def flaky(*args, **kwargs):
        if failures:
            raise failures.pop()
        return record(*args, **kwargs)

    monkeypatch.setattr(feedback, "record", flaky)
    server = InboundServer("127.0.0.1", free_port())
    server.start()
    try:
        data = delivery_report(senders[reader], reader, "5.1.1")
        with pytest.raises(smtplib.SMTPDataError) as later:
            send_to_inbound(server.port, senders[reader], data)
        assert later.value.smtp_code == 451
        assert subscriber(reader).status == "confirmed"
        send_to_inbound(server.port, senders[reader], data)  # the MTA's next attempt
        send_to_inbound(server.port, senders[reader], data)  # and a duplicate
    finally:
        server.stop()
    row = subscriber(reader)
    assert row.status == "bounced" and consent_actions(row.id).count("bounced") == 1


def test_only_a_new_opt_in_brings_a_bounced_address_back(site, worker, smtp, inbound):
    [reader] = subscribe(1)
    _, senders = issue_sent_to([reader], smtp)
    send_to_inbound(inbound, senders[reader], delivery_report(senders[reader], reader, "5.1.1"))
    assert subscriber(reader).status == "bounced"
    report = transfer.import_csv(f"email,consent_source\n{reader},paper\n", "again.csv")
    assert report.rows[0].outcome == "skipped" and "bounced" in report.rows[0].reason
    assert subscriber(reader).status == "bounced"

    client = httpx.Client(base_url=site)
    client.post(
        "/subscribers/signup",
        data={"email": reader, "language": "de"},
        headers={"referer": f"{site}/subscribers/signup"},
    )
    assert subscriber(reader).status == "pending"
    confirmation = wait_for(lambda: smtp.to(reader)[-1:] if len(smtp.to(reader)) > 1 else None)
    assert "bestätigen" in confirmation[0].message["Subject"]


def test_feedback_counts_per_issue_through_the_internal_api(site):
    from shared.tokens import service_headers

    response = httpx.get(
        f"{site}/subscribers/internal/issues/7/feedback", headers=service_headers()
    )
    assert response.json() == {
        "hard_bounce": 0,
        "soft_bounce": 0,
        "complaint": 0,
        "unsubscribe": 0,
    }
    assert httpx.get(f"{site}/subscribers/internal/issues/7/feedback").status_code == 403


def test_bounces_from_the_hosted_mailbox(site, worker, smtp, mailbox):
    """KGI_BOUNCE_MAILBOX_URL: reports delivered into a real IMAP mailbox are read,
    applied and removed; a duplicate changes nothing."""
    from services.subscribers.inbound import poll_bounce_mailbox

    readers = subscribe(2)
    _, senders = issue_sent_to(readers, smtp)
    first, second = (
        f"Delivered-To: {senders[reader]}\r\n".encode()
        + delivery_report(senders[reader], reader, "5.1.1")
        for reader in readers
    )
    mailbox.append(first, second)
    result = poll_bounce_mailbox(mailbox.url())
    assert (result.handled, result.failed) == (2, 0)
    assert [subscriber(reader).status for reader in readers] == ["bounced", "bounced"]
    assert mailbox.messages() == []
    # Delivered again (a provider's duplicate): recorded once.
    mailbox.append(first)
    assert poll_bounce_mailbox(mailbox.url()).handled == 1
    assert consent_actions(subscriber(readers[0]).id).count("bounced") == 1
