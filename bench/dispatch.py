"""Issue dispatch into Postfix's smtp-sink, against a plain smtplib loop in the same run.

The sink is Postfix's smtp-sink (C, accepts and discards); the limit is a plain smtplib
loop over one reused connection sending the issue's own message (the same size) into it.
The system runs as `kgi run` runs it: the site for the subscribers and feeds APIs, `kgi
worker` processes with their senders, SQLite and a private Redis. Each row is one issue
to N recipients, from "send" until the issue is *sent* (every row committed):

- `kgi run` defaults (a worker process per core, at most an issue's four senders): at
  least 1.0x the loop;
- two worker processes: at least 1.5x the loop (more connections, as an MTA would use);
- DKIM on (RSA-2048): at least 0.8x the same run without it;
- 100,000 recipients with four worker processes: the largest worker under 200 MB, the
  audience snapshot under 3 s, one render; the time for 1,000,000 is extrapolated.

    .venv/bin/python bench/dispatch.py [--recipients 20000] [--large 100000]
"""

from __future__ import annotations

import argparse
import os
import secrets
import smtplib
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Verdicts, bench_environment, free_port, serve

SMTP_SINK = "/usr/sbin/smtp-sink"

#: The aiosmtpd stand-in when Postfix is missing (slower than what it measures).
PYTHON_SINK = """
import sys, time
from aiosmtpd.controller import Controller

class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"

Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1])).start()
while True:
    time.sleep(60)
"""

SITE_APP = """
from kgi.site import create_site
app = create_site()
"""


@dataclass(frozen=True)
class Run:
    """One issue sent: its rate, and what it cost."""

    rate: float
    seconds: float
    snapshot_seconds: float
    peak_worker_mb: float
    renders: int
    sent: int
    cpu_us_per_message: dict[str, float]


def start_sink(port: int, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    if os.access(SMTP_SINK, os.X_OK):
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        command = [SMTP_SINK, *user, f"127.0.0.1:{port}", "1024"]
        return subprocess.Popen(command), "Postfix smtp-sink"
    (workdir / "sink.py").write_text(PYTHON_SINK)
    sink = subprocess.Popen([sys.executable, str(workdir / "sink.py"), str(port)])
    return sink, "aiosmtpd stand-in (install postfix for real figures)"


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            smtplib.SMTP("127.0.0.1", port, timeout=1).quit()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"no SMTP server on {port}")


def add_subscribers(count: int) -> None:
    """``count`` confirmed German subscribers, replacing any before."""
    import sqlalchemy as sa

    from services.subscribers import store
    from shared.database import engine, utcnow

    now = utcnow()
    with engine("subscribers").begin() as conn:
        conn.execute(sa.delete(store.subscribers))
        for first in range(0, count, 5000):
            conn.execute(
                store.subscribers.insert(),
                [
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
                    for n in range(first, min(first + 5000, count))
                ],
            )


def process_tree(pid: int) -> list:
    import psutil

    try:
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(pid: int) -> float:
    import psutil

    total = 0.0
    for process in process_tree(pid):
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:  # a process that just ended
            continue
    return total


def largest_worker_mb(pid: int) -> float:
    """The largest process Dramatiq forked (one per --processes)."""
    return max((p.memory_info().rss / 1e6 for p in process_tree(pid)[1:]), default=0.0)


def loop_rate(port: int, message: bytes, count: int) -> float:
    """A plain smtplib loop over one reused connection: messages per second."""
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for n in range(count):
            smtp.sendmail("infobrief@example.org", [f"leser{n}@example.org"], message)
    return count / (time.perf_counter() - started)


