"""Fetching partner sources politely and safely.

Conditional GET (ETag / Last-Modified), connect and read timeouts, a cap on the body
size, a limit on redirects, ``Retry-After`` honoured, a per-host concurrency limit shared
through Redis, and a User-Agent that says who we are. Private, loopback and link-local
addresses are refused on every hop unless the operator allowed them
(``KGI_FETCH_ALLOW_HOSTS``), so a source URL cannot be used to probe the internal network.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import SplitResult, urljoin, urlsplit

import httpx

from shared.config import get_settings
from shared.database import utcnow
from shared.ratelimit import concurrency_slot
from shared.sanitize import writable
from shared.web.paths import absolute_url_for

#: Seconds to wait for a connection, and for each read from it.
CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 20

#: Largest body read from a source (5 MiB); a bigger one is an error, not a feed.
MAX_BODY_BYTES = 5 * 1024 * 1024

#: Longest source address (the column's size).
MAX_URL_LENGTH = 1000

#: Redirects followed before giving up.
MAX_REDIRECTS = 5

#: Requests to one host at the same time, across all workers.
PER_HOST_CONCURRENCY = 2

#: How long a fetch waits for a free slot at a busy host before going ahead anyway.
HOST_SLOT_WAIT_SECONDS = 30

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
    "text/xml;q=0.9, text/html;q=0.8, */*;q=0.5"
)


class FetchError(Exception):
    """The source could not be fetched; ``retry_after`` (seconds) when the server said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class FetchResult:
    status: int  # 200, or 304 when unchanged
    url: str  # after redirects: the base for relative links
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be fetched, as a sentence; None when it is a usable http(s) URL.
    Checked when a source is added and again on every redirect hop."""
    if len(url) > MAX_URL_LENGTH:
        return f"The address is longer than {MAX_URL_LENGTH} characters."
    if writable(url) != url or any(c.isspace() for c in url):
        return "The address must not contain spaces or control characters."
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 literal
        return "The address is not a valid URL."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "The address must start with http:// or https://."
    try:
        port = parts.port  # raises for a port that is no number or out of range
    except ValueError:
        port = 0
    if port == 0:
        return "The port must be a number from 1 to 65535."
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        return "The host name is not valid."
    return None


def checked_url(url: str) -> SplitResult:
    """``url`` split into its parts; raises FetchError when :func:`url_problem` finds one."""
    problem = url_problem(url)
    if problem is not None:
        raise FetchError(f"{problem} ({url[:200]})")
    return urlsplit(url)


def user_agent() -> str:
    """The User-Agent of every fetch: who we are and where to read about it."""
    return f"KGI-Infobrief-Aggregator/1.0 (+{absolute_url_for('feeds:news')})"


def _allowed(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    for entry in get_settings().fetch_allow_hosts:
        if entry == host:
            return True
        with contextlib.suppress(ValueError):
            if address in ipaddress.ip_network(entry, strict=False):
                return True
    return False


def check_host(host: str, port: int) -> None:
    """Refuse hosts that resolve to private, loopback, link-local or reserved addresses."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError(f"host {host} not found ({exc.strerror})") from None
    except UnicodeError:
        raise FetchError(f"the host name {host} is not valid") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if getattr(address, "ipv4_mapped", None):
            address = address.ipv4_mapped  # type: ignore[union-attr]
        internal = (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_multicast
            or address.is_reserved
            or address.is_unspecified
        )
        if internal and not _allowed(host, address):
            raise FetchError(
                f"refusing to fetch {host}: it resolves to the internal address {address}"
            )


@contextlib.contextmanager
def host_slot(host: str) -> Iterator[None]:
    """Hold one of the host's PER_HOST_CONCURRENCY slots, across workers (see
    :func:`shared.ratelimit.concurrency_slot`); a worker killed while holding one frees
    it after the longest a fetch can take."""
    with concurrency_slot(
        f"fetch-host:{host}",
        PER_HOST_CONCURRENCY,
        ttl_seconds=CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS * 2 + 1,
        wait_seconds=HOST_SLOT_WAIT_SECONDS,
    ):
        yield


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (it may be a number or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - utcnow()).total_seconds())
    except (TypeError, ValueError):
        return None


def new_client() -> httpx.Client:
    """An HTTP client for sources: no proxies from the environment, our timeouts and UA."""
    return httpx.Client(
        timeout=httpx.Timeout(READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
        headers={"User-Agent": user_agent(), "Accept": ACCEPT},
        follow_redirects=False,
        trust_env=False,
    )


def fetch(
    url: str,
    etag: str | None = None,
    last_modified: str | None = None,
    client: httpx.Client | None = None,
) -> FetchResult:
    """GET ``url`` with the safeguards above; raises FetchError with a readable reason."""
    own_client = client is None
    client = client or new_client()
    try:
        for _ in range(MAX_REDIRECTS + 1):
            parts = checked_url(url)
            assert parts.hostname is not None  # checked_url refuses URLs without a host
            check_host(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
            headers = {}
            if etag:
                headers["If-None-Match"] = etag
            if last_modified:
                headers["If-Modified-Since"] = last_modified
            with host_slot(parts.hostname):
                try:
                    with client.stream("GET", url, headers=headers) as response:
                        if (
                            response.status_code in (301, 302, 303, 307, 308)
                            and "location" in response.headers
                        ):
                            url = urljoin(url, response.headers["location"])
                            continue
                        return _read(url, response)
                except httpx.TimeoutException:
                    raise FetchError("the server did not answer in time") from None
                except httpx.HTTPError as exc:
                    raise FetchError(f"connection failed: {exc}") from None
        raise FetchError(f"more than {MAX_REDIRECTS} redirects")
    finally:
        if own_client:
            client.close()


def _read(url: str, response: httpx.Response) -> FetchResult:
    status = response.status_code
    if status == 304:
        return FetchResult(
            304, url, b"", "", response.headers.get("etag"), response.headers.get("last-modified")
        )
    if status in (429, 503):
        raise FetchError(
            f"HTTP {status}: the server asks us to come back later",
            retry_after_seconds(response.headers.get("retry-after")),
        )
    if status >= 400:
        raise FetchError(f"HTTP {status}")
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise FetchError(f"the response is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise FetchError(f"the response is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB")
        chunks.append(chunk)
    return FetchResult(
        200,
        url,
        b"".join(chunks),
        response.headers.get("content-type", ""),
        response.headers.get("etag"),
        response.headers.get("last-modified"),
    )
