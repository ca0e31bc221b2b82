"""Double opt-in end to end: the real site, a real worker on Redis, a real SMTP server."""

from __future__ import annotations

from datetime import timedelta

import httpx
import sqlalchemy as sa

from services.subscribers import store
from shared.database import engine, utcnow
from tests.conftest import csrf_of, link_in, unsubscribe_uris, wait_for


def signup(
    client: httpx.Client, email: str, name: str = "", language: str = "de"
) -> httpx.Response:
    client.get("/subscribers/signup")
    return client.post(
        "/subscribers/signup",
        data={"email": email, "name": name, "language": language},
        headers={"referer": f"{client.base_url}/subscribers/signup"},
    )


def subscriber(email_key: str) -> store.Subscriber | None:
    with engine("subscribers").connect() as conn:
        return store.find_by_key(conn, email_key)


def events(subscriber_id: int) -> list[store.ConsentEvent]:
    with engine("subscribers").connect() as conn:
        return store.history(conn, subscriber_id)


def test_sign_up_confirm_and_welcome(site, worker, smtp):
    client = httpx.Client(base_url=site, headers={"user-agent": "pytest-browser/1.0"})
    response = signup(client, "Lea.Becker@Example.org", "Lea Becker", "en")
    assert response.status_code == 303
    assert response.headers["location"] == "/subscribers/signup/sent"

    mail = wait_for(lambda: smtp.to("Lea.Becker@example.org"), message="confirmation mail")[0]
    assert mail.message["Subject"] == "Please confirm your subscription to the KGI-Infobrief"
    assert mail.message["Message-ID"] and mail.message["Date"]
    assert mail.message.get_content_type() == "multipart/alternative"
    # Nobody is subscribed yet: a confirmation mail offers no unsubscribe (ignoring it is
    # how one says no), is marked as generated, and goes out with a VERP sender.
    assert "List-Unsubscribe" not in mail.message and "List-Id" not in mail.message
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert mail.message["Feedback-ID"] == "confirmation:confirmation:kgi-infobrief"
    assert mail.mail_from.startswith("bounces+") and mail.mail_from.endswith("@kgi.example.org")
    link = link_in(mail.part("plain"), "/subscribers/confirm/")
    assert link_in(mail.part("html"), "/subscribers/confirm/") == link

    # The worker records the sent mail right after the SMTP server accepted it.
    pending = subscriber("lea.becker@example.org")
    wait_for(lambda: len(events(pending.id)) == 2, message="confirmation_mail in the log")

    # A mail scanner only GETs the link: that must not confirm.
    scanner = httpx.get(link)
    assert scanner.status_code == 200
    assert subscriber("lea.becker@example.org").status == "pending"

    page = client.get(link)
    confirmed = client.post(link, data={"csrf_token": csrf_of(page.text)})
    assert confirmed.status_code == 200
    assert "Thank you" in confirmed.text
    row = subscriber("lea.becker@example.org")
    assert row.status == "confirmed" and row.language == "en" and row.name == "Lea Becker"

    welcome = wait_for(
        lambda: [m for m in smtp.to("Lea.Becker@example.org") if "Welcome" in m.message["Subject"]]
    )
    mailto, one_click = unsubscribe_uris(welcome[0].message)
    assert one_click.startswith(f"{site}/subscribers/unsubscribe/")
    assert mailto and mailto.startswith("mailto:bounces+u")
    assert welcome[0].message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert welcome[0].message["Auto-Submitted"] == "auto-generated"
    # As providers read it: both URIs verbatim on one line, no encoded words, no folding.
    head = welcome[0].raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    [line] = [line for line in head if line.lower().startswith(b"list-unsubscribe:")]
    assert line == f"List-Unsubscribe: <{mailto}>, <{one_click}>".encode()

    log = events(row.id)
    assert [e.action for e in log] == ["signup", "confirmation_mail", "confirmed"]
    assert log[1].detail == f"Message-ID {mail.message['Message-ID']}"
    signup_event = log[0]
    assert signup_event.ip == "127.0.0.1"
    assert signup_event.user_agent == "pytest-browser/1.0"
    assert signup_event.source == f"{site}/subscribers/signup"
    assert signup_event.consent_version

    # Clicking the link again is harmless.
    again = client.post(link, data={"csrf_token": csrf_of(page.text)})
    assert again.status_code == 200
    assert len(events(row.id)) == 3


def test_german_is_the_default_and_english_switchable(site):
    client = httpx.Client(base_url=site)
    german = client.get("/subscribers/signup")
    assert 'lang="de"' in german.text and "KGI-Infobrief abonnieren" in german.text
    english = client.get("/subscribers/signup?lang=en")
    assert 'lang="en"' in english.text and "Subscribe to the KGI-Infobrief" in english.text
    # The choice sticks through the cookie.
    assert 'lang="en"' in client.get("/").text


