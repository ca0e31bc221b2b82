"""The ``kgi`` command line."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.config import Settings

#: Worker threads per worker process: mail sending waits on the network, not the CPU.
DEFAULT_WORKER_THREADS = 8


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's proxy options: believe forwarded headers from KGI_TRUSTED_PROXY only.

    uvicorn would otherwise trust FORWARDED_ALLOW_IPS or, unset, every local address,
    so any process on the machine could make up client IPs."""
    if settings.trusted_proxy is None:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": [settings.trusted_proxy]}


def cmd_run(args: argparse.Namespace) -> int:
    """Everything in one command: private Redis, migrations, mail catcher, worker,
    scheduler and the web site. Ctrl-C stops all of it."""
    import uvicorn

    from kgi.site import create_site
    from shared.config import get_settings
    from shared.database import migrate_all
    from shared.mail.catcher import start_catcher
    from shared.redis_server import RedisServer

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    redis_server = (
        RedisServer(settings.private_redis_dir).start() if settings.private_redis else None
    )
    catcher = None
    children: list[subprocess.Popen[bytes]] = []
    try:
        migrate_all()
        if settings.smtp_url is None:
            catcher = start_catcher(settings.mail_catcher_dir, settings.mail_catcher_port)
        for role in ("worker", "scheduler"):
            children.append(subprocess.Popen([sys.executable, "-m", "kgi", role]))
        print(f"\n  KGI-Infobrief runs at {settings.base_url}/", flush=True)
        if catcher:
            print(f"  Captured mail: {settings.base_url}/dev/mail/\n", flush=True)
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
    from shared.broker import ACTOR_MODULES

    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        # ``module:callable``: each worker process calls it and then uses get_broker(),
        # which setup_broker() has just set (with every actor declared on it).
        "shared.broker:setup_broker",
        *ACTOR_MODULES,
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

    _setup_logging()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    scheduler.run(stop)
    return 0


#: Seconds between two looks into the hosted bounce mailbox (KGI_BOUNCE_MAILBOX_URL).
MAILBOX_POLL_SECONDS = 60


