"""The production shape (issue 10): ``deploy/start.sh`` as operators run it, nginx in front.

PostgreSQL (the suite's throwaway cluster, databases of their own), Redis with its
append-only file, and an SMTP server start here; the script starts the rest: the four
``kgi serve`` processes, two worker pools, the scheduler and nginx. Everything a person
does goes through nginx: sign up and confirm, log in and publish, import 2,000
subscribers, compose and send an issue. While the issue goes out, a worker pool is
SIGKILLed, PostgreSQL is restarted and Redis is SIGKILLed and restarted. Counted at the
SMTP server: each recipient exactly one copy. The production defaults hold (a dead
sender's lease of 10 s), so the longest pause shows how fast a dead pool's rows are
taken over.

Runs once, in the suite's PostgreSQL run: production's database.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from kgi import registry
from services.newsletter import store as newsletter_store
from services.subscribers import store as subscriber_store
from shared.redis_server import RedisServer
from tests.conftest import TEST_DATABASE, csrf_of, free_port, link_in, wait_for
from tests.postgres_server import PostgresServer
from tests.smtp_server import RecordingSMTPServer

ROOT = Path(__file__).resolve().parents[1]
START = ROOT / "deploy" / "start.sh"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

#: Imported subscribers the issue goes to (and the one who signs up through the site).
RECIPIENTS = 2000

#: Seconds the relay takes per message: the issue takes long enough for three faults.
RELAY_DELAY = 0.03

#: A dead pool's rows wait out its lease (10 s in production) and a scheduler tick.
LONGEST_PAUSE_ALLOWED = 25.0

#: An address of the loopback network that is not nginx's: the client the services
#: must see behind the proxy.
CLIENT_ADDRESS = "127.0.0.2"

PASSWORD = "correct horse battery"

#: The editor who sends the issue (and gets its summary mail when it is done).
EDITOR = "chefin@example.org"

pytestmark = [
    pytest.mark.skipif(
        TEST_DATABASE != "postgresql",
        reason="production's database is PostgreSQL: this runs in the PostgreSQL run",
    ),
    pytest.mark.skipif(
        not os.access(NGINX, os.X_OK),
        reason="nginx is missing: sh scripts/install-test-tools.sh installs Debian's",
    ),
]


#: Where the deployment's ports are chosen: below Linux's ephemeral range (32768-60999),
#: which the source ports of outbound connections come from. The deployment binds its
#: ports seconds after they are chosen, and again on every restart; in between, a
#: connection of the other database's run once took one as its source port, and the
#: service restarted into "address already in use" until the test gave up.
DEPLOYMENT_PORTS = range(20_000, 32_000)


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports in DEPLOYMENT_PORTS."""
    chooser = random.Random()
    for _ in range(100):
        first = chooser.randrange(DEPLOYMENT_PORTS.start, DEPLOYMENT_PORTS.stop - count)
        ports = range(first, first + count)
        sockets = []
        try:
            for port in ports:
                probe = socket.socket()
                sockets.append(probe)
                probe.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for probe in sockets:
                probe.close()
    raise RuntimeError("no consecutive free ports")


