"""Server-side login sessions: a session exists while its row exists.

The browser holds only a random token (inside the signed session cookie); the database
holds its hash, the account and two times. So a logout, a password or role change, or
the removal of the account ends a session at once on every service, the role is read
from the accounts table on every request, and a copied cookie is worth nothing after
logout. Sessions end after an absolute lifetime and after an idle time, whichever
comes first; both are measured on the server and no response extends the first.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from shared.accounts.store import sessions, users
from shared.database import engine, read_connection, utcnow

#: A session ends 12 hours after login however busy it is: a working day, not a week
#: on a shared office computer.
SESSION_LIFETIME = timedelta(hours=12)

#: A session also ends after 2 hours without a request (a forgotten open tab).
SESSION_IDLE_TIMEOUT = timedelta(hours=2)

#: ``last_seen_at`` is written at most this often, so browsing costs reads, not writes.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class SessionUser:
    """The account behind a live session, as read from the database just now."""

    id: int
    email: str
    role: str

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "email": self.email, "role": self.role}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def start_session(user_id: int) -> str:
    """A new session for the account; returns the token for the cookie."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with engine("accounts").begin() as conn:
        conn.execute(
            sessions.insert().values(
                token_hash=_hash(token), user_id=user_id, created_at=now, last_seen_at=now
            )
        )
    return token


def resolve_session(token: str) -> SessionUser | None:
    """The account of a live session; None (and the row removed) when it has ended."""
    now = utcnow()
    key = _hash(token)
    with read_connection("accounts") as conn:
        row = conn.execute(
            sa.select(
                users.c.id,
                users.c.email,
                users.c.role,
                sessions.c.created_at,
                sessions.c.last_seen_at,
            )
            .join(users, users.c.id == sessions.c.user_id)
            .where(sessions.c.token_hash == key)
        ).first()
    if row is None:
        return None
    if now - row.created_at > SESSION_LIFETIME or now - row.last_seen_at > SESSION_IDLE_TIMEOUT:
        end_session(token)
        return None
    if now - row.last_seen_at > LAST_SEEN_RESOLUTION:
        with engine("accounts").begin() as conn:
            conn.execute(
                sessions.update().where(sessions.c.token_hash == key).values(last_seen_at=now)
            )
    return SessionUser(id=row.id, email=row.email, role=row.role)


def end_session(token: str) -> None:
    """End one session (logout)."""
    with engine("accounts").begin() as conn:
        conn.execute(sessions.delete().where(sessions.c.token_hash == _hash(token)))


def purge_ended_sessions() -> int:
    """Delete the rows of sessions past their lifetime or idle time; returns how many."""
    now = utcnow()
    with engine("accounts").begin() as conn:
        result = conn.execute(
            sessions.delete().where(
                sa.or_(
                    sessions.c.created_at < now - SESSION_LIFETIME,
                    sessions.c.last_seen_at < now - SESSION_IDLE_TIMEOUT,
                )
            )
        )
    return result.rowcount or 0
