"""Links in mails: one-click unsubscribe (RFC 8058), preferences, data export, erasure;
and bad input on every door: clear 4xx answers, never a 500."""

from __future__ import annotations

import time

import httpx
import pytest
from itsdangerous import TimestampSigner

from services.subscribers import transfer
from tests.conftest import csrf_of, link_in, login, unsubscribe_uris, wait_for
from tests.test_signup_flow import events, signup, subscriber


def confirmed_subscriber(site: str, smtp, email: str) -> tuple[httpx.Client, object]:
    """Sign ``email`` up and confirm it through the real link; returns the welcome mail."""
    client = httpx.Client(base_url=site)
    signup(client, email, "Kim")
    mail = wait_for(lambda: smtp.to(email))[0]
    link = link_in(mail.part("plain"), "/subscribers/confirm/")
    pending = subscriber(email)
    wait_for(lambda: len(events(pending.id)) == 2, message="confirmation_mail in the log")
    client.post(link, data={"csrf_token": csrf_of(client.get(link).text)})
    welcome = wait_for(lambda: [m for m in smtp.to(email) if "Willkommen" in m.message["Subject"]])[
        0
    ]
    return client, welcome


def test_one_click_unsubscribe_per_rfc_8058(site, worker, smtp):
    _, welcome = confirmed_subscriber(site, smtp, "oneclick@example.org")
    _, uri = unsubscribe_uris(welcome.message)
    assert uri.startswith(site)
    # The mail provider's POST: no cookie, no CSRF token, no redirect.
    response = httpx.post(
        uri,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code == 200
    row = subscriber("oneclick@example.org")
    assert row.status == "unsubscribed"
    assert [e.action for e in events(row.id)][-1] == "unsubscribed"
    # Repeating it changes nothing.
    assert httpx.post(uri, content=b"List-Unsubscribe=One-Click").status_code == 200
    assert [e.action for e in events(row.id)].count("unsubscribed") == 1


def test_unsubscribe_link_asks_before_acting(site, worker, smtp):
    _, welcome = confirmed_subscriber(site, smtp, "asks@example.org")
    link = link_in(welcome.part("plain"), "/subscribers/unsubscribe/")
    page = httpx.get(link)
    assert page.status_code == 200 and "<form" in page.text
    assert subscriber("asks@example.org").status == "confirmed"
    httpx.post(link, data={})
    assert subscriber("asks@example.org").status == "unsubscribed"


def test_old_confirmation_link_does_not_resubscribe_after_unsubscribe(site, worker, smtp):
    client = httpx.Client(base_url=site)
    signup(client, "changed.mind@example.org")
    mail = wait_for(lambda: smtp.to("changed.mind@example.org"))[0]
    confirm_link = link_in(mail.part("plain"), "/subscribers/confirm/")
    unsubscribe_link = link_in(mail.part("plain"), "/subscribers/unsubscribe/")
    httpx.post(unsubscribe_link, data={})
    response = client.get(confirm_link)
    assert response.status_code == 410
    assert subscriber("changed.mind@example.org").status == "unsubscribed"


def test_preferences_change_name_and_language(site, worker, smtp):
    client, welcome = confirmed_subscriber(site, smtp, "prefs@example.org")
    link = link_in(welcome.part("plain"), "/subscribers/preferences/")
    page = client.get(link)
    assert page.status_code == 200
    saved = client.post(
        link, data={"name": "Kim Weber", "language": "en", "csrf_token": csrf_of(page.text)}
    )
    assert saved.status_code == 200
    row = subscriber("prefs@example.org")
    assert (row.name, row.language) == ("Kim Weber", "en")
    assert events(row.id)[-1].action == "preferences"
    bad = client.post(
        link, data={"name": "x\r\nBcc: a@b.c", "language": "en", "csrf_token": csrf_of(page.text)}
    )
    assert bad.status_code == 422


def test_export_and_erase_then_import_does_not_resubscribe(site, worker, smtp):
    client, welcome = confirmed_subscriber(site, smtp, "forget.me@example.org")
    prefs = link_in(welcome.part("plain"), "/subscribers/preferences/")
    token = prefs.rsplit("/", 1)[1].split("?")[0]
    data = client.get(f"/subscribers/privacy/{token}/export").json()
    assert data["subscriber"]["email"] == "forget.me@example.org"
    assert [e["action"] for e in data["consent_log"]] == [
        "signup",
        "confirmation_mail",
        "confirmed",
    ]
    assert data["consent_log"][0]["ip"] == "127.0.0.1"
    # The log says where consent came from, without the secret links' tokens.
    assert data["consent_log"][2]["source"] == "confirmation link"
    confirmation = smtp.to("forget.me@example.org")[0].part("plain")
    confirm_token = link_in(confirmation, "/subscribers/confirm/").rsplit("/", 1)[1]
    assert not any(
        secret in (event["source"] or "")
        for event in data["consent_log"]
        for secret in (token, confirm_token)
    )

    page = client.get(prefs)
    refused = client.post(
        f"/subscribers/privacy/{token}/erase", data={"csrf_token": csrf_of(page.text)}
    )
    assert refused.status_code == 422 and subscriber("forget.me@example.org") is not None
    erased = client.post(
        f"/subscribers/privacy/{token}/erase",
        data={"csrf_token": csrf_of(page.text), "confirm": "yes"},
    )
    assert erased.status_code == 200
    assert subscriber("forget.me@example.org") is None
    assert client.get(f"/subscribers/privacy/{token}/export").status_code == 410

    report = transfer.import_csv(
        "email,name,consent_source\nforget.me@example.org,F,paper form\n",
        "legacy.csv",
    )
    assert report.rows[0].outcome == "skipped" and "erased" in report.rows[0].reason
    assert subscriber("forget.me@example.org") is None


@pytest.mark.parametrize(
    "email",
    [
        "not-an-email",
        "a@b",
        "x" * 300 + "@example.org",
        "evil@example.org\r\nBcc: victim@example.org",
        "",
    ],
)
def test_bad_addresses_get_a_clear_422(site, email):
    client = httpx.Client(base_url=site)
    response = client.post("/subscribers/signup", data={"email": email})
    assert response.status_code == 422
    assert 'aria-invalid="true"' in response.text
    api = httpx.post(f"{site}/subscribers/api/subscriptions", json={"email": email})
    assert api.status_code == 422 and api.json()["field"] == "email"


def test_header_injection_in_name_is_refused(site):
    api = httpx.post(
        f"{site}/subscribers/api/subscriptions",
        json={"email": "ok@example.org", "name": "Eve\r\nBcc: everyone@example.org"},
    )
    assert api.status_code == 422 and api.json()["field"] == "name"
    assert subscriber("ok@example.org") is None


def test_wrong_content_type_oversized_body_and_broken_json(site):
    url = f"{site}/subscribers/api/subscriptions"
    assert httpx.post(url, data={"email": "a@example.org"}).status_code == 415
    assert httpx.post(url, json={"email": "a@example.org", "name": "x" * 20000}).status_code == 413
    broken = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "JSON" in broken.json()["error"]
    assert httpx.post(url, json=["a@example.org"]).status_code == 400
    form = httpx.post(
        f"{site}/subscribers/signup", content=b"email=a", headers={"content-type": "text/plain"}
    )
    assert form.status_code == 415


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "cross-site"},
        # Another port or subdomain is another origin, though the same site.
        {"sec-fetch-site": "same-site"},
        # Browsers from before Fetch Metadata send only Origin with a form.
        {"origin": "https://evil.example"},
        {"origin": "null"},
        # Sec-Fetch-Site decides when both are there.
        {"sec-fetch-site": "cross-site", "origin": "SITE"},
    ],
)
def test_public_form_sent_from_another_site_is_refused(site, headers):
    headers = {name: value.replace("SITE", site) for name, value in headers.items()}
    response = httpx.post(
        f"{site}/subscribers/signup", data={"email": "csrf@example.org"}, headers=headers
    )
    assert response.status_code == 403
    assert "another site" in response.text or "anderen Website" in response.text
    assert subscriber("csrf@example.org") is None


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("same-origin", {"sec-fetch-site": "same-origin"}),
        ("typed", {"sec-fetch-site": "none"}),
        ("origin", {"origin": "SITE"}),
        ("script", {}),
    ],
)
def test_public_form_of_this_site_needs_no_token(site, case, headers):
    """The sign-up carries no token: its page is the same for every visitor (and kept).
    A request with no browser's header at all is a script's, which could send anything."""
    headers = {name: value.replace("SITE", site) for name, value in headers.items()}
    email = f"same.origin.{case}@example.org"
    response = httpx.post(f"{site}/subscribers/signup", data={"email": email}, headers=headers)
    assert response.status_code == 303
    assert subscriber(email).status == "pending"


