"""What the newsletter asks the other services over HTTP: published content from the
feeds service, and the audience (and who is still subscribed) from the subscribers
service. It never reads their tables."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx

from shared.config import get_settings
from shared.errors import Unavailable
from shared.tokens import service_headers
from shared.web.paths import path_for

#: Seconds to wait for another service to answer (streams: between two chunks).
PEER_TIMEOUT_SECONDS = 30

#: Audience records handed from the reading thread to the snapshot at a time, and how
#: many such batches it may read ahead (at most some 20 MB of records in memory).
AUDIENCE_BATCH = 1000
AUDIENCE_READ_AHEAD = 64


class PeerUnavailable(Unavailable):
    """Another service did not answer as expected; the message says which and why."""


def _client(base: str) -> httpx.Client:
    return httpx.Client(
        base_url=base, timeout=PEER_TIMEOUT_SECONDS, trust_env=False, headers=service_headers()
    )


_local = threading.local()


def _subscribers_client() -> httpx.Client:
    # One client per thread, reused: a new client costs a TLS context (~15 ms) and a
    # connection, and every sender asks once per batch.
    client = getattr(_local, "subscribers", None)
    if client is None:
        client = _local.subscribers = _client(get_settings().subscribers_url)
    return client


def published_items(
    language: str | None = None,
    since: datetime | None = None,
    kind: str | None = None,
    tag: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Published items from the feeds service's public API, newest first."""
    params: dict[str, str] = {"limit": str(limit), "partners": "1"}
    if language:
        params["lang"] = language
    if since:
        params["since"] = since.isoformat()
    if kind:
        params["type"] = kind
    if tag:
        params["tag"] = tag
    try:
        with _client(get_settings().feeds_url) as client:
            response = client.get(path_for("feeds:api_items"), params=params)
            response.raise_for_status()
            return list(response.json()["items"])
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise PeerUnavailable(f"the content service did not answer: {exc}") from None


def upcoming_dates(language: str) -> list[dict[str, Any]]:
    """The coming dates of the published event series in ``language``, soonest first,
    from the events service's public API."""
    try:
        with _client(get_settings().events_url) as client:
            response = client.get(
                path_for("events:api_dates"), params={"lang": language, "limit": "200"}
            )
            response.raise_for_status()
            return list(response.json()["dates"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise PeerUnavailable(f"the events service did not answer: {exc}") from None


def audience(language: str) -> Iterator[dict[str, Any]]:
    """Confirmed subscribers of ``language``, streamed one record at a time.

    The stream is read and parsed in a thread of its own, up to AUDIENCE_READ_AHEAD
    batches ahead of the caller: the subscribers service writing and the caller's inserts
    then overlap instead of taking turns (a fifth of a 100,000-recipient snapshot)."""
    batches: queue.Queue[list[dict[str, Any]] | Exception | None] = queue.Queue(
        maxsize=AUDIENCE_READ_AHEAD
    )
    stop = threading.Event()

    def hand_over(item: list[dict[str, Any]] | Exception | None) -> bool:
        # Waits while the caller is behind; gives up once the caller has stopped reading.
        while not stop.is_set():
            try:
                batches.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            with (
                _client(get_settings().subscribers_url) as client,
                client.stream(
                    "GET",
                    path_for("subscribers:internal_audience"),
                    params={"language": language},
                    # Uncompressed: between services gzip costs the other service more
                    # CPU than the bytes cost (25 MB for 100,000 recipients, on loopback
                    # or a LAN), and it was a fifth of a snapshot.
                    headers={"Accept-Encoding": "identity"},
                ) as response,
            ):
                response.raise_for_status()
                batch: list[dict[str, Any]] = []
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    batch.append(json.loads(line))
                    if len(batch) >= AUDIENCE_BATCH:
                        if not hand_over(batch):
                            return
                        batch = []
                if hand_over(batch):
                    hand_over(None)
        except (httpx.HTTPError, ValueError) as exc:
            hand_over(PeerUnavailable(f"the subscribers service did not answer: {exc}"))
        except Exception as exc:  # handed to the caller, raised there
            hand_over(exc)

    threading.Thread(target=read, name="audience reader", daemon=True).start()
    try:
        while True:
            try:
                item = batches.get(timeout=2 * PEER_TIMEOUT_SECONDS)
            except queue.Empty:
                raise PeerUnavailable("the subscribers service did not answer in time") from None
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield from item
    finally:
        stop.set()  # the reader stops at its next batch and closes the stream


def still_confirmed(subscriber_ids: list[int]) -> set[int]:
    """Which of these subscribers are confirmed right now."""
    try:
        client = _subscribers_client()
        response = client.post(
            path_for("subscribers:internal_confirmed"), json={"ids": subscriber_ids}
        )
        response.raise_for_status()
        return set(response.json()["confirmed"])
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise PeerUnavailable(f"the subscribers service did not answer: {exc}") from None


def issue_feedback(issue_id: int, since: datetime | None = None) -> dict[str, int]:
    """Subscribers with a bounce or complaint about ``issue_id``, by kind of report (the
    subscribers service records them as they come back); with ``since``, when the issue
    went out, also ``unsubscribed_in_week``."""
    try:
        response = _subscribers_client().get(
            path_for("subscribers:internal_issue_feedback", id=issue_id),
            params={"since": since.isoformat()} if since is not None else None,
        )
        response.raise_for_status()
        counts = response.json()
        return {str(kind): int(count) for kind, count in counts.items()}
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        raise PeerUnavailable(f"the subscribers service did not answer: {exc}") from None
