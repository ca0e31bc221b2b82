"""A throwaway PostgreSQL cluster for the tests: Debian's server, started and removed here.

The cluster lives in a temporary folder, listens on a loopback port of its own and trusts
local connections (nothing else can reach it). PostgreSQL refuses to run as root, so when
the tests run as root (CI) the cluster is run as the ``postgres`` user the Debian package
creates. Durability is switched off: a test database needs no crash safety, and fsync
would dominate the time of every commit.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import sqlalchemy as sa

#: The superuser the cluster is created with (the tests connect as it).
SUPERUSER = "kgi"


class PostgresUnavailable(RuntimeError):
    """Debian's PostgreSQL server is not installed (scripts/install-test-tools.sh installs it)."""


def server_binaries() -> Path:
    """The folder of the newest installed server's programs (initdb, pg_ctl)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise PostgresUnavailable(
            "PostgreSQL is not installed; run scripts/install-test-tools.sh as root"
        )
    return Path(found[-1]).parent


class PostgresServer:
    """One cluster: :meth:`start`, :meth:`create_database` as often as needed, :meth:`stop`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bin = server_binaries()
        self.root = Path(tempfile.mkdtemp(prefix="kgi-postgres-"))
        self.data = self.root / "data"
        self._count = 0
        self._admin: sa.Engine | None = None
        # As root, hand the folder to the package's unprivileged user and run as it.
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user is not None:
            account = pwd.getpwnam(self.user)
            os.chown(self.root, account.pw_uid, account.pw_gid)

    def _command(self, *argv: str) -> list[str]:
        """``argv``, run as the cluster's user."""
        return ["runuser", "-u", self.user, "--", *argv] if self.user else list(argv)

    def _run(self, *argv: str) -> None:
        subprocess.run(self._command(*argv), check=True, capture_output=True, cwd=self.root)

    def start(self) -> PostgresServer:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )
        options = " ".join(
            (
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            )
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "start",
        )
        self._admin = sa.create_engine(
            self.url("postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        return self

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this cluster."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "test") -> str:
        """A new, empty database; returns its URL."""
        assert self._admin is not None, "start() first"
        self._count += 1
        name = f"{prefix}_{self._count}"
        with self._admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def restart(self) -> None:
        """``pg_ctl restart -m fast``, as an operator would: every connection is cut (the
        clients see AdminShutdown) and the server comes back with the same options."""
        # The log file again: without it the server would hold our captured stdout open.
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-m",
            "fast",
            "-w",
            "restart",
        )

    def stop(self) -> None:
        """Stop the cluster at once and remove its files."""
        if self._admin is not None:
            self._admin.dispose()
        if self.data.exists():
            stop = self._command(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"
            )
            subprocess.run(stop, capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
