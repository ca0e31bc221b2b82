"""Aggregation of partner sources, measured against its target.

100 partner sources served locally (10 loopback hosts, 10 feeds each, 20 entries per
feed) are fetched by `kgi worker` while a client keeps loading the news page. Target: 10 s
or less, and the page keeps answering (its worst latency is printed). How fast feeds are
served is measured by bench/web.py.

    .venv/bin/python bench/feeds.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import SITE_APP, Verdicts, bench_environment, free_port, serve  # noqa: E402

SOURCES, HOSTS, ENTRIES = 100, 10, 20


def feed_for(source: int) -> bytes:
    entries = "".join(
        f"<item><title>Quelle {source} Meldung {n}</title>"
        f"<link>https://partner{source}.example.org/m/{n}</link>"
        f"<guid>https://partner{source}.example.org/m/{n}</guid>"
        f"<pubDate>Mon, {1 + n % 28:02d} Nov 2026 09:00:00 +0100</pubDate>"
        f"<description><![CDATA[<p>Text {n} der Quelle {source}, <b>fett</b>.</p>]]>"
        "</description></item>"
        for n in range(ENTRIES)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0">'
        f"<channel><title>Quelle {source}</title>"
        f"<link>https://partner{source}.example.org/</link><description>x</description>"
        f"<language>de</language>{entries}</channel></rss>"
    ).encode()


def start_partner_hosts(port: int) -> list[ThreadingHTTPServer]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = feed_for(int(self.path.strip("/").split(".")[0]))
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    servers = []
    for host in range(1, HOSTS + 1):
        server = ThreadingHTTPServer((f"127.0.0.{host}", port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    return servers


def main() -> int:
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    partner_port = free_port()
    verdicts = Verdicts()
    with bench_environment("feeds", KGI_FETCH_ALLOW_HOSTS="127.0.0.0/8") as (workdir, env):
        site_port = free_port()
        process = serve(workdir, "site_app", SITE_APP, site_port, env)
        partners = start_partner_hosts(partner_port)
        try:
            aggregate_sources(f"http://127.0.0.1:{site_port}", partner_port, env, verdicts)
        finally:
            process.terminate()
            process.wait()
            for server in partners:
                server.shutdown()
    return verdicts.finish()


def aggregate_sources(
    site: str, partner_port: int, env: dict[str, str], verdicts: Verdicts
) -> None:
    """Fetch every source with `kgi worker` while a reader keeps loading the news page."""
    import sqlalchemy as sa

    from kgi import registry
    from services.feeds import partner_sources
    from services.feeds.store import sources
    from shared.database import engine
    from shared.tasks import enqueue

    for n in range(SOURCES):
        host = 1 + n % HOSTS
        partner_sources.add_source(
            f"http://127.0.0.{host}:{partner_port}/{n}.rss", name=f"Quelle {n}"
        )
    worker = subprocess.Popen(
        [sys.executable, "-m", "kgi", "worker", "--processes", "2", "--threads", "8"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(3)  # let the worker boot before the clock starts
    page_latencies: list[float] = []
    done = threading.Event()

    def keep_loading_pages() -> None:
        with httpx.Client(base_url=site, timeout=30) as client:
            while not done.is_set():
                started = time.perf_counter()
                assert client.get("/news/?partners=1").status_code == 200
                page_latencies.append((time.perf_counter() - started) * 1000)
                time.sleep(0.02)

    reader = threading.Thread(target=keep_loading_pages)
    reader.start()
    registry.setup()
    started = time.perf_counter()
    enqueue("fetch_due_sources")
    deadline = started + 60
    fetched = 0
    while time.perf_counter() < deadline:
        with engine("feeds").connect() as conn:
            fetched = conn.execute(
                sa.select(sa.func.count())
                .select_from(sources)
                .where(sources.c.last_fetch_at.is_not(None))
            ).scalar_one()
        if fetched == SOURCES:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    done.set()
    reader.join()
    worker.terminate()
    worker.wait(timeout=30)
    with engine("feeds").connect() as conn:
        item_count = conn.execute(
            sa.text("select count(*) from items where origin = 'partner'")
        ).scalar_one()
        errors = conn.execute(
            sa.text("select count(*) from sources where last_status = 'error'")
        ).scalar_one()
    complete = fetched == SOURCES and not errors and item_count == SOURCES * ENTRIES
    verdicts.row(
        f"{SOURCES} sources aggregated",
        f"{elapsed:.2f} s, {item_count} items, {errors} errors",
        complete and elapsed <= 10,
        "<= 10 s",
    )
    page_latencies.sort()
    p99 = page_latencies[int(len(page_latencies) * 0.99)]
    print(
        f"news page while aggregating: {len(page_latencies)} loads, p99 {p99:.1f} ms,"
        f" max {page_latencies[-1]:.1f} ms"
    )


if __name__ == "__main__":
    raise SystemExit(main())
