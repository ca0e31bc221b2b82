"""``kgi subscribers import|export``: subscriber lists on the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.subscribers.service import SERVICE


def cmd_subscribers_import(args: argparse.Namespace) -> int:
    from services.subscribers.transfer import ImportRefused, decode_csv, import_csv

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
