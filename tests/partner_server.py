"""A real HTTP server on loopback playing partner websites for the aggregator."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Resource:
    body: bytes = b""
    content_type: str = "application/rss+xml"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    delay: float = 0.0


class PartnerServer:
    """Serves ``resources`` by path and records every request's headers."""

    def __init__(self) -> None:
        self.resources: dict[str, Resource] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, dict(self.headers)))
                resource = server.resources.get(self.path)
                if resource is None:
                    self.send_error(404)
                    return
                if resource.delay:
                    with server._lock:
                        server.in_flight += 1
                        server.most_in_flight = max(server.most_in_flight, server.in_flight)
                    time.sleep(resource.delay)
                    with server._lock:
                        server.in_flight -= 1
                if resource.etag and self.headers.get("If-None-Match") == resource.etag:
                    self.send_response(304)
                    self.send_header("ETag", resource.etag)
                    self.end_headers()
                    return
                self.send_response(resource.status)
                self.send_header("Content-Type", resource.content_type)
                if resource.etag:
                    self.send_header("ETag", resource.etag)
                for name, value in resource.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(resource.body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(resource.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve_fixture(
        self,
        path: str,
        fixture: str,
        content_type: str = "application/rss+xml",
        etag: str | None = None,
    ) -> str:
        self.resources[path] = Resource((FIXTURES / fixture).read_bytes(), content_type, etag=etag)
        return self.url(path)

    def start(self) -> PartnerServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
