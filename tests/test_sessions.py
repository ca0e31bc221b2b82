"""Server-side sessions: logout, password and role changes and account removal end a
session at once; the role is read per request; lifetime and idle time are enforced."""

from __future__ import annotations

from datetime import timedelta

import httpx
import sqlalchemy as sa

from shared.accounts.login import SESSION_IDLE_TIMEOUT, SESSION_LIFETIME
from shared.accounts.store import sessions, users
from shared.database import engine, utcnow
from shared.web.sessions import SESSION_COOKIE
from tests.conftest import csrf_of, login, run_kgi

ADMIN_ONLY = "/subscribers/admin/import"


def _copy(client: httpx.Client, site: str) -> httpx.Client:
    """A second browser holding a copy of ``client``'s session cookie."""
    thief = httpx.Client(base_url=site)
    thief.cookies.set(SESSION_COOKIE, client.cookies[SESSION_COOKIE])
    return thief


def _second_browser(site: str, email: str) -> httpx.Client:
    """Log in to an existing account from another browser."""
    client = httpx.Client(base_url=site)
    page = client.get("/login")
    response = client.post(
        "/login",
        data={
            "email": email,
            "password": "correct horse battery",
            "csrf_token": csrf_of(page.text),
        },
    )
    assert response.status_code == 303
    return client


def _logged_in(client: httpx.Client) -> bool:
    response = client.get("/admin")
    return response.status_code == 200


def test_copied_cookie_is_worthless_after_logout(site: str) -> None:
    client = login(site, "alice@example.org", "admin")
    thief = _copy(client, site)
    assert _logged_in(thief)
    page = client.get("/admin")
    response = client.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert response.status_code == 303
    assert not _logged_in(client)
    response = thief.get("/admin")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    with engine("accounts").connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sessions)).scalar() == 0


def test_password_change_ends_every_session(site: str) -> None:
    client = login(site, "bob@example.org", "admin")
    other = _second_browser(site, "bob@example.org")
    assert _logged_in(client) and _logged_in(other)
    result = run_kgi(
        "users", "add", "bob@example.org", "--role", "admin", "--password-stdin",
        stdin="a brand new password\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not _logged_in(client)
    assert not _logged_in(other)


def test_role_change_ends_the_session_and_the_old_role(site: str) -> None:
    client = login(site, "carol@example.org", "admin")
    assert client.get(ADMIN_ONLY).status_code == 200
    result = run_kgi(
        "users", "add", "carol@example.org", "--role", "editor", "--password-stdin",
        stdin="correct horse battery\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    response = client.get(ADMIN_ONLY)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_role_is_read_from_the_database_on_every_request(site: str) -> None:
    client = login(site, "dave@example.org", "admin")
    assert client.get(ADMIN_ONLY).status_code == 200
    # Even a change made behind the application's back takes effect on the next request.
    with engine("accounts").begin() as conn:
        conn.execute(
            users.update().where(users.c.email == "dave@example.org").values(role="editor")
        )
    assert client.get(ADMIN_ONLY).status_code == 403
    assert _logged_in(client)


def test_account_removal_ends_its_sessions(site: str) -> None:
    client = login(site, "erin@example.org", "editor")
    assert _logged_in(client)
    result = run_kgi("users", "remove", "erin@example.org")
    assert result.returncode == 0, result.stderr
    assert not _logged_in(client)
    assert run_kgi("users", "remove", "erin@example.org").returncode == 1


def _age_sessions(**values: object) -> None:
    with engine("accounts").begin() as conn:
        conn.execute(sessions.update().values(**values))


def test_absolute_lifetime_is_not_extended_by_activity(site: str) -> None:
    client = login(site, "frank@example.org", "editor")
    now = utcnow()
    # Busy all day: seen a minute ago, but logged in longer ago than the lifetime.
    _age_sessions(created_at=now - SESSION_LIFETIME - timedelta(minutes=1), last_seen_at=now)
    assert not _logged_in(client)


def test_idle_timeout(site: str) -> None:
    client = login(site, "grace@example.org", "editor")
    now = utcnow()
    _age_sessions(
        created_at=now - timedelta(hours=3),
        last_seen_at=now - SESSION_IDLE_TIMEOUT - timedelta(minutes=1),
    )
    assert not _logged_in(client)


def test_activity_keeps_an_idle_session_alive(site: str) -> None:
    client = login(site, "heidi@example.org", "editor")
    now = utcnow()
    _age_sessions(created_at=now - timedelta(hours=3), last_seen_at=now - timedelta(hours=1))
    assert _logged_in(client)
    with engine("accounts").connect() as conn:
        seen = conn.execute(sa.select(sessions.c.last_seen_at)).scalar_one()
    assert utcnow() - seen < timedelta(minutes=1)


def test_cookie_does_not_carry_the_role(site: str) -> None:
    # The signed cookie is readable by its holder (itsdangerous signs, it does not
    # encrypt): it must hold nothing but an opaque token and the CSRF token.
    import base64
    import json

    client = login(site, "ivan@example.org", "admin")
    payload = client.cookies[SESSION_COOKIE].split(".")[0]
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert set(data) <= {"sid", "csrf"}
    assert "admin" not in json.dumps(data) and "ivan" not in json.dumps(data)