def start_workers(processes: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    worker = subprocess.Popen(
        [sys.executable, "-m", "kgi", "worker", "--processes", str(processes)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(4)  # let the workers boot before the clock starts
    return worker


def send_issue(recipients: int, worker: subprocess.Popen[bytes], pids: dict[str, int]) -> Run:
    """One issue to ``recipients``, from "send" until it is *sent*."""
    from services.newsletter import compose, dispatch

    add_subscribers(recipients)
    issue = compose.create_issue("de", "bench@example.org", f"Bench {recipients}")
    compose.add_since(issue.id, "bench", datetime(2000, 1, 1, tzinfo=UTC))
    renders: list[object] = []
    original = dispatch.render_issue
    dispatch.render_issue = lambda *a: renders.append(a) or original(*a)
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    peak = 0.0
    try:
        started = time.perf_counter()
        dispatch.start(issue.id, "bench")
        snapshot = time.perf_counter() - started
        while (progress := dispatch.progress(issue.id)).state != "sent":
            peak = max(peak, largest_worker_mb(worker.pid))
            if time.perf_counter() - started > 1800:
                raise RuntimeError(f"not sent after 30 minutes: {progress}")
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
    finally:
        dispatch.render_issue = original
    return Run(
        rate=recipients / elapsed,
        seconds=elapsed,
        snapshot_seconds=snapshot,
        peak_worker_mb=peak,
        renders=len(renders),
        sent=progress.sent,
        cpu_us_per_message={
            name: (cpu_seconds(pid) - cpu_before[name]) * 1e6 / recipients
            for name, pid in pids.items()
        },
    )


def sample_message() -> bytes:
    """The demo issue's message as one recipient gets it (the loop sends this)."""
    from services.newsletter import compose, render
    from shared.mail.message import ISSUE, PreparedMessage, Unsubscribe

    issue = compose.create_issue("de", "bench@example.org", "Bench sample")
    compose.add_since(issue.id, "bench", datetime(2000, 1, 1, tzinfo=UTC))
    html, text = render.personalise(
        render.rendered_of(issue), render.Recipient("Leser", "https://x/u", "https://x/p")
    )
    return PreparedMessage(issue.subject, ISSUE).render(
        "leser0@example.org", "Leser", text, html, Unsubscribe("https://x/u")
    )


def dkim_settings(workdir: Path) -> dict[str, str]:
    """A fresh RSA-2048 key for the DKIM row."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = workdir / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return {
        "KGI_DKIM_KEY_FILE": str(path),
        "KGI_DKIM_SELECTOR": "bench",
        "KGI_DKIM_DOMAIN": "example.org",
    }


def describe(label: str, run: Run) -> None:
    cpu = ", ".join(f"{name} {us:.0f} µs" for name, us in run.cpu_us_per_message.items())
    print(
        f"{'':<44} {run.seconds:.1f} s ({run.snapshot_seconds:.1f} s snapshot), "
        f"{run.sent} sent; CPU per message: {cpu}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=100_000)
    args = parser.parse_args()
    verdicts = Verdicts()
    sink_port, site_port = free_port(), free_port()
    with bench_environment(
        "dispatch",
        KGI_SMTP_URL=f"smtp://127.0.0.1:{sink_port}",
        KGI_BASE_URL=f"http://127.0.0.1:{site_port}",
        KGI_MAIL_FROM="KGI-Infobrief <infobrief@example.org>",
    ) as (workdir, env):
        from kgi import registry
        from services.feeds.demo import load_demo

        registry.migrate_all()
        registry.setup()
        load_demo()
        sink, sink_name = start_sink(sink_port, workdir)
        site = serve(workdir, "site_app", SITE_APP, site_port, env)
        worker = None
        try:
            wait_for_port(sink_port)
            message = sample_message()
            limit = loop_rate(sink_port, message, args.recipients)
            print(
                f"sink: {sink_name}; {os.cpu_count()} cores; {args.recipients:,} recipients "
                f"per row; message {len(message) / 1024:.1f} KB"
            )
            verdicts.row(
                "smtplib loop, one connection (the limit)", f"{limit:8.0f} msg/s", True, "-"
            )
            from kgi.cli import default_worker_processes
            from shared.config import get_settings

            default_count = default_worker_processes(get_settings())
            defaults = f"kgi run defaults ({default_count} worker processes)"
            rows = {
                defaults: (default_count, {}, 1.0),
                "two worker processes": (2, {}, 1.5),
                "kgi run defaults, DKIM RSA-2048": (default_count, dkim_settings(workdir), None),
            }
            runs: dict[str, Run] = {}
            for label, (processes, settings, at_least) in rows.items():
                worker = start_workers(processes, {**env, **settings})
                pids = {"workers": worker.pid, "site": site.pid, "sink": sink.pid}
                run = runs[label] = send_issue(args.recipients, worker, pids)
                worker.terminate()
                worker.wait(timeout=60)
                worker = None
                if at_least is None:
                    plain = runs[defaults]
                    ratio = run.rate / plain.rate
                    figure = f"{run.rate:8.0f} msg/s {ratio:5.2f}x without DKIM"
                    verdicts.row(label, figure, ratio >= 0.8, ">= 0.80x")
                else:
                    ratio = run.rate / limit
                    figure = f"{run.rate:8.0f} msg/s {ratio:5.2f}x the loop"
                    verdicts.row(label, figure, ratio >= at_least, f">= {at_least:.2f}x")
                describe(label, run)
                verdicts.row(f"  every recipient sent ({label})", f"{run.sent}",
                             run.sent == args.recipients, "all")  # fmt: skip
            if args.large:
                worker = start_workers(4, env)
                pids = {"workers": worker.pid, "site": site.pid, "sink": sink.pid}
                large = send_issue(args.large, worker, pids)
                label = f"{args.large:,} recipients, 4 worker processes"
                verdicts.row(
                    label, f"{large.rate:8.0f} msg/s", large.sent == args.large, "all sent"
                )
                describe(label, large)
                verdicts.row("  largest worker process", f"{large.peak_worker_mb:.0f} MB",
                             large.peak_worker_mb < 200, "< 200 MB")  # fmt: skip
                verdicts.row("  audience snapshot", f"{large.snapshot_seconds:.2f} s",
                             large.snapshot_seconds < 3, "< 3 s")  # fmt: skip
                verdicts.row("  renders of the issue", str(large.renders), large.renders == 1, "1")
                million = large.snapshot_seconds * 1e6 / args.large + 1e6 / large.rate
                print(f"1,000,000 recipients, 4 worker processes: about {million / 60:.0f} min")
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=60)
            site.terminate()
            site.wait()
            sink.terminate()
            sink.wait()
    return verdicts.finish()


if __name__ == "__main__":
    raise SystemExit(main())
