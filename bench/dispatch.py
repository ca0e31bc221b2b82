"""Issue dispatch: messages per second from "send" to accepted by a local SMTP sink, for
10,000 and 100,000 recipients, beside a plain smtplib loop over one reused connection into
the same sink, in the same run; plus worker memory and the number of renders.

The sink is aiosmtpd in its own process, counting what it accepted. The system runs as in
production: the site (uvicorn) for the subscribers and feeds APIs, `kgi worker` processes
with their senders, SQLite and a private Redis.

    .venv/bin/python bench/dispatch.py [--sizes 10000 100000] [--processes 2] [--senders 4]

Targets (issue 4): end-to-end at least as fast as the single-connection loop; worker
memory flat in the audience size and under 200 MB at 100,000; rendered once per issue.
"""

from __future__ import annotations

import argparse
import os
import secrets
import smtplib
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.signup import free_port, serve  # noqa: E402

SINK = """
import sys, threading, time
from aiosmtpd.controller import Controller

class Sink:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        Sink.count += 1
        return "250 OK"

port, path = int(sys.argv[1]), sys.argv[2]
controller = Controller(Sink(), hostname="127.0.0.1", port=port)
controller.start()
while True:
    with open(path + ".tmp", "w") as f:
        f.write(str(Sink.count))
    import os
    os.replace(path + ".tmp", path)
    time.sleep(0.05)
"""

SITE_APP = """
from kgi.site import create_site
app = create_site()
"""


