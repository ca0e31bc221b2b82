"""Feed serving and aggregation, measured against their targets in one run.

1. Request rate of a cached feed (full 200 response, and a 304 for a conditional GET)
   beside a trivial Starlette response, one uvicorn process each, same load generator.
   Target: both at 70% or more of the trivial rate.
2. Time to aggregate 100 partner sources served locally (10 loopback hosts, 10 feeds
   each, 20 entries per feed) by `kgi worker`, while a client keeps loading the news page.
   Target: 10 s or less, and the page keeps answering (its worst latency is printed).

    .venv/bin/python bench/feeds.py [--requests 3000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.signup import TRIVIAL_APP, free_port, percentile, serve  # noqa: E402

SITE_APP = """
from kgi.site import create_site
from services.feeds.demo import load_demo
from kgi import registry

registry.migrate_all()
load_demo()
app = create_site()
"""

SOURCES, HOSTS, ENTRIES = 100, 10, 20


class Get:
    def __init__(self, path: str, etag: str | None = None) -> None:
        self.path, self.etag = path, etag

    async def setup(self, client: httpx.AsyncClient) -> None:
        return None

    async def __call__(self, client: httpx.AsyncClient, state: None, n: int) -> httpx.Response:
        headers = {"if-none-match": self.etag} if self.etag else {}
        return await client.get(self.path, headers=headers)


async def load(url: str, total: int, concurrency: int, request: Get) -> tuple[float, list[float]]:
    latencies: list[float] = []
    counter = iter(range(total))

    async def loop() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for n in counter:
                started = time.perf_counter()
                response = await request(client, None, n)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code not in (200, 304):
                    raise RuntimeError(f"unexpected {response.status_code}")

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return total / (time.perf_counter() - started), latencies


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
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    from shared.redis_server import RedisServer

    workdir = Path(tempfile.mkdtemp(prefix="kgi-bench-feeds-"))
    redis_server = RedisServer(workdir / "redis", port=free_port()).start()
    partner_port = free_port()
    env = {
        **os.environ,
        "KGI_DATA_DIR": str(workdir / "data"),
        "KGI_REDIS_URL": redis_server.url,
        "KGI_SMTP_URL": "smtp://127.0.0.1:9",
        "KGI_SECRET_KEY": "bench",
        "KGI_FETCH_ALLOW_HOSTS": "127.0.0.0/8",
    }
    os.environ.update(env)
    trivial_port, site_port = free_port(), free_port()
    processes = [
        serve(workdir, "trivial_app", TRIVIAL_APP, trivial_port, env),
        serve(workdir, "site_app", SITE_APP, site_port, env),
    ]
    partners = start_partner_hosts(partner_port)
    ok = True
    try:
        site, trivial = f"http://127.0.0.1:{site_port}", f"http://127.0.0.1:{trivial_port}"
        feed_path = "/news/feed.atom"
        etag = httpx.get(site + feed_path).headers["etag"]
        warm = max(200, args.requests // 10)
        for url, request in (
            (trivial, Get("/")),
            (site, Get(feed_path)),
            (site, Get(feed_path, etag)),
        ):
            asyncio.run(load(url, warm, args.concurrency, request))
        results = {}
        for label, url, request in (
            ("trivial Starlette GET", trivial, Get("/")),
            ("cached Atom feed (200)", site, Get(feed_path)),
            ("conditional GET (304)", site, Get(feed_path, etag)),
        ):
            results[label] = asyncio.run(load(url, args.requests, args.concurrency, request))
        base = results["trivial Starlette GET"][0]
        cores = os.cpu_count()
        print(f"requests per run: {args.requests}, concurrency: {args.concurrency}, cores: {cores}")
        for label, (rate, latencies) in results.items():
            ratio = rate / base
            verdict = (
                "" if label.startswith("trivial") else f"  {ratio:5.0%} of trivial (target >= 70%)"
            )
            print(
                f"{label:<24}: {rate:7.0f} req/s  p50 {percentile(latencies, 50):5.1f} ms"
                f"  p99 {percentile(latencies, 99):5.1f} ms{verdict}"
            )
            if not label.startswith("trivial") and ratio < 0.7:
                ok = False

        # --- aggregation of 100 local sources -----------------------------------------
        from services.feeds import aggregate
        from services.feeds.store import sources
        from shared.database import engine

        for n in range(SOURCES):
            host = 1 + n % HOSTS
            aggregate.add_source(
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
        import sqlalchemy as sa

        from kgi import registry
        from shared.tasks import enqueue

        registry.setup()
        started = time.perf_counter()
        enqueue("fetch_due_sources")
        deadline = started + 60
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
        summary = f"{item_count} items, {errors} errors"
        took = f"{elapsed:.2f} s (target <= 10 s)"
        print(f"aggregated {fetched}/{SOURCES} sources ({summary}) in {took}")
        p50, p99 = percentile(page_latencies, 50), percentile(page_latencies, 99)
        print(
            f"news page while aggregating: {len(page_latencies)} loads, p50 {p50:.1f} ms,"
            f" p99 {p99:.1f} ms, max {max(page_latencies):.1f} ms"
        )
        if fetched != SOURCES or elapsed > 10 or errors or item_count != SOURCES * ENTRIES:
            ok = False
    finally:
        for process in processes:
            process.terminate()
            process.wait()
        for server in partners:
            server.shutdown()
        redis_server.stop()
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
