"""``kgi subscribers import|export`` (subscriber lists) and ``kgi inbound`` (mail that
comes back: bounces, complaints, mailto unsubscribes)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from services.subscribers.service import SERVICE
from shared.process_logging import setup_logging


def cmd_subscribers_import(args: argparse.Namespace) -> int:
    from services.subscribers.transfer import ImportRefused, import_csv
    from shared.spreadsheets import decode_csv

    SERVICE.migrate()
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

    SERVICE.migrate()
    sys.stdout.write(export_csv(args.status))
    return 0


#: Seconds between two looks into the hosted bounce mailbox (KGI_BOUNCE_MAILBOX_URL).
MAILBOX_POLL_SECONDS = 60


def cmd_inbound(args: argparse.Namespace) -> int:
    """Receive bounces, complaints and mailto unsubscribes: an SMTP (or LMTP) server for
    the site's MTA, and the hosted bounce mailbox polled when one is configured."""
    from services.subscribers.inbound import InboundServer, poll_bounce_mailbox
    from shared.config import get_settings
    from shared.mail.mailbox import MailboxUnavailable

    setup_logging()
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


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this service's ``kgi`` subcommands (see kgi.registry.add_commands)."""
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

    inbound = sub.add_parser(
        "inbound", help="receive bounces, complaints and mailto unsubscribes (SMTP/LMTP)"
    )
    inbound.add_argument("--host", help="default: KGI_INBOUND_HOST (127.0.0.1)")
    inbound.add_argument("--port", type=int, default=0, help="default: KGI_INBOUND_PORT (8026)")
    inbound.add_argument("--lmtp", action="store_true", help="speak LMTP instead of SMTP")
    inbound.set_defaults(func=cmd_inbound)
