"""The feeds service's part of the admin dashboard: what waits for an editor's review
(items submitted, and edits of published items), and partner sources whose last fetch
failed."""

from __future__ import annotations

from starlette.requests import Request

from services.feeds import listing, partner_sources, revisions
from services.feeds.store import PENDING
from shared.i18n import request_language
from shared.service import PageSection
from shared.web.templates import render_text


def dashboard_sections(request: Request) -> list[PageSection]:
    """Items and edits awaiting review, and partner sources with errors."""
    under_review = revisions.items_under_review()
    waiting = [
        item for item in listing.editor_items() if item.state == PENDING or item.id in under_review
    ]
    failing = [s for s in partner_sources.list_all() if s.last_status == "error"]
    html = render_text(
        "feeds/_dashboard.html",
        request_language(request),
        waiting=waiting,
        under_review=under_review,
        failing=failing,
    )
    return [PageSection(30, html)]
