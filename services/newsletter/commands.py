"""``kgi issues create|test|send|status|pause|resume|cancel``: issues on the command line."""

from __future__ import annotations

import argparse
import sys

from services.newsletter.service import SERVICE


def cmd_issues(args: argparse.Namespace) -> int:
    """kgi issues create|test|send|status|pause|resume|cancel."""
    from datetime import datetime

    from services.newsletter import compose, dispatch, render
    from shared.errors import KgiError

    SERVICE.migrate()
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
            render.send_test(args.id, args.to, actor)
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


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this service's ``kgi`` subcommands (see kgi.registry.add_commands)."""
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
