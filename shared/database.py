"""Database engines and migrations, one database per owning service.

SQLAlchemy Core only. SQLite (the embedded default) runs in WAL mode with a busy timeout
so the web process, the workers and the scheduler can share the file; PostgreSQL URLs
work unchanged.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shared.config import get_settings
from shared.fair_lock import FairLock

#: How long a SQLite writer waits for another process's lock before failing (ms).
SQLITE_BUSY_TIMEOUT_MS = 10_000

#: How a writer waits for another process's lock at first (see
#: SerialisedWrites.begin_immediate_soon): tries after 50 µs, then twice as long each
#: time up to 2 ms, for a quarter of a second; after that SQLite's own wait.
FIRST_PAUSE_SECONDS = 0.000_05
LONGEST_PAUSE_SECONDS = 0.002
FAST_WAIT_SECONDS = 0.25

#: SQLite connections kept open per database and process: as many as the threads that
#: may use one at once (anyio's default of 40 for the web process's sync work). A
#: SQLite connection costs a file handle and a little memory; opening one costs four
#: PRAGMAs, which with SQLAlchemy's default pool of 5 a busy site paid on most requests.
SQLITE_POOL_SIZE = 40


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Hand transaction control to SQLAlchemy, so the "begin" hook below decides how to begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class SerialisedWrites(sqlite3.Connection):
    """A SQLite connection whose write transactions queue on a lock of this process.

    SQLite lets one writer in at a time; the others wait in its busy handler, which
    sleeps and retries (1, 2, 5, 10 ... 100 ms). Twenty threads signing people up at
    once then spent most of their time asleep: p99 1.8 s for a 2 ms write. Threads of
    one process queue on a lock instead and go in the moment the writer before them
    commits, in the order they came (:class:`FairLock`); other processes still meet at
    SQLite's lock. Each database gets a subclass
    with a lock of its own (:func:`create_engine_for`)."""

    writer_lock: FairLock
    holding = False

    def begin_write(self) -> None:
        """Wait for this process's writer before the database's (at most the busy
        timeout: then SQLite's own wait decides, as before)."""
        self.holding = self.writer_lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)

    def begin_immediate_soon(self) -> bool:
        """BEGIN IMMEDIATE, waiting for another process's writer in short steps; False
        when it still writes after FAST_WAIT_SECONDS (then SQLite's own wait goes on), or
        when BEGIN fails for another reason.

        SQLite's busy handler sleeps 1, 2, 5, 10 ms ... between attempts, while a writer
        here holds the lock for about 0.1 ms (a sender's commit before the final dot).
        Two worker processes sending one issue spent a fifth of their time in those
        sleeps; these steps start at FIRST_PAUSE_SECONDS."""
        try:
            self.execute("PRAGMA busy_timeout=0")
            pause = FIRST_PAUSE_SECONDS
            deadline = time.monotonic() + FAST_WAIT_SECONDS
            while True:
                try:
                    self.execute("BEGIN IMMEDIATE")
                    return True
                except sqlite3.OperationalError as exc:
                    # Extended codes (SQLITE_BUSY_RECOVERY ...) keep the primary one below.
                    if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                        # Not a lock (read-only, I/O error ...): the caller's BEGIN through
                        # SQLAlchemy meets it again and raises it as SQLAlchemy's error,
                        # which is what every caller handles.
                        return False
                if time.monotonic() > deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, LONGEST_PAUSE_SECONDS)
        finally:
            self.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")

    def release_write(self) -> None:
        if self.holding:
            self.holding = False
            self.writer_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.release_write()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.release_write()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.release_write()


def _begin_sqlite(conn: sa.Connection) -> None:
    # Writers take the write lock at the start (BEGIN IMMEDIATE): two processes that read
    # and then write could otherwise deadlock and fail with "database is locked" instead of
    # waiting. Readers (see read_connection) begin deferred, so they never queue behind
    # writers: in WAL mode they read the last committed state.
    if conn.get_execution_options().get("kgi_read_only"):
        conn.exec_driver_sql("BEGIN")
        return
    dbapi_connection = conn.connection.dbapi_connection
    serialised = dbapi_connection if isinstance(dbapi_connection, SerialisedWrites) else None
    if serialised is not None:
        serialised.begin_write()
    try:
        if serialised is None or not serialised.begin_immediate_soon():
            # Still locked by another process: SQLite's own wait, and its error after it.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        # No transaction began, so no commit or rollback will release the lock.
        if serialised is not None:
            serialised.release_write()
        raise


def create_engine_for(url: str) -> Engine:
    """An engine for ``url``, with SQLite tuned for several processes."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        factory = type("SerialisedWrites", (SerialisedWrites,), {"writer_lock": FairLock()})
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "factory": factory},
            pool_size=SQLITE_POOL_SIZE,
            max_overflow=SQLITE_POOL_SIZE,
        )
        sa.event.listen(engine, "connect", _on_sqlite_connect)
        sa.event.listen(engine, "begin", _begin_sqlite)
        return engine
    settings = get_settings()
    # pre_ping: a connection the server dropped (a restart) is replaced, not handed out.
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )


@cache
def engine(owner: str) -> Engine:
    """The engine of ``owner``'s database (created once per process)."""
    return create_engine_for(get_settings().database_url(owner))


def read_connection(owner: str) -> sa.Connection:
    """A connection for reading only (use as a context manager); writes go through
    ``engine(owner).begin()``."""
    return engine(owner).connect().execution_options(kgi_read_only=True)


def migrate(owner: str, scripts: Path) -> None:
    """Bring ``owner``'s schema to the newest of the Alembic ``scripts`` (the folder its
    descriptor names; :func:`kgi.registry.migrate` finds it)."""
    # Imported here: only migrating processes need Alembic, and importing it logs a line
    # per plugin at INFO in every process that has logging set up (each worker).
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(scripts))
    config.attributes["engine"] = engine(owner)
    command.upgrade(config, "head")


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores no zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use shared.database.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """Now, timezone-aware, in UTC: the only clock stored data uses."""
    return datetime.now(UTC)


def after_commit(conn: sa.Connection, action: Callable[[], None]) -> None:
    """Run ``action`` once, when the transaction on ``conn`` commits; never when it rolls
    back (a change that never happened). For what must follow a change at once in this
    process, such as a rendering cache forgetting the version it read."""
    sa.event.listen(conn, "commit", lambda _conn: action(), once=True)