def test_sign_up_page_is_the_same_for_everyone_and_starts_no_session(site):
    pages = [httpx.get(f"{site}/subscribers/signup") for _ in range(3)]
    assert {page.status_code for page in pages} == {200}
    assert len({page.text for page in pages}) == 1
    assert not any("set-cookie" in page.headers for page in pages)
    assert "csrf_token" not in pages[0].text


def test_session_forms_still_need_their_token(site):
    editor = login(site, "token.editor@example.org", role="editor")
    response = editor.post("/news/admin/new", data={"title": "Ohne Token"})
    assert response.status_code == 403
    response = editor.post(
        "/news/admin/new",
        data={"title": "Ohne Token"},
        headers={"sec-fetch-site": "same-origin"},
    )
    assert response.status_code == 403


def test_tampered_and_expired_tokens(site, worker, smtp, monkeypatch):
    client = httpx.Client(base_url=site)
    signup(client, "tokens@example.org")
    link = link_in(
        wait_for(lambda: smtp.to("tokens@example.org"))[0].part("plain"), "/subscribers/confirm/"
    )
    bare = link.split("?")[0]
    tampered = bare[:-3] + ("AAA" if not bare.endswith("AAA") else "BBB")
    assert client.get(tampered).status_code == 400
    assert client.get(link.rsplit("/", 1)[0] + "/garbage").status_code == 400
    assert client.get(f"{site}/subscribers/unsubscribe/garbage").status_code == 400
    assert client.get(f"{site}/subscribers/preferences/garbage").status_code == 400

    from services.subscribers import optin
    from shared.database import engine

    with engine("subscribers").connect() as conn:
        from services.subscribers import store

        row = store.find_by_key(conn, "tokens@example.org")
    monkeypatch.setattr(
        TimestampSigner, "get_timestamp", lambda self: int(time.time()) - 30 * 86400
    )
    expired = optin.confirmation_url(row)
    monkeypatch.undo()
    response = client.get(expired)
    assert response.status_code == 410
    assert "expired" in response.text or "abgelaufen" in response.text
    assert httpx.get(expired, headers={"accept": "application/json"}).json()["status"] == 410


