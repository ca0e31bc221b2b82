"""``kgi members import|export|list``: the member municipalities from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.members.service import SERVICE


def cmd_members_import(args: argparse.Namespace) -> int:
    """Add and update members from a CSV file, and say per row what happened."""
    from services.members import transfer

    SERVICE.migrate()
    try:
        report = transfer.import_csv(Path(args.file).read_bytes())
    except (OSError, transfer.ImportRefused) as exc:
        print(f"Import refused: {exc}", file=sys.stderr)
        return 1
    for row in report.rows:
        if row.outcome == transfer.REFUSED:
            print(f"line {row.line:>5}  refused  {row.name or '-'}  {row.reason}")
    counts = ", ".join(f"{report.count(o)} {o}" for o in transfer.OUTCOMES)
    print(f"{len(report.rows)} rows: {counts}.")
    return 0


def cmd_members_export(args: argparse.Namespace) -> int:
    """Write every member as CSV, to a file or to standard output."""
    from services.members import transfer

    SERVICE.migrate()
    text = transfer.export_csv()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_members_list(args: argparse.Namespace) -> int:
    """One line per member."""
    from services.members.store import all_members

    SERVICE.migrate()
    for member in all_members():
        place = f"{member.latitude:9.5f} {member.longitude:9.5f}"
        print(f"{member.id:>4}  {member.federal_state}  {place}  {member.name}")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this service's ``kgi`` subcommands (see kgi.registry.add_commands)."""
    members = sub.add_parser("members", help="member municipalities (the map)").add_subparsers(
        dest="action", required=True
    )
    imports = members.add_parser("import", help="add and update members from a CSV file")
    imports.add_argument("file")
    imports.set_defaults(func=cmd_members_import)
    exports = members.add_parser("export", help="every member as CSV")
    exports.add_argument("-o", "--output", help="file to write (default: standard output)")
    exports.set_defaults(func=cmd_members_export)
    members.add_parser("list", help="one line per member").set_defaults(func=cmd_members_list)
