"""Bounces and complaints reported by relays over HTTP, signed as Mailgun and SendGrid
sign them, posted to the real site; what they do to subscribers and issues."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from services.subscribers import feedback
from tests.conftest import MAILGUN_TEST_KEY, WEBHOOK_FIXTURES
from tests.test_bounces import consent_actions, issue_sent_to, subscriber
from tests.test_newsletter import subscribe


def mailgun_body(event: dict[str, Any], key: str = MAILGUN_TEST_KEY) -> bytes:
    timestamp, token = str(int(time.time())), "f" * 50
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {
            "signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": event,
        }
    ).encode()


def sendgrid_request(events: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
    key = load_pem_private_key(
        (WEBHOOK_FIXTURES / "sendgrid-test-only-private.pem").read_bytes(), password=None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    body = json.dumps(events).encode()
    timestamp = str(int(time.time()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {
        "content-type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


def test_mailgun_permanent_failure_bounces_and_counts_for_the_issue(site, worker, smtp):
    readers = subscribe(2)
    issue_id, _ = issue_sent_to(readers, smtp)
    message_id = str(smtp.to(readers[0])[-1].message["Message-ID"])
    event = {
        "event": "failed",
        "severity": "permanent",
        "recipient": readers[0],
        "message": {"headers": {"message-id": message_id.strip("<>")}},
        "delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist"},
    }
    body = mailgun_body(event)
    url = f"{site}/subscribers/api/hooks/mailgun"
    forged = mailgun_body(event, key="someone-elses-key")
    refused = httpx.post(url, content=forged, headers={"content-type": "application/json"})
    assert refused.status_code == 403 and "signature" in refused.json()["error"]
    assert subscriber(readers[0]).status == "confirmed"

    for _ in range(2):  # the relay repeats a request: it counts once
        answer = httpx.post(url, content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 200 and answer.json() == {"recorded": 1}
    row = subscriber(readers[0])
    assert row.status == "bounced" and consent_actions(row.id).count("bounced") == 1
    assert feedback.issue_counts(issue_id)["hard_bounce"] == 1
    assert subscriber(readers[1]).status == "confirmed"


def test_sendgrid_spam_report_unsubscribes_and_deferred_only_counts(site, worker, smtp):
    readers = subscribe(2)
    issue_id, _ = issue_sent_to(readers, smtp)
    smtp_id = str(smtp.to(readers[0])[-1].message["Message-ID"])
    body, headers = sendgrid_request(
        [
            {"event": "spamreport", "email": readers[0], "smtp-id": smtp_id},
            {"event": "deferred", "email": readers[1], "response": "451 4.7.1 try later"},
            {"event": "open", "email": readers[1]},
        ]
    )
    url = f"{site}/subscribers/api/hooks/sendgrid"
    answer = httpx.post(url, content=body, headers=headers)
    assert answer.status_code == 200 and answer.json() == {"recorded": 2}
    complained = subscriber(readers[0])
    assert complained.status == "unsubscribed"
    assert consent_actions(complained.id)[-1] == "complaint"
    assert subscriber(readers[1]).status == "confirmed"  # one soft bounce of three
    assert feedback.issue_counts(issue_id)["complaint"] == 1

    tampered = body.replace(b"deferred", b"bounce")
    refused = httpx.post(url, content=tampered, headers=headers)
    assert refused.status_code == 403
    unsigned = httpx.post(url, content=body, headers={"content-type": "application/json"})
    assert unsigned.status_code == 403
