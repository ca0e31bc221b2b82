"""Writers of different processes on one SQLite file (shared.database).

Two engines on one file stand for two processes: each has its own in-process lock, so
they meet only at SQLite's write lock, as two worker processes do. A writer waiting for
the other takes the lock in short steps once it is free
(SerialisedWrites.begin_immediate_soon), falls back to SQLite's own wait after
FAST_WAIT_SECONDS, and fails as before, with SQLAlchemy's error, after the busy timeout.
Every write waited for lands, none twice.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from shared import database
from shared.database import create_engine_for


def two_processes(tmp_path: Path) -> tuple[sa.Engine, sa.Engine]:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first, second = create_engine_for(url), create_engine_for(url)
    with first.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE marks (n INTEGER PRIMARY KEY, writer TEXT)")
    return first, second


def hold_write_lock(engine: sa.Engine, seconds: float, started: threading.Event) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO marks (writer) VALUES ('holder')")
        started.set()
        time.sleep(seconds)


@pytest.mark.parametrize("held", [0.03, 0.4])
def test_a_writer_waits_for_the_other_process_and_then_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: float
) -> None:
    """Held briefly: the short steps take it. Held past the fast wait (shortened here):
    SQLite's own wait takes it. Either way both writes land, in order."""
    monkeypatch.setattr(database, "FAST_WAIT_SECONDS", 0.1)
    first, second = two_processes(tmp_path)
    started = threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(first, held, started))
    holder.start()
    started.wait(5)
    with second.begin() as conn:
        conn.exec_driver_sql("INSERT INTO marks (writer) VALUES ('waiter')")
    holder.join()
    with second.connect() as conn:
        writers = [row[0] for row in conn.exec_driver_sql("SELECT writer FROM marks ORDER BY n")]
        busy_timeout = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
    assert writers == ["holder", "waiter"]
    assert busy_timeout == database.SQLITE_BUSY_TIMEOUT_MS  # restored after the steps


def test_a_writer_gives_up_with_sqlalchemys_error_after_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "FAST_WAIT_SECONDS", 0.05)
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 200)
    first, second = two_processes(tmp_path)
    started = threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(first, 1.0, started))
    holder.start()
    started.wait(5)
    with pytest.raises(sa.exc.OperationalError, match="locked"), second.begin() as conn:
        conn.exec_driver_sql("INSERT INTO marks (writer) VALUES ('late')")
    holder.join()
    # The failed begin left nothing held: the next write goes through at once.
    with second.begin() as conn:
        conn.exec_driver_sql("INSERT INTO marks (writer) VALUES ('after')")
    with second.connect() as conn:
        writers = [row[0] for row in conn.exec_driver_sql("SELECT writer FROM marks ORDER BY n")]
    assert writers == ["holder", "after"]


def test_many_writers_of_two_processes_lose_and_double_nothing(tmp_path: Path) -> None:
    first, second = two_processes(tmp_path)

    def write(engine: sa.Engine, name: str) -> None:
        for n in range(100):
            with engine.begin() as conn:
                conn.exec_driver_sql("INSERT INTO marks (writer) VALUES (?)", (f"{name}-{n}",))

    threads = [
        threading.Thread(target=write, args=(engine, f"{label}{t}"))
        for label, engine in (("a", first), ("b", second))
        for t in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with first.connect() as conn:
        writers = [row[0] for row in conn.exec_driver_sql("SELECT writer FROM marks")]
    expected = [f"{label}{t}-{n}" for label in "ab" for t in range(4) for n in range(100)]
    assert sorted(writers) == sorted(expected)


def test_a_begin_that_fails_for_another_reason_raises_sqlalchemys_error(
    tmp_path: Path,
) -> None:
    """Not a lock (a read-only database here): callers handle SQLAlchemy's errors (a 503,
    an SMTP "try later"), so the short steps must not let sqlite3's own through."""
    engine, _ = two_processes(tmp_path)
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        raw.execute("PRAGMA query_only=1")
        with pytest.raises(sa.exc.OperationalError, match="readonly"):
            conn.begin()
        raw.execute("PRAGMA query_only=0")
        assert raw.execute("PRAGMA busy_timeout").fetchone()[0] == database.SQLITE_BUSY_TIMEOUT_MS
        with conn.begin():  # the failed begin left this process's writer lock free
            conn.exec_driver_sql("INSERT INTO marks (writer) VALUES ('after')")
