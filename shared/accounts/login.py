"""Logging in: password check with throttling of repeated failures."""

from __future__ import annotations

import os

import anyio

from shared import ratelimit
from shared.accounts.passwords import verify_password
from shared.accounts.store import User, find_user, record_login
from shared.config import get_settings

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
