"""An issue's audience read from the subscribers service while the snapshot inserts it
(services.newsletter.peers.audience reads ahead in a thread): a stream that breaks
midway starts nothing and leaves the issue a draft; a reader that stops early stops the
reading thread. The server is a real HTTP server on loopback that breaks as told."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from services.newsletter import dispatch, peers
from services.newsletter.store import outbox
from shared.config import get_settings
from shared.database import engine
from tests.conftest import free_port
from tests.test_newsletter import new_issue, state_of


def record(number: int) -> bytes:
    return json.dumps(
        {
            "id": number,
            "email": f"leser{number}@example.org",
            "name": f"Leser {number}",
            "unsubscribe_url": f"https://kgi.example.org/u/{number}",
            "preferences_url": f"https://kgi.example.org/p/{number}",
        }
    ).encode()


@pytest.fixture
def audience_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Answers every request with ``records`` NDJSON lines in chunks, then breaks the
    connection without the last chunk when ``break`` is set (set the keys in the test)."""
    told = {"records": 10, "break": 0}
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))

    def answer(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            try:
                for first in range(1, told["records"] + 1, 500):
                    last = min(first + 500, told["records"] + 1)
                    body = b"".join(record(n) + b"\n" for n in range(first, last))
                    conn.sendall(b"%x\r\n%s\r\n" % (len(body), body))
                if not told["break"]:
                    conn.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # the reader stopped reading: fine

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setenv("KGI_SUBSCRIBERS_URL", f"http://127.0.0.1:{port}")
    get_settings.cache_clear()
    yield told
    listener.close()
    monkeypatch.undo()
    get_settings.cache_clear()


def test_the_whole_audience_arrives_in_order(site: str, audience_server: dict[str, int]) -> None:
    audience_server["records"] = 2600
    assert [r["id"] for r in peers.audience("de")] == list(range(1, 2601))


def test_a_stream_that_breaks_midway_starts_nothing(
    site: str, audience_server: dict[str, int]
) -> None:
    issue = new_issue()
    audience_server.update(records=2600, **{"break": 1})
    with pytest.raises(peers.PeerUnavailable, match="did not answer"):
        dispatch.start(issue.id, "redaktion@example.org")
    assert state_of(issue.id) == "draft"
    with engine("newsletter").connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(outbox)) == 0
    # The editor sends again once the service is back: everyone, once.
    audience_server["break"] = 0
    assert dispatch.start(issue.id, "redaktion@example.org") == 2600


def test_a_reader_that_stops_early_stops_the_reading_thread(
    site: str, audience_server: dict[str, int]
) -> None:
    audience_server["records"] = 200_000
    records = peers.audience("de")
    assert next(records)["id"] == 1
    records.close()
    deadline = time.monotonic() + 5
    while any(t.name == "audience reader" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the reading thread still runs"
        time.sleep(0.05)
