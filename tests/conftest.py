"""Real parts for every test: a redis-server, an SMTP server, the site on a loopback port.

They start in ``pytest_configure``, before any project module is imported, because the
settings are read once per process from the environment; the broker is set up there too,
right after, as every entry point of the platform sets it up when it starts.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import event_loop_guard
from tests.postgres_server import PostgresServer
from tests.smtp_server import RecordingSMTPServer
from tests.tile_server import TileServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Environment:
    """Handles to the real servers the suite runs against."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="kgi-tests-"))
        self.redis: Any = None
        self.smtp = RecordingSMTPServer()
        self.web_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        self.server: Any = None
        self.postgres: PostgresServer | None = None
        #: The members' map's tiles come from here (KGI_MAP_TILES_URL).
        self.tiles = TileServer()


ENV = Environment()

#: ``KGI_TEST_DATABASE=postgresql`` runs the suite with every service's database on a
#: throwaway PostgreSQL cluster instead of SQLite files.
TEST_DATABASE = os.environ.get("KGI_TEST_DATABASE", "sqlite")

#: Test-only keys of the relays' webhooks: the SendGrid pair lives under fixtures.
WEBHOOK_FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
MAILGUN_TEST_KEY = "test-only-mailgun-signing-key"


def pytest_configure(config: pytest.Config) -> None:
    from shared.redis_server import RedisServer

    event_loop_guard.install()

    ENV.redis = RedisServer(ENV.root / "redis", port=free_port()).start()
    ENV.smtp.start()
    ENV.tiles.start()
    os.environ.update(
        {
            "KGI_MAP_TILES_URL": ENV.tiles.url_template,
            "KGI_DATA_DIR": str(ENV.root / "data"),
            "KGI_REDIS_URL": ENV.redis.url,
            "KGI_SMTP_URL": f"smtp://127.0.0.1:{ENV.smtp.port}",
            "KGI_BASE_URL": ENV.base_url,
            "KGI_SECRET_KEY": "test-secret-key-not-for-production",
            "KGI_MAIL_FROM": "KGI-Infobrief <infobrief@kgi.example.org>",
            "KGI_SIGNUPS_PER_IP_PER_HOUR": "1000",
            # The partner sites the tests serve live on loopback; nothing else internal.
            "KGI_FETCH_ALLOW_HOSTS": "127.0.0.1",
            # Claimed rows of a killed sender return after 3 s instead of 2 minutes.
            "KGI_NEWSLETTER_LEASE_SECONDS": "3",
            "KGI_NEWSLETTER_SENDERS": "2",
            # Mail comes back to tagged addresses of this one (VERP, mailto unsubscribe).
            "KGI_BOUNCE_ADDRESS": "bounces@kgi.example.org",
            "KGI_POSTAL_ADDRESS": "Musterstraße 1, 10115 Berlin",
            # Relay webhooks, verified with test-only keys (tests/fixtures/webhooks).
            "KGI_MAILGUN_WEBHOOK_KEY": MAILGUN_TEST_KEY,
            "KGI_SENDGRID_WEBHOOK_KEY": (WEBHOOK_FIXTURES / "sendgrid-test-only-public.b64")
            .read_text()
            .strip(),
        }
    )
    from kgi import registry

    if TEST_DATABASE == "postgresql":
        ENV.postgres = PostgresServer(free_port()).start()
        for owner in registry.database_owners():
            os.environ[f"KGI_{owner.upper()}_DATABASE_URL"] = ENV.postgres.create_database(owner)
    registry.migrate_all()
    registry.setup()


def pytest_unconfigure(config: pytest.Config) -> None:
    if ENV.server is not None:
        ENV.server.should_exit = True
    ENV.smtp.stop()
    ENV.tiles.stop()
    if ENV.redis is not None:
        ENV.redis.stop()
    if ENV.postgres is not None:
        ENV.postgres.stop()
    shutil.rmtree(ENV.root, ignore_errors=True)


