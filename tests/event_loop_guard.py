"""Detects blocking calls made on the web server's event loop.

An ``async def`` endpoint that calls the database, Redis, argon2 or SMTP directly stalls
every other request of that process for as long as the call takes (finding 5 of the
boundary audit: a login flood pushed the sign-up page from 35 ms to seconds). Timing
tests would be flaky; instead each blocking entry point is wrapped so that it records
a violation whenever it runs in a thread with a running asyncio loop. Work moved to
the threadpool (``run_in_threadpool``) runs without a loop and passes.
"""

from __future__ import annotations

import asyncio
import functools
import smtplib
import threading
import traceback
from collections.abc import Callable
from typing import Any

#: Violations seen so far: (what, where) pairs; the per-test fixture reads and clears it.
violations: list[tuple[str, str]] = []
_lock = threading.Lock()


def _on_event_loop() -> bool:
    # The web server's loop runs in its own thread; the main thread may hold a loop of
    # the test's own (Playwright's sync API runs one), and that is not the server's.
    if threading.current_thread() is threading.main_thread():
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _record(what: str) -> None:
    if not _on_event_loop():
        return
    # The innermost frame of the project's own code says which endpoint blocked.
    frames = [
        f"{frame.filename.rsplit('/', 2)[-2]}/{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"
        for frame in traceback.extract_stack()
        if "/site-packages/" not in frame.filename
        and "/tests/" not in frame.filename
        and "/lib/python" not in frame.filename
    ]
    with _lock:
        violations.append((what, " <- ".join(reversed(frames[-4:]))))


def _guard(owner: Any, name: str, what: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _record(what)
        return original(*args, **kwargs)

    setattr(owner, name, guarded)


def install() -> None:
    """Wrap the blocking entry points of SQLAlchemy, Redis, argon2 and smtplib."""
    import argon2
    import redis.connection
    import sqlalchemy as sa
    from sqlalchemy.engine import Engine

    sa.event.listen(Engine, "before_cursor_execute", lambda *a, **k: _record("SQL query"))
    _guard(redis.connection.AbstractConnection, "send_packed_command", "Redis command")
    _guard(argon2.PasswordHasher, "verify", "argon2 verify")
    _guard(argon2.PasswordHasher, "hash", "argon2 hash")
    _guard(smtplib.SMTP, "connect", "SMTP connect")


def take() -> list[tuple[str, str]]:
    """The violations since the last call, then forget them."""
    with _lock:
        seen = list(violations)
        violations.clear()
    return seen
