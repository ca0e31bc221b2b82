"""``kgi run`` (what ``make run`` starts) on a machine where ports are taken: the site's
port gets a clear message, the mail catcher's moves to a free port it names, and the
embedded default (private Redis, SQLite, mail catcher, worker, scheduler) works."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.conftest import free_port, wait_for


def embedded_environment(data_dir: str, port: int, catcher_port: int) -> dict[str, str]:
    """The environment of someone who typed ``make run``: none of the test suite's
    servers, databases or URLs."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not (name.startswith("KGI_") and name != "KGI_CHROMIUM")
    }
    env.update(
        {
            "KGI_DATA_DIR": data_dir,
            "KGI_PORT": str(port),
            "KGI_MAIL_CATCHER_PORT": str(catcher_port),
        }
    )
    return env


@contextmanager
def occupied(port: int) -> Iterator[None]:
    """Another program listening on ``port``."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        yield


def test_a_taken_site_port_gets_a_clear_message() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as data, occupied(port):
        result = subprocess.run(
            [sys.executable, "-m", "kgi", "run"],
            env=embedded_environment(data, port, free_port()),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert f"Port {port} is taken by another program" in result.stderr
    assert f"KGI_PORT={port + 1} make run" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_taken_mail_catcher_port_moves_and_mail_still_arrives() -> None:
    port, catcher_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as data, occupied(catcher_port):
        process = subprocess.Popen(
            [sys.executable, "-m", "kgi", "run"],
            env=embedded_environment(data, port, catcher_port),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        site = f"http://127.0.0.1:{port}"
        try:

            def up() -> bool:
                try:
                    return httpx.get(f"{site}/").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(up, timeout=60, message="kgi run serving")
            response = httpx.post(
                f"{site}/subscribers/api/subscriptions", json={"email": "neu@example.org"}
            )
            assert response.status_code == 202
            wait_for(
                lambda: "neu@example.org" in httpx.get(f"{site}/dev/mail/").text,
                timeout=60,
                message="confirmation mail in the mail catcher",
            )
        finally:
            # Ctrl-C in a terminal: the whole foreground group gets SIGINT.
            os.killpg(process.pid, signal.SIGINT)
            stdout, stderr = process.communicate(timeout=60)
    assert f"Port {catcher_port} is taken by another program" in stdout
    # It says what it started.
    # The worker takes a process per core, at most an issue's senders (4 by default).
    processes = min(len(os.sched_getaffinity(0)), 4)
    worker = f"worker ({processes} process{'es' if processes > 1 else ''}, 8 threads each)"
    assert f"Started: web site (1 process), {worker}, scheduler" in stdout
    assert "private Redis, mail catcher" in stdout
    assert "alembic" not in stderr  # no INFO lines from the migrations' library
    assert "Traceback" not in stderr
