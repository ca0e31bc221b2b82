"""``kgi demo`` and ``kgi sources add|import|export|list|fetch``: content and partner sources."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.feeds.service import SERVICE


def cmd_demo(args: argparse.Namespace) -> int:
    """Load the demo news items and conference reports shipped with the project."""
    from services.feeds.demo import load_demo

    SERVICE.migrate()
    print(f"{load_demo()} demo items added.")
    return 0


def cmd_sources_add(args: argparse.Namespace) -> int:
    from services.feeds.partner_sources import InvalidSource, add_source

    SERVICE.migrate()
    try:
        source = add_source(args.url, args.name, args.selectors, args.language, args.interval)
    except InvalidSource as exc:
        print(f"Not added: {exc}", file=sys.stderr)
        return 1
    print(f"Added source {source.id}: {source.name} ({source.kind}) {source.url}")
    return 0


def cmd_sources_import(args: argparse.Namespace) -> int:
    """Add every feed an OPML file lists, and say per feed what happened."""
    from services.feeds import opml
    from services.feeds.partner_sources import ADDED, REFUSED, SKIPPED, add_sources

    SERVICE.migrate()
    try:
        definitions = opml.read_opml(Path(args.file).read_bytes())
    except (OSError, opml.InvalidOpml) as exc:
        print(f"Not imported: {exc}", file=sys.stderr)
        return 1
    report = add_sources(definitions)
    for row in report.outcomes:
        if row.outcome != ADDED:
            print(f"{row.position:>4}  {row.outcome:<8} {row.url}  ({row.reason})")
    counts = ", ".join(f"{report.count(o)} {o}" for o in (ADDED, SKIPPED, REFUSED))
    print(f"{len(report.outcomes)} feeds in the file: {counts}.")
    return 0


def cmd_sources_export(args: argparse.Namespace) -> int:
    """Write every source as OPML, to a file or to standard output."""
    from services.feeds import opml
    from services.feeds.admin_sources import OPML_TITLE
    from services.feeds.partner_sources import list_all
    from shared.database import utcnow

    SERVICE.migrate()
    data = opml.write_opml(list_all(), OPML_TITLE, utcnow())
    if args.output:
        Path(args.output).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
    return 0


def cmd_sources_list(args: argparse.Namespace) -> int:
    from services.feeds.partner_sources import list_all

    SERVICE.migrate()
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
    from services.feeds.aggregate import fetch_source
    from services.feeds.partner_sources import list_all

    SERVICE.migrate()
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


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this service's ``kgi`` subcommands (see kgi.registry.add_commands)."""
    sub.add_parser("demo", help="load demo content").set_defaults(func=cmd_demo)

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
    src_import = srcs.add_parser("import", help="add every feed of an OPML file")
    src_import.add_argument("file")
    src_import.set_defaults(func=cmd_sources_import)
    src_export = srcs.add_parser("export", help="every source as OPML")
    src_export.add_argument("--output", "-o", help="file to write (default: standard output)")
    src_export.set_defaults(func=cmd_sources_export)
    src_fetch = srcs.add_parser("fetch", help="fetch now (all sources, or the given ids)")
    src_fetch.add_argument("ids", nargs="*", type=int)
    src_fetch.set_defaults(func=cmd_sources_fetch)