def test_unknown_pages_are_404_pages(site):
    response = httpx.get(f"{site}/subscribers/nothing-here")
    assert response.status_code == 404 and "<h1>" in response.text


def test_purge_removes_expired_unconfirmed_sign_ups(site, worker, smtp):

    from datetime import timedelta

    from services.subscribers import optin, store
    from shared.database import engine, utcnow

    client = httpx.Client(base_url=site)
    signup(client, "stale@example.org")
    signup(client, "fresh@example.org")
    with engine("subscribers").begin() as conn:
        conn.execute(
            store.subscribers.update()
            .where(store.subscribers.c.email_key == "stale@example.org")
            .values(requested_at=utcnow() - timedelta(days=30))
        )
    assert optin.purge_expired_pending() == 1
    assert subscriber("stale@example.org") is None
    assert subscriber("fresh@example.org").status == "pending"


# --- hostile input that used to end in a 500 (each found by tests/test_sweep_routes.py) --


def test_non_ascii_csrf_token_is_refused_not_a_crash(site):
    client = httpx.Client(base_url=site)
    client.get("/login")  # a session with a token
    response = client.post(
        "/login",
        content=b"email=a%40example.org&password=x&csrf_token=%C3%A4",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 403


def test_deep_json_huge_numbers_and_lone_surrogates_are_400(site):
    url = f"{site}/subscribers/api/subscriptions"
    json_type = {"content-type": "application/json"}
    deep = httpx.post(url, content=b"[" * 5000 + b"]" * 5000, headers=json_type)
    assert deep.status_code == 400 and "nested too deeply" in deep.json()["error"]
    huge = httpx.post(url, content=b'{"email": ' + b"9" * 5000 + b"}", headers=json_type)
    assert huge.status_code == 400
    for body in (
        b'{"email": "lone@example.org", "name": "Kim \\ud800"}',
        b'{"email": "lone@example.org", "source": "\\udfff"}',
    ):
        lone = httpx.post(url, content=body, headers=json_type)
        assert lone.status_code == 400 and "Unicode" in lone.json()["error"]
    assert subscriber("lone@example.org") is None


def test_internal_api_refuses_non_ascii_tokens_and_bad_ids(site):
    from shared.tokens import service_headers

    audience = f"{site}/subscribers/internal/audience"
    for token in ("Bearer ä".encode("latin-1"), "Bearer ❤".encode()):
        refused = httpx.get(audience, headers={"authorization": token})
        assert refused.status_code == 403 and refused.json()["status"] == 403
    assert (
        httpx.get(audience, params={"language": "xx"}, headers=service_headers()).status_code == 422
    )
    confirmed = f"{site}/subscribers/internal/confirmed"
    for ids in (5, "1,2", [10**30], [True], [0], list(range(1, 1100))):
        answer = httpx.post(confirmed, json={"ids": ids}, headers=service_headers())
        assert answer.status_code == 422 and answer.json()["field"] == "ids", ids
    assert httpx.post(confirmed, json={"ids": [1]}, headers=service_headers()).json() == {
        "confirmed": []
    }


#: Ids no row can have and pages past the end: the ordinary 404 page, never an overflow.
OUT_OF_RANGE = [
    "/subscribers/admin/999999999999999999999999999999",
    "/subscribers/admin/9223372036854775808",
    "/subscribers/admin/0",
    "/subscribers/admin/-1",
    "/newsletter/admin/999999999999999999999999999999",
    "/newsletter/admin/9223372036854775808/preview.html",
    "/newsletter/archive/999999999999999999999999999999",
    "/subscribers/admin/?page=999999999999999999999999999999",
    "/subscribers/admin/?page=-3",
    "/subscribers/admin/?page=2",
]


def test_ids_and_pages_out_of_range_are_404(site):
    admin = login(site, "range.admin@example.org")
    answers = {path: admin.get(path) for path in OUT_OF_RANGE}
    assert {path: r.status_code for path, r in answers.items()} == dict.fromkeys(OUT_OF_RANGE, 404)
    assert all("<h1>" in r.text for r in answers.values())
