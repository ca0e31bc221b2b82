"""Sign-ups per second, form POST through to the queued confirmation mail, beside a trivial
Starlette endpoint measured by the same load generator in the same run.

Each server runs in its own process (uvicorn, one worker) on loopback, with a private
redis-server and SQLite in a temporary directory; no worker consumes the queue, so what
is measured ends with the confirmation job in Redis.

    .venv/bin/python bench/signup.py [--requests 2000] [--concurrency 8]

Targets (issue 2): sign-up rate >= 1/3 of the trivial rate, sign-up p99 < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRIVIAL_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

async def hello(request):
    await request.body()
    return PlainTextResponse("ok")

app = Starlette(routes=[Route("/", hello, methods=["GET", "POST"])])
"""

SITE_APP = """
from kgi.site import create_site
from kgi import registry

registry.migrate_all()
app = create_site()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(
    module_dir: Path, module: str, source: str, port: int, env: dict[str, str]
) -> subprocess.Popen:
    (module_dir / f"{module}.py").write_text(source)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            f"{module}:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=module_dir,
        env={**env, "PYTHONPATH": f"{ROOT}:{module_dir}"},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{module} did not start")


async def run_load(
    url: str, total: int, concurrency: int, make_request
) -> tuple[float, list[float]]:
    """Send ``total`` requests from ``concurrency`` clients; (requests/s, latencies in ms)."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def client_loop(client_id: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            state = await make_request.setup(client)
            for n in counter:
                started = time.perf_counter()
                response = await make_request(client, state, n)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code not in (200, 303):
                    raise RuntimeError(f"unexpected {response.status_code}: {response.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return total / elapsed, latencies


class TrivialPost:
    async def setup(self, client: httpx.AsyncClient) -> None:
        return None

    async def __call__(self, client: httpx.AsyncClient, state: None, n: int) -> httpx.Response:
        return await client.post(
            "/", data={"email": f"bench{n}@example.org", "name": "Bench", "language": "de"}
        )


class SignupPost:
    async def setup(self, client: httpx.AsyncClient) -> str:
        page = await client.get("/subscribers/signup")
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert match
        return match.group(1)

    async def __call__(self, client: httpx.AsyncClient, token: str, n: int) -> httpx.Response:
        return await client.post(
            "/subscribers/signup",
            data={
                "email": f"bench{n}-{time.monotonic_ns()}@example.org",
                "name": "Bench",
                "language": "de",
                "csrf_token": token,
            },
        )


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    from shared.redis_server import RedisServer

    workdir = Path(tempfile.mkdtemp(prefix="kgi-bench-"))
    redis_server = RedisServer(workdir / "redis", port=free_port()).start()
    env = {
        **os.environ,
        "KGI_DATA_DIR": str(workdir / "data"),
        "KGI_REDIS_URL": redis_server.url,
        "KGI_SMTP_URL": "smtp://127.0.0.1:9",
        "KGI_SECRET_KEY": "bench",
        "KGI_SIGNUPS_PER_IP_PER_HOUR": str(10 * args.requests),
    }
    trivial_port, site_port = free_port(), free_port()
    servers = [
        serve(workdir, "trivial_app", TRIVIAL_APP, trivial_port, env),
        serve(workdir, "site_app", SITE_APP, site_port, env),
    ]
    try:
        warmup = max(100, args.requests // 10)
        asyncio.run(
            run_load(f"http://127.0.0.1:{trivial_port}", warmup, args.concurrency, TrivialPost())
        )
        asyncio.run(
            run_load(f"http://127.0.0.1:{site_port}", warmup, args.concurrency, SignupPost())
        )
        trivial_rate, trivial_lat = asyncio.run(
            run_load(
                f"http://127.0.0.1:{trivial_port}", args.requests, args.concurrency, TrivialPost()
            )
        )
        signup_rate, signup_lat = asyncio.run(
            run_load(f"http://127.0.0.1:{site_port}", args.requests, args.concurrency, SignupPost())
        )
        import redis

        queued = redis.Redis.from_url(redis_server.url).llen("kgi-dramatiq:subscribers")
    finally:
        for server in servers:
            server.terminate()
            server.wait()
        redis_server.stop()

    cores = os.cpu_count()
    print(f"requests per run: {args.requests}, concurrency: {args.concurrency}, cores: {cores}")
    for label, rate, lat in (
        ("trivial Starlette POST", trivial_rate, trivial_lat),
        ("sign-up form POST", signup_rate, signup_lat),
    ):
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        print(f"{label:<23}: {rate:8.0f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
    print(f"confirmation jobs queued in Redis: {queued} (expected {args.requests + warmup})")
    ratio = signup_rate / trivial_rate
    p99 = percentile(signup_lat, 99)
    ok = ratio >= 1 / 3 and p99 < 100 and queued == args.requests + warmup
    print(f"ratio sign-up/trivial: {ratio:.2f} (target >= 0.33)")
    print(f"sign-up p99: {p99:.1f} ms (target < 100 ms)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