@pytest.fixture(scope="session")
def site() -> str:
    """The combined site served by uvicorn on a loopback port; returns its base URL."""
    import uvicorn

    from kgi.site import create_site

    config = uvicorn.Config(create_site(), host="127.0.0.1", port=ENV.web_port, log_level="warning")
    server = uvicorn.Server(config)
    ENV.server = server
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test web server did not start")
        time.sleep(0.02)
    return ENV.base_url


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    """Every test starts with empty tables, no rate-limit counters and no captured mail."""
    from kgi import registry
    from services.feeds import cache as feed_cache
    from services.feeds.calendar_feed import forget_series_dates
    from shared.database import engine
    from shared.redis_client import get_redis

    ENV.smtp.reset()
    get_redis().flushdb()
    for owner in registry.database_owners():
        with engine(owner).begin() as conn:
            for table in reversed(registry.declared_tables(owner).sorted_tables):
                conn.execute(table.delete())
    feed_cache.RENDERINGS.clear()
    forget_series_dates()
    event_loop_guard.take()
    yield
    blocked = event_loop_guard.take()
    assert not blocked, "blocking calls on the event loop:\n" + "\n".join(
        f"  {what} at {where}" for what, where in sorted(set(blocked))
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster for the tests that run on both databases (the
    suite's own when it runs on PostgreSQL)."""
    if ENV.postgres is not None:
        yield ENV.postgres
        return
    server = PostgresServer(free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def smtp() -> RecordingSMTPServer:
    return ENV.smtp


@pytest.fixture
def worker() -> Iterator[Any]:
    """A Dramatiq worker on the real Redis broker, in this process."""
    import dramatiq

    from kgi import registry

    # Set up in pytest_configure already; this returns the same broker, actors declared.
    broker = registry.setup()
    running = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    running.start()
    yield running
    running.stop()
    # Worker.start adds a middleware to the broker that stop does not take away.
    broker.middleware[:] = [
        m for m in broker.middleware if getattr(m, "worker", None) is not running
    ]


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Any]:
    """A real IMAP server (Debian's dovecot, unprivileged, on loopback) for the suite."""
    from tests import dovecot_server

    if not dovecot_server.available():
        pytest.skip(
            f"{dovecot_server.DOVECOT} is missing: install Debian's dovecot-imapd "
            "(sh scripts/install-test-tools.sh)"
        )
    server = dovecot_server.DovecotServer().start()
    yield server
    server.stop()


@pytest.fixture
def mailbox(dovecot: Any) -> Iterator[Any]:
    """The dovecot server with an empty INBOX and no other folders."""
    dovecot.empty()
    start = len(dovecot.log())
    yield dovecot
    # pytest shows a test's captured output only when it failed.
    print(f"--- dovecot log during the test ---\n{dovecot.log()[start:]}")


@pytest.fixture
def partner() -> Iterator[Any]:
    """A real HTTP server on loopback playing partner websites."""
    from tests.partner_server import PartnerServer

    server = PartnerServer().start()
    yield server
    server.stop()


@pytest.fixture
def environment() -> Environment:
    return ENV


def wait_for(condition: Callable[[], Any], timeout: float = 15, message: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.05)


def link_in(text: str, path: str) -> str:
    """The first absolute URL in ``text`` whose path starts with ``path``."""
    match = re.search(rf"https?://[^\s\"<>]+{re.escape(path)}[^\s\"<>]*", text)
    assert match, f"no {path} link in mail:\n{text}"
    return match.group(0)


def unsubscribe_uris(message: Any) -> tuple[str | None, str]:
    """(mailto URI or None, one-click https URI) of a mail's List-Unsubscribe header."""
    uris = re.findall(r"<([^<>]+)>", str(message["List-Unsubscribe"]))
    assert uris and uris[-1].startswith("http"), message["List-Unsubscribe"]
    mailto = uris[0] if len(uris) == 2 and uris[0].startswith("mailto:") else None
    assert len(uris) == (2 if mailto else 1), uris
    return mailto, uris[-1]


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def run_kgi(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kgi", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
        check=False,
    )


def login(site: str, email: str = "editor@example.org", role: str = "admin") -> Any:
    """An httpx client logged in as a new account with ``role``.

    The account is made in this process, as ``kgi users add`` makes it (that command is
    tested by itself in test_sessions.py): a ``kgi`` subprocess per login cost two
    seconds of imports, and most tests log in twice."""
    import httpx

    from shared.accounts.login import hash_password
    from shared.accounts.store import save_user

    save_user(email, hash_password("correct horse battery"), role)
    client = httpx.Client(base_url=site)
    page = client.get("/login")
    response = client.post(
        "/login",
        data={
            "email": email,
            "password": "correct horse battery",
            "csrf_token": csrf_of(page.text),
            "next": "/subscribers/admin/",
        },
    )
    assert response.status_code == 303 and response.headers["location"] == "/subscribers/admin/"
    return client


def start_worker_process() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "kgi", "worker", "--processes", "1", "--threads", "2"],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker and its forked children: no chance to clean up."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@pytest.fixture
def worker_processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            kill(process)
