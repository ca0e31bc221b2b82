"""What every benchmark needs: its servers, its load generator and its verdict lines.

HTTP load comes from wrk, a C program faster than anything it measures here (a Python
load generator saturates near 1,200 requests per second and would hide every gap). When
wrk is missing, a Python generator stands in and every line says so: its figures are
then a lower bound of the generator, not of the site.

Every figure is printed beside its limit, measured in the same run on the same machine
(a trivial Starlette app in one uvicorn process; for mail, a plain smtplib loop), as a
ratio with its target and PASS or FAIL.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]

#: The limit every page is held against: Starlette answering 4 KB, nothing else.
TRIVIAL_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

BODY = "x" * 4096

async def hello(request):
    await request.body()
    return PlainTextResponse(BODY)

app = Starlette(routes=[Route("/", hello, methods=["GET", "POST"])])
"""

#: The whole site as `kgi run` serves it, with the demo content.
SITE_APP = """
from kgi import registry
from kgi.site import create_site
from services.feeds.demo import load_demo

registry.migrate_all()
load_demo()
app = create_site()
"""

#: wrk's settings for every HTTP row: two threads (the machine's cores), 20 connections.
WRK_THREADS = 2
WRK_CONNECTIONS = 20

#: Appended to every wrk script: the figures as one JSON line, exact rather than rounded.
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'KGI-WRK {"requests": %d, "seconds": %f, "p50_ms": %f, "p99_ms": %f,'
    .. ' "failed": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(
    module_dir: Path, module: str, source: str, port: int, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """``source`` as an ASGI module served by one uvicorn process on ``port``."""
    (module_dir / f"{module}.py").write_text(source)
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", f"{module}:app", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=module_dir,
        env={**env, "PYTHONPATH": f"{ROOT}:{module_dir}"},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{module} did not start")


@contextmanager
def bench_environment(prefix: str, **settings: str) -> Iterator[tuple[Path, dict[str, str]]]:
    """A temporary data folder and a private Redis; the environment for the processes
    (also applied to this one, for benchmarks that call the project directly)."""
    from shared.redis_server import RedisServer

    workdir = Path(tempfile.mkdtemp(prefix=f"kgi-bench-{prefix}-"))
    redis_server = RedisServer(workdir / "redis", port=free_port()).start()
    env = {
        **os.environ,
        "KGI_DATA_DIR": str(workdir / "data"),
        "KGI_REDIS_URL": redis_server.url,
        "KGI_SMTP_URL": "smtp://127.0.0.1:9",
        "KGI_SECRET_KEY": "bench",
        **settings,
    }
    os.environ.update(env)
    try:
        yield workdir, env
    finally:
        redis_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class Load:
    """What a load generator measured."""

    rate: float
    p50_ms: float
    p99_ms: float
    #: Answers with a status of 400 or more, and connections that failed.
    failed: int
    requests: int
    tool: str


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def http_load(
    url: str,
    seconds: float = 10,
    script: str = "",
    headers: dict[str, str] | None = None,
    connections: int = WRK_CONNECTIONS,
) -> Load:
    """Load ``url`` for ``seconds`` with wrk (``script``: wrk Lua setting the request),
    or with the Python stand-in when wrk is missing (plain GETs with ``headers`` only)."""
    if not wrk_available():
        if script:
            raise RuntimeError("this row needs wrk: sh scripts/install-bench-tools.sh")
        return asyncio.run(python_load(url, seconds, headers or {}, connections))
    lua = Path(tempfile.mkstemp(suffix=".lua")[1])
    lua.write_text(script + WRK_REPORT)
    duration = f"{max(1, round(seconds))}s"  # wrk takes whole seconds
    command = ["wrk", "-t", str(WRK_THREADS), "-c", str(connections), "-d", duration]
    command += ["--timeout", "10s", "-s", str(lua)]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    try:
        output = subprocess.run([*command, url], capture_output=True, text=True, check=True)
    finally:
        lua.unlink()
    line = next(x for x in output.stdout.splitlines() if x.startswith("KGI-WRK "))
    figures = json.loads(line.removeprefix("KGI-WRK "))
    return Load(
        rate=figures["requests"] / figures["seconds"],
        p50_ms=figures["p50_ms"],
        p99_ms=figures["p99_ms"],
        failed=figures["failed"] + figures["socket_errors"],
        requests=figures["requests"],
        tool="wrk",
    )


async def python_load(url: str, seconds: float, headers: dict[str, str], connections: int) -> Load:
    """The stand-in for wrk: ``connections`` clients GETting ``url`` for ``seconds``."""
    latencies: list[float] = []
    failed = 0
    deadline = time.perf_counter() + seconds

    async def client_loop() -> None:
        nonlocal failed
        async with httpx.AsyncClient(timeout=10, headers=headers) as client:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.get(url)
                    failed += response.status_code >= 400
                except httpx.HTTPError:
                    failed += 1
                latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Load(
        rate=len(latencies) / elapsed,
        p50_ms=latencies[len(latencies) // 2],
        p99_ms=latencies[int(len(latencies) * 0.99)],
        failed=failed,
        requests=len(latencies),
        tool="Python stand-in (install wrk for real figures)",
    )


@dataclass
class Verdicts:
    """The rows a benchmark prints, each with its target, and whether all passed."""

    passed: bool = True

    def row(self, label: str, figure: str, ok: bool, target: str) -> None:
        """One line: what, measured, target, PASS/FAIL."""
        self.passed = self.passed and ok
        print(f"{label:<44} {figure:<34} target {target:<18} {'PASS' if ok else 'FAIL'}")

    def limit(self, label: str, load: Load) -> None:
        """The row the others are measured against."""
        self.row(label, f"{load.rate:8.0f} req/s        p99 {load.p99_ms:6.1f} ms", True, "-")

    def ratio(self, label: str, load: Load, limit: Load, at_least: float) -> None:
        """A rate against its limit's rate from the same run."""
        ratio = load.rate / limit.rate
        figure = f"{load.rate:8.0f} req/s {ratio:5.2f}x  p99 {load.p99_ms:6.1f} ms"
        self.row(label, figure, ratio >= at_least and not load.failed, f">= {at_least:.2f}x")
        if load.failed:
            print(f"{'':<44} {load.failed} of {load.requests} requests failed")

    def finish(self) -> int:
        print("PASS" if self.passed else "FAIL")
        return 0 if self.passed else 1
