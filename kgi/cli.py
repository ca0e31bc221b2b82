"""The ``kgi`` command line."""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

from kgi import registry
from shared.process_logging import setup_logging

if TYPE_CHECKING:
    from shared.config import Settings

#: Worker threads per worker process: mail sending waits on the network, not the CPU.
DEFAULT_WORKER_THREADS = 8


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's proxy options: believe forwarded headers from KGI_TRUSTED_PROXY only.

    uvicorn would otherwise trust FORWARDED_ALLOW_IPS or, unset, every local address,
    so any process on the machine could make up client IPs."""
    if settings.trusted_proxy is None:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": [settings.trusted_proxy]}


def port_taken(host: str, port: int) -> bool:
    """Whether another program listens on ``host``:``port`` (binding as uvicorn would)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str) -> int:
    """A port nobody listens on, chosen by the system."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def default_worker_processes(settings: Settings) -> int:
    """Worker processes ``kgi run`` starts: one per core, as many as an issue has
    senders at most (a process more would have none to run: the other work is light).
    Two processes on two cores sent an issue 1.6 times as fast as one, SQLite included
    (1,800 against 1,100 messages a second, bench/dispatch.py), once each took its share
    of the senders and SQLite writers of different processes stopped sleeping."""
    return max(1, min(usable_cores(), settings.newsletter_senders))


def usable_cores() -> int:
    """The cores this process may run on (a container's cpuset), not the machine's."""
    return len(os.sched_getaffinity(0))


def started_summary(private_redis: bool, mail_catcher: bool, worker_processes: int) -> str:
    """What ``kgi run`` started, and why so: the worker uses the cores (an issue's senders
    spread over its processes); the site stays one process, which answers its public
    pages from memory faster than a second process could take its share of a core."""
    plural = "es" if worker_processes != 1 else ""
    parts = [
        "web site (1 process)",
        f"worker ({worker_processes} process{plural}, {DEFAULT_WORKER_THREADS} threads each)",
        "scheduler",
    ]
    if private_redis:
        parts.append("private Redis")
    if mail_catcher:
        parts.append("mail catcher")
    cores = usable_cores()
    return (
        f"  Started: {', '.join(parts)}, on {cores} core{'s' if cores != 1 else ''}.\n"
        "  The worker's processes share the sending of an issue (KGI_NEWSLETTER_SENDERS).\n"
    )


def cmd_run(args: argparse.Namespace) -> int:
    """Everything in one command: private Redis, migrations, mail catcher, worker,
    scheduler and the web site. Ctrl-C stops all of it."""
    import uvicorn

    from kgi.site import MAIL_CATCHER_PREFIX, create_site
    from shared.config import get_settings
    from shared.mail.catcher import start_catcher
    from shared.redis_server import RedisServer

    settings = get_settings()
    if port_taken(args.host, settings.port):
        # The site's port is in every link (KGI_BASE_URL): the person picks another one.
        print(
            f"Port {settings.port} is taken by another program, so the site cannot start.\n"
            f"Stop that program, or start on another port: KGI_PORT={settings.port + 1} make run",
            file=sys.stderr,
        )
        return 1
    if settings.smtp_url is None and port_taken("127.0.0.1", settings.mail_catcher_port):
        # The catcher's port is internal: take a free one and tell the worker about it.
        taken = settings.mail_catcher_port
        os.environ["KGI_MAIL_CATCHER_PORT"] = str(free_port("127.0.0.1"))
        get_settings.cache_clear()
        settings = get_settings()
        print(
            f"Port {taken} is taken by another program; "
            f"the mail catcher listens on {settings.mail_catcher_port} instead.",
            flush=True,
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    redis_server = (
        RedisServer(settings.private_redis_dir).start() if settings.private_redis else None
    )
    catcher = None
    children: list[subprocess.Popen[bytes]] = []
    try:
        registry.migrate_all()
        if settings.smtp_url is None:
            catcher = start_catcher(settings.mail_catcher_dir, settings.mail_catcher_port)
        worker_processes = default_worker_processes(settings)
        for role in (["worker", "--processes", str(worker_processes)], ["scheduler"]):
            children.append(subprocess.Popen([sys.executable, "-m", "kgi", *role]))
        print(f"\n  KGI-Infobrief runs at {settings.base_url}/", flush=True)
        if catcher:
            print(f"  Captured mail: {settings.base_url}{MAIL_CATCHER_PREFIX}/", flush=True)
        summary = started_summary(redis_server is not None, catcher is not None, worker_processes)
        print(summary, flush=True)
        uvicorn.run(
            create_site(mail_catcher_page=catcher is not None),
            host=args.host,
            port=settings.port,
            log_level="info",
            **server_options(settings),
        )
    finally:
        for child in children:
            child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
        if catcher:
            catcher.stop()
        if redis_server:
            redis_server.stop()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """One service as its own process (production)."""
    import uvicorn

    from kgi.site import create_service
    from shared.config import get_settings

    settings = get_settings()
    uvicorn.run(
        create_service(args.service),
        host=args.host,
        port=args.port or settings.port,
        **server_options(settings),
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Dramatiq workers for every service's actors (Dramatiq's own CLI, which supervises
    the processes and shuts them down cleanly)."""
    # Each process reads how many there are (services.newsletter.process_share).
    os.environ["KGI_WORKER_PROCESSES"] = str(args.processes)
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        # ``module:callable``: each worker process calls it and then uses get_broker(),
        # which setup_broker() has just set (with every actor declared on it).
        "kgi.registry:setup",
        *registry.actor_modules(),
        "--processes",
        str(args.processes),
        "--threads",
        str(args.threads),
    ]
    os.execv(sys.executable, argv)
    return 0  # not reached