def cmd_inbound(args: argparse.Namespace) -> int:
    """Receive bounces, complaints and mailto unsubscribes: an SMTP (or LMTP) server for
    the site's MTA, and the hosted bounce mailbox polled when one is configured."""
    from services.subscribers.inbound import InboundServer, poll_bounce_mailbox
    from shared.config import get_settings
    from shared.mail.mailbox import MailboxUnavailable

    _setup_logging()
    logger = logging.getLogger("kgi.inbound")
    settings = get_settings()
    if not settings.bounce_address:
        print("KGI_BOUNCE_ADDRESS is not set: no mail can come back to us.", file=sys.stderr)
        return 2
    host = args.host or settings.inbound_host
    port = args.port or settings.inbound_port
    server = InboundServer(host, port, lmtp=args.lmtp)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        print(f"Cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    protocol = "LMTP" if args.lmtp else "SMTP"
    print(
        f"Receiving mail for {settings.bounce_address} by {protocol} on {host}:{port}", flush=True
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.is_set():
            if settings.bounce_mailbox_url:
                try:
                    logger.info(
                        "bounce mailbox: %s", poll_bounce_mailbox(settings.bounce_mailbox_url)
                    )
                except (MailboxUnavailable, ValueError) as exc:
                    logger.warning("bounce mailbox: %s", exc)
            stop.wait(MAILBOX_POLL_SECONDS)
    finally:
        server.stop()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from shared.database import migrate_all

    migrate_all()
    print("All databases are up to date.")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Load the demo news items and conference reports shipped with the project."""
    from services.feeds.demo import load_demo
    from shared.database import migrate

    migrate("feeds")
    print(f"{load_demo()} demo items added.")
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    from shared.accounts.passwords import hash_password
    from shared.accounts.store import save_user
    from shared.database import migrate

    migrate("accounts")
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
    from shared.database import migrate

    migrate("accounts")
    if not remove_user(args.email):
        print(f"There is no account {args.email}.", file=sys.stderr)
        return 1
    print(f"Removed {args.email}; its sessions have ended.")
    return 0


def cmd_subscribers_import(args: argparse.Namespace) -> int:
    from services.subscribers.transfer import ImportRefused, decode_csv, import_csv
    from shared.database import migrate

    migrate("subscribers")
    path = Path(args.file)
    try:
        report = import_csv(decode_csv(path.read_bytes()), path.name)
    except (OSError, ImportRefused) as exc:
        print(f"Import refused: {exc}", file=sys.stderr)
        return 1
    for row in report.rows:
        print(f"line {row.line:>5}  {row.outcome:<8} {row.email or '-'}  {row.reason}".rstrip())
    summary = report.summary
    print(f"\n{summary['added']} added, {summary['merged']} merged, {summary['skipped']} skipped")
    return 0


def cmd_subscribers_export(args: argparse.Namespace) -> int:
    from services.subscribers.transfer import export_csv
    from shared.database import migrate

    migrate("subscribers")
    sys.stdout.write(export_csv(args.status))
    return 0


def cmd_sources_add(args: argparse.Namespace) -> int:
    from services.feeds.aggregate import InvalidSource, add_source
    from shared.database import migrate

    migrate("feeds")
    try:
        source = add_source(args.url, args.name, args.selectors, args.language, args.interval)
    except InvalidSource as exc:
        print(f"Not added: {exc}", file=sys.stderr)
        return 1
    print(f"Added source {source.id}: {source.name} ({source.kind}) {source.url}")
    return 0


def cmd_sources_list(args: argparse.Namespace) -> int:
    from services.feeds.aggregate import list_all
    from shared.database import migrate

    migrate("feeds")
    for s in list_all():
        fetched = s.last_fetch_at.strftime("%Y-%m-%d %H:%M") if s.last_fetch_at else "never"
        state = "paused" if s.paused else (s.last_status or "new")
        counts = f"{s.item_count:>4} items  last {fetched}"
        print(f"{s.id:>4}  {s.kind:<4}  {state:<12} {counts}  {s.name}  {s.url}")
        if s.last_error:
            print(f"      {s.last_error}")
    return 0


def cmd_sources_fetch(args: argparse.Namespace) -> int:
    """Fetch now, in this process (no worker needed): all sources, or the ones named."""
    from services.feeds.aggregate import fetch_source, list_all
    from shared.database import migrate

    migrate("feeds")
    ids = args.ids or [s.id for s in list_all() if not s.paused]
    failed = 0
    for source_id in ids:
        report = fetch_source(source_id, force=True)
        print(
            f"{source_id:>4}  {report.status:<12} {report.new} new, {report.updated} updated"
            + (f"  ({report.message})" if report.message else "")
        )
        failed += report.status == "error"
    return 1 if failed else 0


def cmd_issues(args: argparse.Namespace) -> int:
    """kgi issues create|test|send|status|pause|resume|cancel."""
    from datetime import datetime

    from services.newsletter import compose, dispatch, editor_mails
    from shared.broker import setup_broker
    from shared.database import migrate
    from shared.errors import KgiError

    migrate("newsletter")
    setup_broker()  # send and resume wake the senders (Dramatiq messages)
    actor = "command line"
    try:
        if args.action == "create":
            issue = compose.create_issue(args.language, actor, args.subject)
            since = datetime.fromisoformat(args.since) if args.since else None
            if since is not None and since.tzinfo is None:
                from zoneinfo import ZoneInfo

                since = since.replace(tzinfo=ZoneInfo("Europe/Berlin"))
            added = compose.add_since(issue.id, actor, since)
            print(issue.id)
            print(f"{added} items added", file=sys.stderr)
        elif args.action == "test":
            editor_mails.send_test(args.id, args.to, actor)
            print(f"Test sent to {', '.join(args.to)}.")
        elif args.action == "send":
            count = dispatch.start(args.id, actor)
            print(f"Sending to {count} recipients; follow with: kgi issues status {args.id}")
        elif args.action == "status":
            p = dispatch.progress(args.id)
            eta = f", about {int(p.eta_seconds // 60) + 1} min left" if p.eta_seconds else ""
            counts = f"{p.sent} sent, {p.failed} failed, {p.skipped} skipped"
            print(
                f"{p.state}: {counts}, {p.remaining} remaining of {p.audience} "
                f"({p.percent:.0f}%), {p.rate_per_minute:.0f}/min{eta}"
            )
            if p.pause_reason:
                print(f"paused: {p.pause_reason}")
        elif args.action in ("pause", "resume", "cancel"):
            if args.action == "pause":
                dispatch.pause(args.id, actor, "paused from the command line")
            else:
                getattr(dispatch, args.action)(args.id, actor)
            print(f"Issue {args.id}: {args.action} done.")
    except (KgiError, ValueError) as exc:
        print(f"Not done: {exc}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kgi", description="KGI-Infobrief platform")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the whole system (development default)")
    run.add_argument("--host", default="127.0.0.1")
    run.set_defaults(func=cmd_run)

    serve = sub.add_parser("serve", help="serve one service (production)")
    serve.add_argument("service", choices=["subscribers", "feeds", "newsletter", "portal"])
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=0)
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run Dramatiq workers")
    worker.add_argument("--processes", type=int, default=1)
    worker.add_argument("--threads", type=int, default=DEFAULT_WORKER_THREADS)
    worker.set_defaults(func=cmd_worker)

    sub.add_parser("scheduler", help="run the scheduler").set_defaults(func=cmd_scheduler)

    inbound = sub.add_parser(
        "inbound", help="receive bounces, complaints and mailto unsubscribes (SMTP/LMTP)"
    )
    inbound.add_argument("--host", help="default: KGI_INBOUND_HOST (127.0.0.1)")
    inbound.add_argument("--port", type=int, default=0, help="default: KGI_INBOUND_PORT (8026)")
    inbound.add_argument("--lmtp", action="store_true", help="speak LMTP instead of SMTP")
    inbound.set_defaults(func=cmd_inbound)
    sub.add_parser("migrate", help="migrate all databases").set_defaults(func=cmd_migrate)
    sub.add_parser("demo", help="load demo content").set_defaults(func=cmd_demo)

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

    subs = sub.add_parser("subscribers", help="subscriber lists").add_subparsers(
        dest="action", required=True
    )
    imp = subs.add_parser(
        "import", help="import a CSV file (email,name,language,subscribed_at,consent_source)"
    )
    imp.add_argument("file")
    imp.set_defaults(func=cmd_subscribers_import)
    exp = subs.add_parser("export", help="write all subscribers as CSV to standard output")
    exp.add_argument("--status", choices=["pending", "confirmed", "unsubscribed", "bounced"])
    exp.set_defaults(func=cmd_subscribers_export)

    srcs = sub.add_parser("sources", help="partner sources").add_subparsers(
        dest="action", required=True
    )
    src_add = srcs.add_parser("add", help="add an RSS/Atom feed, or an HTML page with --selectors")
    src_add.add_argument("url")
    src_add.add_argument("--name")
    src_add.add_argument(
        "--selectors",
        help='JSON, e.g. \'{"item": "article", "title": "h2 a", "date": "time", "summary": "p"}\'',
    )
    src_add.add_argument("--language", choices=["de", "en"])
    src_add.add_argument("--interval", type=int, default=30, help="minutes between fetches")
    src_add.set_defaults(func=cmd_sources_add)
    srcs.add_parser("list", help="sources with their last fetch and status").set_defaults(
        func=cmd_sources_list
    )
    src_fetch = srcs.add_parser("fetch", help="fetch now (all sources, or the given ids)")
    src_fetch.add_argument("ids", nargs="*", type=int)
    src_fetch.set_defaults(func=cmd_sources_fetch)

    iss = sub.add_parser("issues", help="newsletter issues").add_subparsers(
        dest="action", required=True
    )
    create = iss.add_parser("create", help="create an issue with everything published since DATE")
    create.add_argument("--language", choices=["de", "en"], default="de")
    create.add_argument("--since", help="ISO date (default: since the last issue went out)")
    create.add_argument("--subject")
    create.set_defaults(func=cmd_issues)
    test = iss.add_parser("test", help="send a test to an address")
    test.add_argument("id", type=int)
    test.add_argument("--to", action="append", required=True)
    test.set_defaults(func=cmd_issues)
    for name, text in (
        ("send", "send to all confirmed subscribers"),
        ("status", "progress of an issue"),
        ("pause", "pause sending"),
        ("resume", "resume sending"),
        ("cancel", "cancel for good"),
    ):
        action = iss.add_parser(name, help=text)
        action.add_argument("id", type=int)
        action.set_defaults(func=cmd_issues)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