def sink_count(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (OSError, ValueError):
        return 0


def wait_count(path: Path, target: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while sink_count(path) < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"sink has {sink_count(path)} of {target} after {timeout} s")
        time.sleep(0.02)
    return time.monotonic()


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    import psutil

    try:
        process = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 1e6
    except psutil.NoSuchProcess:
        return 0.0


def worker_rss_mb(pid: int) -> float:
    """The largest single worker process (Dramatiq forks one per --processes)."""
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    return max((p.memory_info().rss / 1e6 for p in children), default=0.0)


def add_subscribers(count: int) -> None:
    import sqlalchemy as sa

    from services.subscribers import store
    from shared.database import engine, utcnow

    now = utcnow()
    with engine("subscribers").begin() as conn:
        conn.execute(sa.delete(store.subscribers))
        chunk = []
        for n in range(count):
            chunk.append(
                {
                    "email": f"leser{n}@example.org",
                    "email_key": f"leser{n}@example.org",
                    "name": f"Leser {n}",
                    "language": "de",
                    "status": "confirmed",
                    "created_at": now,
                    "updated_at": now,
                    "requested_at": now,
                    "confirmed_at": now,
                    "manage_key": secrets.token_hex(16),
                }
            )
            if len(chunk) == 5000:
                conn.execute(store.subscribers.insert(), chunk)
                chunk = []
        if chunk:
            conn.execute(store.subscribers.insert(), chunk)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children so far."""
    import psutil

    try:
        process = psutil.Process(pid)
        total = 0.0
        for p in [process, *process.children(recursive=True)]:
            times = p.cpu_times()
            total += times.user + times.system
        return total
    except psutil.NoSuchProcess:
        return 0.0


def baseline(port: int, message: bytes, count: int, counter: Path) -> float:
    """A plain smtplib loop over one reused connection: messages per second."""
    start_count = sink_count(counter)
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for n in range(count):
            smtp.sendmail("infobrief@example.org", [f"leser{n}@example.org"], message)
    finished = wait_count(counter, start_count + count, 60)
    return count / (finished - started)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--senders", type=int, default=4)
    args = parser.parse_args()

    from shared.redis_server import RedisServer

    workdir = Path(tempfile.mkdtemp(prefix="kgi-bench-dispatch-"))
    redis_server = RedisServer(workdir / "redis", port=free_port()).start()
    sink_port, site_port = free_port(), free_port()
    counter = workdir / "sink-count"
    env = {
        **os.environ,
        "KGI_DATA_DIR": str(workdir / "data"),
        "KGI_REDIS_URL": redis_server.url,
        "KGI_SMTP_URL": f"smtp://127.0.0.1:{sink_port}",
        "KGI_SECRET_KEY": "bench",
        "KGI_BASE_URL": f"http://127.0.0.1:{site_port}",
        "KGI_NEWSLETTER_SENDERS": str(args.senders),
        "KGI_MAIL_FROM": "KGI-Infobrief <infobrief@example.org>",
    }
    os.environ.update(env)
    (workdir / "sink.py").write_text(SINK)
    sink = subprocess.Popen(
        [sys.executable, str(workdir / "sink.py"), str(sink_port), str(counter)]
    )
    from kgi import registry

    registry.migrate_all()
    registry.setup()  # links by route name and sends by actor name, as every process
    site = serve(workdir, "site_app", SITE_APP, site_port, env)
    worker = None
    ok = True
    try:
        wait_count(counter, 0, 10)
        from services.feeds.demo import load_demo
        from services.newsletter import compose, dispatch, render

        load_demo()
        renders = []
        original = dispatch.render_issue
        dispatch.render_issue = lambda *a: renders.append(a) or original(*a)  # count renders
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kgi",
                "worker",
                "--processes",
                str(args.processes),
                "--threads",
                str(args.threads),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(4)  # let the workers boot before any clock starts
        print(
            f"cores: {os.cpu_count()}, worker processes: {args.processes}, senders: {args.senders}"
        )
        for size in args.sizes:
            add_subscribers(size)
            issue = compose.create_issue("de", "bench@example.org", f"Bench {size}")
            compose.add_since(issue.id, "bench", datetime(2000, 1, 1, tzinfo=UTC))
            rendered = render.rendered_of(issue)
            html, text = render.personalise(
                rendered, render.Recipient("Leser", "https://x/u", "https://x/p")
            )
            from shared.mail.message import ISSUE, PreparedMessage, Unsubscribe

            sample = PreparedMessage(issue.subject, ISSUE).render(
                "leser0@example.org", "Leser", text, html, Unsubscribe("https://x/u")
            )
            loop_rate = baseline(sink_port, sample, size, counter)

            renders.clear()
            cpu_before = {
                name: cpu_seconds(pid)
                for name, pid in (("sink", sink.pid), ("workers", worker.pid), ("site", site.pid))
            }
            before = sink_count(counter)
            peak = 0.0
            started = time.monotonic()
            dispatch.start(issue.id, "bench")
            snapshot = time.monotonic() - started
            while sink_count(counter) < before + size:
                peak = max(peak, worker_rss_mb(worker.pid))
                if time.monotonic() - started > 1800:
                    raise RuntimeError("dispatch did not finish in 30 minutes")
                time.sleep(0.2)
            elapsed = time.monotonic() - started
            rate = size / elapsed
            cpu = {
                name: (cpu_seconds(pid) - cpu_before[name]) * 1e6 / size
                for name, pid in (("sink", sink.pid), ("workers", worker.pid), ("site", site.pid))
            }
            deadline = time.monotonic() + 60
            while dispatch.progress(issue.id).state != "sent" and time.monotonic() < deadline:
                time.sleep(0.2)
            p = dispatch.progress(issue.id)
            print(f"\n{size:,} recipients")
            print(f"  smtplib loop, one connection : {loop_rate:8.0f} msg/s")
            ratio = rate / loop_rate
            print(f"  KGI dispatch, send → accepted: {rate:8.0f} msg/s  ({ratio:.2f}x the loop;")
            print(f"      {elapsed:.1f} s, of which {snapshot:.1f} s audience snapshot)")
            print(
                "  CPU per message: " + ", ".join(f"{name} {us:.0f} µs" for name, us in cpu.items())
            )
            print(f"  state {p.state}: {p.sent} sent, {p.failed} failed, {p.skipped} skipped")
            print(f"  largest worker process: {peak:.0f} MB resident (target < 200 MB)")
            print(f"  renders of the issue: {len(renders)} (target 1)")
            if rate < loop_rate or peak >= 200 or len(renders) != 1 or p.sent != size:
                ok = False
    finally:
        if worker:
            worker.terminate()
            worker.wait(timeout=60)
        site.terminate()
        site.wait()
        sink.terminate()
        sink.wait()
        redis_server.stop()
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
