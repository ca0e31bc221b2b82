"""Logging in: passwords hashed with argon2id, the password check with throttling of
repeated failures, and the server-side session a login starts (last section)."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta

import anyio
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared import ratelimit
from shared.accounts.store import User, find_user, record_login, sessions, users
from shared.config import get_settings
from shared.database import engine, read_connection, utcnow

# --------------------------------------------------------------------------------------
# Password hashing with argon2id (argon2-cffi's recommended parameters).
# --------------------------------------------------------------------------------------

_hasher = PasswordHasher()

#: Shortest password accepted for an editor account.
MIN_PASSWORD_LENGTH = 10

# Verified against when the account does not exist, so a wrong address takes as long
# as a wrong password and login timing does not reveal which accounts exist.
_DUMMY_HASH = _hasher.hash("not a real password")


def hash_password(password: str) -> str:
    """The argon2id hash to store for a new password; refuses one that is too short."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"The password needs at least {MIN_PASSWORD_LENGTH} characters.")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> tuple[bool, str | None]:
    """(matches, new hash when the stored one uses outdated parameters)."""
    try:
        _hasher.verify(password_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False, None
    if password_hash is None:
        return False, None
    return True, _hasher.hash(password) if _hasher.check_needs_rehash(password_hash) else None


# --------------------------------------------------------------------------------------
# Checking a login, with throttling of repeated failures.
# --------------------------------------------------------------------------------------

#: Window in which failed logins are counted (15 minutes).
LOGIN_FAILURE_WINDOW_SECONDS = 15 * 60


#: Password checks that run at once in one process. argon2 is built to cost a lot of CPU
#: (~0.3 s); without a cap a flood of logins would take every core and every thread of
#: the threadpool, and the rest of the site would wait behind it. Further logins queue on
#: the event loop, which costs nothing while they wait.
CONCURRENT_PASSWORD_CHECKS = max(1, (os.cpu_count() or 2) // 2)

_password_checks = anyio.CapacityLimiter(CONCURRENT_PASSWORD_CHECKS)


class LoginThrottled(Exception):
    """Too many failed attempts from this client for this account."""


def authenticate(email: str, password: str, ip: str) -> User | None:
    """The user when the password matches; None otherwise. Raises LoginThrottled."""
    key = f"login-fail:{ip}:{email.strip().lower()}"
    if ratelimit.count(key) >= get_settings().login_failures_allowed:
        raise LoginThrottled(key)
    user = find_user(email)
    ok, new_hash = verify_password(user.password_hash if user else None, password)
    if not ok or user is None:
        ratelimit.hit(key, get_settings().login_failures_allowed, LOGIN_FAILURE_WINDOW_SECONDS)
        return None
    ratelimit.clear(key)
    record_login(user.id, new_hash)
    return user


async def authenticate_off_loop(email: str, password: str, ip: str) -> User | None:
    """:func:`authenticate` in a worker thread, at most CONCURRENT_PASSWORD_CHECKS at once."""
    return await anyio.to_thread.run_sync(
        authenticate, email, password, ip, limiter=_password_checks
    )


# --------------------------------------------------------------------------------------
# Server-side login sessions: a session exists while its row exists.
#
# The browser holds only a random token (inside the signed session cookie); the database
# holds its hash, the account and two times. So a logout, a password or role change, or
# the removal of the account ends a session at once on every service, the role is read
# from the accounts table on every request, and a copied cookie is worth nothing after
# logout. Sessions end after an absolute lifetime and after an idle time, whichever
# comes first; both are measured on the server and no response extends the first.
# --------------------------------------------------------------------------------------

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