@dataclass
class Deployment:
    """The running production shape and the handles the test needs."""

    url: str
    env: dict[str, str]
    folder: Path
    process: subprocess.Popen[bytes]
    smtp: RecordingSMTPServer
    redis: RedisServer
    postgres: PostgresServer
    databases: dict[str, sa.Engine]

    def kgi(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """A ``kgi`` command as the operator runs it on this machine."""
        return subprocess.run(
            [sys.executable, "-m", "kgi", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )

    def pid_of(self, name: str) -> int:
        return int((self.folder / "pids" / f"{name}.pid").read_text())

    def processes(self) -> list[int]:
        """Every process still running in the groups the script started."""
        groups = {int(pid.read_text()) for pid in (self.folder / "pids").glob("*.pid")}
        return [pid for group in groups for pid in group_members(group)]

    def stop(self) -> list[int]:
        """SIGTERM to the script, as an operator stops it; returns what still runs after
        (nothing, when the script works), having killed it so nothing outlives the test."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        left = self.processes()
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return left

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name} ---\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted((self.folder / "logs").glob("*.log"))
        )


@pytest.fixture
def deployment(postgres: PostgresServer, tmp_path: Path) -> Iterator[Deployment]:
    smtp = RecordingSMTPServer()
    smtp.start()
    redis = RedisServer(tmp_path / "redis", port=free_port()).start()
    proxy_port = free_ports(1)
    urls = {
        owner: postgres.create_database(f"prod_{owner}") for owner in registry.database_owners()
    }
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "KGI_ENV": "production",
        "KGI_SECRET_KEY": "production-shape-test-secret-key",
        "KGI_BASE_URL": f"http://127.0.0.1:{proxy_port}",
        "KGI_REDIS_URL": redis.url,
        "KGI_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
        "KGI_MAIL_FROM": "KGI-Infobrief <infobrief@kgi.example.org>",
        "KGI_BOUNCE_ADDRESS": "bounces@kgi.example.org",
        "KGI_POSTAL_ADDRESS": "Musterstraße 1, 10115 Berlin",
        "KGI_DATA_DIR": str(tmp_path / "data"),
        "KGI_DEPLOY_DIR": str(tmp_path / "deploy"),
        "KGI_PROXY_LISTEN": f"127.0.0.1:{proxy_port}",
        "KGI_SERVICE_PORT": str(free_ports(len(registry.servable()))),
        "KGI_WORKER_POOLS": "2",
        "KGI_WORKER_PROCESSES": "1",
        "KGI_COMMAND": f"{sys.executable} -m kgi",
        "NGINX": NGINX,
        **{f"KGI_{owner.upper()}_DATABASE_URL": url for owner, url in urls.items()},
    }
    output = (tmp_path / "start.log").open("wb")
    process = subprocess.Popen(
        ["bash", str(START)],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=tmp_path,
    )
    running = Deployment(
        url=env["KGI_BASE_URL"],
        env=env,
        folder=tmp_path / "deploy",
        process=process,
        smtp=smtp,
        redis=redis,
        postgres=postgres,
        databases={owner: sa.create_engine(url) for owner, url in urls.items()},
    )

    def answers() -> bool:
        assert process.poll() is None, (tmp_path / "start.log").read_text()
        try:
            return httpx.get(running.url + "/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(answers, timeout=90, message="the deployment to answer through nginx")
        yield running
    finally:
        # pytest shows this only when the test failed.
        print((tmp_path / "start.log").read_text(errors="replace"), running.logs())
        running.stop()
        output.close()
        for engine in running.databases.values():
            engine.dispose()
        redis.stop()
        smtp.stop()


def group_members(group: int) -> list[int]:
    """The running processes of process group ``group``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after it.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group and fields[0] != "Z":
                members.append(int(stat.parent.name))
    return members


def browser(deployment: Deployment) -> httpx.Client:
    """A visitor's client, from an address of its own, claiming to be someone else."""
    return httpx.Client(
        base_url=deployment.url,
        transport=httpx.HTTPTransport(local_address=CLIENT_ADDRESS),
        headers={"x-forwarded-for": "203.0.113.9", "user-agent": "production-shape/1.0"},
        timeout=30,
    )


def logged_in(deployment: Deployment, email: str) -> httpx.Client:
    added = deployment.kgi(
        "users", "add", email, "--role", "admin", "--password-stdin", stdin=PASSWORD
    )
    assert added.returncode == 0, added.stderr
    client = browser(deployment)
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    assert response.status_code == 303, response.text
    return client


def sign_up_and_confirm(deployment: Deployment, email: str) -> None:
    client = browser(deployment)
    client.get("/subscribers/signup")
    response = client.post(
        "/subscribers/signup",
        data={"email": email, "name": "", "language": "de"},
        headers={"referer": f"{deployment.url}/subscribers/signup"},
    )
    assert response.status_code == 303, response.text
    mail = wait_for(lambda: deployment.smtp.to(email), timeout=30, message="confirmation")[0]
    link = link_in(mail.part("plain"), "/subscribers/confirm/")
    assert link.startswith(deployment.url)
    page = client.get(link)
    assert client.post(link, data={"csrf_token": csrf_of(page.text)}).status_code == 200
    with deployment.databases["subscribers"].connect() as conn:
        subscriber = conn.execute(
            sa.select(subscriber_store.subscribers).where(
                subscriber_store.subscribers.c.email_key == email
            )
        ).one()
        addresses = set(
            conn.execute(
                sa.select(subscriber_store.consent_events.c.ip).where(
                    subscriber_store.consent_events.c.subscriber_id == subscriber.id,
                    subscriber_store.consent_events.c.ip.is_not(None),
                )
            ).scalars()
        )
    assert subscriber.status == "confirmed"
    # nginx replaced the made-up X-Forwarded-For; the services believed nginx alone.
    assert addresses == {CLIENT_ADDRESS}


def publish(admin: httpx.Client, title: str) -> None:
    form = admin.get("/news/admin/new")
    created = admin.post(
        "/news/admin/new",
        data={
            "csrf_token": csrf_of(form.text),
            "title": title,
            "kind": "news",
            "language": "de",
            "summary": "Aus der Praxis",
            "body": "<p>Bericht</p>",
            "tags": "Austausch",
        },
    )
    assert created.status_code == 303, created.text
    item_url = created.headers["location"].split("?")[0]
    for step in ("submit", "publish"):
        page = admin.get(item_url)
        version = re.search(r'name="version" value="([^"]+)"', page.text)
        assert version, page.text
        moved = admin.post(
            f"{item_url}/workflow",
            data={"csrf_token": csrf_of(page.text), "step": step, "version": version.group(1)},
        )
        assert moved.status_code == 303, moved.text


def import_subscribers(admin: httpx.Client, count: int) -> list[str]:
    addresses = [f"leserin{n}@example.org" for n in range(count)]
    rows = "".join(f"{address},Leserin {n},de,paper form\n" for n, address in enumerate(addresses))
    page = admin.get("/subscribers/admin/import")
    response = admin.post(
        "/subscribers/admin/import",
        data={"csrf_token": csrf_of(page.text)},
        files={"file": ("list.csv", f"email,name,language,consent_source\n{rows}", "text/csv")},
    )
    assert response.status_code == 200, response.text
    return addresses


def start_issue(admin: httpx.Client) -> int:
    listing = admin.get("/newsletter/admin/")
    created = admin.post(
        "/newsletter/admin/new", data={"csrf_token": csrf_of(listing.text), "language": "de"}
    )
    assert created.status_code == 303, created.text
    url = created.headers["location"]
    page = admin.get(url)
    token = csrf_of(page.text)
    ids = re.findall(r'name="content_id" value="(\d+)"', page.text)
    assert ids, page.text
    admin.post(f"{url}/items", data={"csrf_token": token, "action": "add", "content_id": ids})
    sent = admin.post(f"{url}/send", data={"csrf_token": token})
    assert sent.status_code == 303, sent.text
    return int(url.rstrip("/").rsplit("/", 1)[1])


def kill_pool(deployment: Deployment, name: str) -> None:
    """SIGKILL a worker pool's main process, as the kernel's OOM killer would; the
    script must end the rest of the pool before it starts a new one (no second pool
    beside an orphaned worker)."""
    group = deployment.pid_of(name)
    os.kill(group, signal.SIGKILL)
    wait_for(lambda: not group_members(group), timeout=15, message=f"{name}'s old processes gone")


def issue_state(deployment: Deployment, issue_id: int) -> str | None:
    """The issue's state as its database has it (None while PostgreSQL restarts)."""
    try:
        with deployment.databases["newsletter"].connect() as conn:
            return conn.execute(
                sa.select(newsletter_store.issues.c.state).where(
                    newsletter_store.issues.c.id == issue_id
                )
            ).scalar_one()
    except sa.exc.OperationalError:
        return None


def test_production_shape_through_nginx_with_faults(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    sign_up_and_confirm(deployment, "neu@example.org")
    admin = logged_in(deployment, EDITOR)
    publish(admin, "Fachtagung Kommune goes International")

    # Feeds come from nginx's cache after the first reader.
    first = httpx.get(f"{deployment.url}/news/feed.atom")
    again = httpx.get(f"{deployment.url}/news/feed.atom")
    assert "Fachtagung Kommune goes International" in first.text
    assert (first.headers["x-cache-status"], again.headers["x-cache-status"]) == ("MISS", "HIT")
    # Personal pages never are, for the same person or the next.
    for client in (admin, admin, httpx.Client(base_url=deployment.url)):
        assert client.get("/newsletter/admin/").headers["x-cache-status"] != "HIT"
    # A redirect the services make keeps the address the client used, port included.
    redirect = httpx.get(f"{deployment.url}/news", follow_redirects=False)
    assert redirect.headers["location"] == f"{deployment.url}/news/"

    readers = [*import_subscribers(admin, RECIPIENTS), "neu@example.org"]
    smtp = deployment.smtp
    smtp.reset()
    smtp.delay = RELAY_DELAY
    issue_id = start_issue(admin)

    def sent(count: int) -> None:
        wait_for(lambda: len(smtp.mails) >= count, timeout=120, message=f"{count} mails sent")

    faults = {
        # Dramatiq's main process; its forked worker is then ended by the script.
        "worker pool SIGKILLed": lambda: kill_pool(deployment, "worker-1"),
        "PostgreSQL restarted": deployment.postgres.restart,
        "Redis SIGKILLed, restarted": lambda: (
            deployment.redis.stop(kill=True),
            time.sleep(1),
            deployment.redis.start(),
        ),
    }
    for number, (name, fault) in enumerate(faults.items(), start=1):
        sent(len(readers) * number // 5)
        fault()
        print(f"{name} after {len(smtp.mails)} mails")

    wait_for(lambda: issue_state(deployment, issue_id) == "sent", timeout=300, message="sent")
    issue_mails = [mail for mail in smtp.mails if mail.to != EDITOR]
    counts = Counter(mail.to for mail in issue_mails)
    arrivals = sorted(mail.received_at for mail in issue_mails)
    longest_pause = max(later - earlier for earlier, later in itertools.pairwise(arrivals))
    lost = sum(1 for reader in readers if counts.get(reader, 0) == 0)
    duplicated = sum(1 for reader in readers if counts.get(reader, 0) > 1)
    with capsys.disabled():
        print(
            f"\n| production shape, {len(readers)} recipients, {', '.join(faults)} "
            f"| lost {lost} | duplicated {duplicated} | longest pause {longest_pause:.1f} s |"
        )
    assert (lost, duplicated) == (0, 0)
    assert set(counts) == set(readers)
    assert longest_pause < LONGEST_PAUSE_ALLOWED
    # The editor's summary, once, after the last recipient.
    summary = wait_for(lambda: smtp.to(EDITOR), timeout=60, message="the summary mail")
    time.sleep(2)
    assert len(smtp.to(EDITOR)) == 1 and summary[0].received_at >= arrivals[-1]
    # Still serving after it all, through the same nginx; then stopped as an operator
    # stops it, with nothing left running and the port free.
    assert httpx.get(f"{deployment.url}/news/").status_code == 200
    assert deployment.stop() == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(deployment.url)
