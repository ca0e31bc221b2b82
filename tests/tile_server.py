"""A map tile server on loopback, standing in for OpenStreetMap's in the tests: every
``/{z}/{x}/{y}.png`` is the same plain 256-pixel PNG, and every request is recorded
(with its Referer, which real tile servers ask for)."""

from __future__ import annotations

import contextlib
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def plain_png(size: int = 256, rgb: tuple[int, int, int] = (222, 234, 240)) -> bytes:
    """A ``size``-pixel square PNG of one colour (made here: no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


class TileServer:
    """Serves :func:`plain_png` for any tile path; ``requests`` holds (path, referer)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []
        tile = plain_png()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Referer")))
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(tile)))
                self.end_headers()
                # The map may move on before a tile arrives, as browsers do.
                with contextlib.suppress(ConnectionError):
                    self.wfile.write(tile)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url_template = f"http://127.0.0.1:{self.port}/{{z}}/{{x}}/{{y}}.png"

    def start(self) -> TileServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
