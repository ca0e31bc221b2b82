"""Logging in: password check with throttling of repeated failures."""

from __future__ import annotations

from shared import ratelimit
from shared.accounts.passwords import verify_password
from shared.accounts.store import User, find_user, record_login
from shared.config import get_settings

#: Window in which failed logins are counted (15 minutes).
LOGIN_FAILURE_WINDOW_SECONDS = 15 * 60


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
