"""The public archive: which issues it lists, and its RSS and Atom feeds."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from feedgen.feed import FeedGenerator
from starlette.requests import Request

from services.newsletter import store
from services.newsletter.store import SENT, issues
from shared.database import read_connection
from shared.i18n import LANGUAGES, request_language
from shared.service import PageSection
from shared.web.caching import Rendered, RenderingCache, weak_etag
from shared.web.paths import absolute_url_for
from shared.web.templates import render_text

#: The feed formats of the ``newsletter:archive_feed`` route, with their media types.
FEED_MEDIA_TYPES = {"rss": "application/rss+xml", "atom": "application/atom+xml"}

#: Issues in a feed: the newest ones; the archive page lists them all.
FEED_LENGTH = 50

#: ``updated`` of a feed without issues: a fixed date, so its validators stay stable.
EMPTY_ARCHIVE_UPDATED = datetime(2026, 1, 1, tzinfo=UTC)

#: Who the feed is by: RFC 4287 requires an author on an Atom feed whose entries have none.
FEED_AUTHOR = "KGI-Infobrief"


def _archive_version() -> tuple[int, object]:
    """What the archive shows changes exactly when this does: the sent issues and the
    latest change to any of them."""
    with read_connection("newsletter") as conn:
        count, latest = conn.execute(
            sa.select(sa.func.count(), sa.func.max(issues.c.updated_at)).where(
                issues.c.state == SENT
            )
        ).one()
    return count, latest


#: Renderings of the archive (its page, its feeds, its issues) in this process. An
#: issue that is sent (``dispatch.finish_if_done``) is in the archive at once here, and
#: in other processes within the cache's trusted second.
RENDERINGS = RenderingCache(_archive_version)


def sent_issues(language: str | None = None, limit: int | None = None) -> list[store.Issue]:
    """Sent issues, newest first (the newest ``limit`` only, when given); only those in
    ``language`` when it is one of ours."""
    condition = issues.c.state == SENT
    if language in LANGUAGES:
        condition = sa.and_(condition, issues.c.language == language)
    query = sa.select(issues).where(condition).order_by(issues.c.started_at.desc()).limit(limit)
    with read_connection("newsletter") as conn:
        return [store.Issue(**row._mapping) for row in conn.execute(query)]


def build_feed(fmt: str) -> Rendered:
    """The archive feed in ``fmt`` (a key of FEED_MEDIA_TYPES)."""
    sent = sent_issues(limit=FEED_LENGTH)
    updated = max((i.finished_at or i.updated_at for i in sent), default=EMPTY_ARCHIVE_UPDATED)
    feed = FeedGenerator()
    feed.id(absolute_url_for("newsletter:archive"))
    feed.title("KGI-Infobrief – Archiv")
    feed.subtitle("Alle Ausgaben des KGI-Infobriefs")
    feed.author({"name": FEED_AUTHOR, "uri": absolute_url_for("portal:home")})
    feed.link(href=absolute_url_for("newsletter:archive_feed", fmt=fmt), rel="self")
    feed.link(href=absolute_url_for("newsletter:archive"), rel="alternate")
    feed.language("de")
    feed.updated(updated)
    # feedgen stamps RSS with the time of rendering otherwise: the body, and so its
    # ETag, would change on every request.
    feed.lastBuildDate(updated)
    for issue in reversed(sent):
        entry = feed.add_entry()
        url = absolute_url_for("newsletter:archive_issue", id=issue.id)
        entry.id(url)
        entry.guid(url, permalink=True)
        entry.title(issue.subject)
        entry.link(href=url)
        entry.published(issue.started_at)
        entry.updated(issue.finished_at or issue.updated_at)
        entry.summary(issue.preheader or issue.subject)
    body = feed.rss_str(pretty=True) if fmt == "rss" else feed.atom_str(pretty=True)
    return Rendered(body, f"{FEED_MEDIA_TYPES[fmt]}; charset=utf-8", weak_etag(body), updated)


def home_sections(request: Request) -> list[PageSection]:
    """The home page's latest issue: the newest sent, in the visitor's language when
    there is one, else in any."""
    language = request_language(request)
    issue = next(iter(sent_issues(language, limit=1) or sent_issues(limit=1)), None)
    html = render_text("newsletter/_home_latest.html", language, issue=issue)
    return [PageSection(40, html, head=render_text("newsletter/_feedlinks.html", language))]