def test_form_answers_the_same_for_every_kind_of_address(site, worker, smtp):
    client = httpx.Client(base_url=site)
    signup(client, "known@example.org")
    wait_for(lambda: smtp.to("known@example.org"))
    with engine("subscribers").begin() as conn:
        conn.execute(
            store.subscribers.update()
            .where(store.subscribers.c.email_key == "known@example.org")
            .values(status="confirmed")
        )
    answers = []
    for email in ("new@example.org", "known@example.org", "new@example.org"):
        response = signup(client, email)
        answers.append((response.status_code, response.headers.get("location")))
    assert len(set(answers)) == 1
    assert client.get("/subscribers/signup/sent").status_code == 200


def test_repeat_sign_up_resends_only_after_cooldown_and_never_to_confirmed(site, worker, smtp):
    client = httpx.Client(base_url=site)
    signup(client, "repeat@example.org")
    wait_for(lambda: smtp.to("repeat@example.org"))
    signup(client, "repeat@example.org")  # within the cooldown: nothing new
    with engine("subscribers").begin() as conn:
        conn.execute(
            store.subscribers.update()
            .where(store.subscribers.c.email_key == "repeat@example.org")
            .values(requested_at=utcnow() - timedelta(hours=1))
        )
    signup(client, "repeat@example.org")  # after the cooldown: one more
    mails = wait_for(
        lambda: len(smtp.to("repeat@example.org")) == 2 and smtp.to("repeat@example.org")
    )
    # Both links work: the nonce is kept for an outstanding confirmation.
    from shared.tokens import read_token

    payloads = [
        read_token("confirm", link_in(m.part("plain"), "/confirm/").rsplit("/", 1)[1].split("?")[0])
        for m in mails
    ]
    assert payloads[0] == payloads[1]


def test_per_address_daily_cap_stops_mail_bombing(site, worker, smtp, monkeypatch):
    from services.subscribers import optin

    monkeypatch.setattr(optin, "_confirmation_due", lambda subscriber: True)
    client = httpx.Client(base_url=site)
    for _ in range(optin.CONFIRMATIONS_PER_ADDRESS_PER_DAY + 3):
        assert signup(client, "victim@example.org").status_code == 303
    wait_for(lambda: len(smtp.to("victim@example.org")) >= optin.CONFIRMATIONS_PER_ADDRESS_PER_DAY)
    import time

    time.sleep(1)
    assert len(smtp.to("victim@example.org")) == optin.CONFIRMATIONS_PER_ADDRESS_PER_DAY


def test_per_ip_limit_answers_429(site, monkeypatch):
    from shared import config

    limited = config.get_settings().__class__(
        **{**config.get_settings().__dict__, "signups_per_ip_per_hour": 3}
    )
    monkeypatch.setattr(config, "get_settings", lambda: limited)
    from services.subscribers import optin

    monkeypatch.setattr(optin, "get_settings", lambda: limited)
    client = httpx.Client(base_url=site)
    codes = [signup(client, f"p{i}@example.org").status_code for i in range(5)]
    assert codes == [303, 303, 303, 429, 429]
    refused = signup(client, "p9@example.org")
    assert refused.headers["retry-after"] == "3600"
    assert "Too many sign-ups" in refused.text or "Zu viele" in refused.text


def test_honeypot_catches_bots(site, worker, smtp):
    client = httpx.Client(base_url=site)
    response = client.post(
        "/subscribers/signup",
        data={"email": "bot@example.org", "website": "http://spam.example"},
    )
    assert response.status_code == 303
    assert subscriber("bot@example.org") is None


def test_json_api_signs_up_and_documents_itself(site, worker, smtp):
    response = httpx.post(
        f"{site}/subscribers/api/subscriptions", json={"email": "api@example.org", "language": "en"}
    )
    assert response.status_code == 202
    assert response.json()["status"] == "accepted"
    wait_for(lambda: smtp.to("api@example.org"))
    spec = httpx.get(f"{site}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/subscribers/api/subscriptions" in spec["paths"]


def test_confirmation_mail_retries_after_temporary_failure(site, worker, smtp):
    smtp.refuse_next("451 4.3.0 Mailbox temporarily unavailable")
    httpx.post(f"{site}/subscribers/api/subscriptions", json={"email": "later@example.org"})
    mails = wait_for(lambda: smtp.to("later@example.org"), timeout=30, message="retried mail")
    assert len(mails) == 1

    def settled_row():
        # The server has the mail once the final dot is through; the row turns from
        # "committed" to "delivered" a moment later, when the sender reads the 250.
        with engine("subscribers").connect() as conn:
            row = conn.execute(sa.select(store.mail_outbox)).one()
        return row if row.status != "committed" else None

    row = wait_for(settled_row, message="delivered outbox row")
    assert row.status == "delivered" and row.attempts == 2


def test_permanent_failure_is_recorded_not_retried(site, worker, smtp):
    smtp.refuse_next("550 5.1.1 No such user")
    httpx.post(f"{site}/subscribers/api/subscriptions", json={"email": "nobody@example.org"})

    def failed_row():
        with engine("subscribers").connect() as conn:
            row = conn.execute(sa.select(store.mail_outbox)).first()
        return row if row is not None and row.status == "failed" else None

    row = wait_for(failed_row, message="failed outbox row")
    assert "550" in row.error and row.attempts == 1
    assert smtp.to("nobody@example.org") == []