def cmd_scheduler(args: argparse.Namespace) -> int:
    """Periodic jobs; stops on SIGINT/SIGTERM."""
    from kgi import scheduler

    setup_logging()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    scheduler.run(stop)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    registry.migrate_all()
    print("All databases are up to date.")
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    from shared.accounts.login import hash_password
    from shared.accounts.store import save_user

    registry.ACCOUNTS.migrate()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat the password: ") != password:
            print("The passwords differ; nothing was saved.", file=sys.stderr)
            return 1
    try:
        user = save_user(args.email, hash_password(password), args.role)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"Saved {user.email} as {user.role}.")
    return 0


def cmd_users_remove(args: argparse.Namespace) -> int:
    from shared.accounts.store import remove_user

    registry.ACCOUNTS.migrate()
    if not remove_user(args.email):
        print(f"There is no account {args.email}.", file=sys.stderr)
        return 1
    print(f"Removed {args.email}; its sessions have ended.")
    return 0


def cmd_parts(args: argparse.Namespace) -> int:
    """The parts with pages, one per line: what ``kgi serve`` takes, for scripts."""
    print("\n".join(registry.servable()))
    return 0


def cmd_proxy_config(args: argparse.Namespace) -> int:
    """Print (or write) the reverse proxy's nginx configuration for the given upstreams."""
    from kgi import proxy

    try:
        config = proxy.nginx_config(
            proxy.parse_upstreams(args.upstream),
            listen=args.listen,
            cache_dir=args.cache_dir,
            standalone_dir=args.standalone,
            server_name=args.server_name,
            front=args.front,
            resolver=args.resolver,
        )
    except proxy.ProxyConfigError as exc:
        print(f"kgi proxy-config: {exc}", file=sys.stderr)
        return 1
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(config)
    else:
        sys.stdout.write(config)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kgi", description="KGI-Infobrief platform")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the whole system (development default)")
    run.add_argument("--host", default="127.0.0.1")
    run.set_defaults(func=cmd_run)

    serve = sub.add_parser("serve", help="serve one service (production)")
    serve.add_argument("service", choices=registry.servable())
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=0)
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run Dramatiq workers")
    # One by default: a deployment says how many (kgi run takes a process per core).
    worker.add_argument("--processes", type=int, default=1)
    worker.add_argument("--threads", type=int, default=DEFAULT_WORKER_THREADS)
    worker.set_defaults(func=cmd_worker)

    sub.add_parser("scheduler", help="run the scheduler").set_defaults(func=cmd_scheduler)

    sub.add_parser("migrate", help="migrate all databases").set_defaults(func=cmd_migrate)

    # These two only read the registry: no settings, no broker (the proxy-config
    # container has neither secrets nor Redis).
    sub.add_parser("parts", help="the parts with pages, one per line").set_defaults(
        func=cmd_parts, setup=False
    )

    proxy = sub.add_parser(
        "proxy-config", help="the nginx configuration in front of the services (production)"
    )
    proxy.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="NAME=http://HOST:PORT",
        help="where each part's `kgi serve` listens; one each for "
        + ", ".join(registry.servable()),
    )
    proxy.add_argument("--listen", default="80", help="nginx's listen parameter (default 80)")
    proxy.add_argument("--cache-dir", default=None, help="where nginx keeps cached feeds")
    proxy.add_argument(
        "--standalone",
        metavar="DIR",
        default=None,
        help="a whole nginx.conf running in the foreground with its files in DIR",
    )
    proxy.add_argument(
        "--server-name", default=None, help="the site's host name (beside other sites)"
    )
    proxy.add_argument(
        "--front",
        metavar="ADDRESS",
        default=None,
        help="IP address of a TLS terminator in front of nginx, believed for the client",
    )
    proxy.add_argument(
        "--resolver",
        metavar="ADDRESS",
        default=None,
        help="DNS server to look the upstreams up at run time (Compose: 127.0.0.11)",
    )
    proxy.add_argument("--output", "-o", default=None, help="write here instead of stdout")
    proxy.set_defaults(func=cmd_proxy_config, setup=False)

    users = sub.add_parser("users", help="editor accounts").add_subparsers(
        dest="action", required=True
    )
    add = users.add_parser("add", help="create an account or reset its password")
    add.add_argument("email")
    add.add_argument("--role", choices=["editor", "admin"], default="editor")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add.set_defaults(func=cmd_users_add)
    remove = users.add_parser("remove", help="delete an account and end its sessions")
    remove.add_argument("email")
    remove.set_defaults(func=cmd_users_remove)
    registry.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Every command may send (issues send wakes the senders) or make links.
    if getattr(args, "setup", True):
        registry.setup()
    return int(args.func(args) or 0)
