"""The subscribers' figures on the admin dashboard: confirmed subscribers over time, and
per week the sign-ups, confirmations, unsubscribes and bounces.

Counted from the subscribers' own rows, nothing else: no reader is tracked (opens and
clicks are never recorded). An erased subscriber leaves no row and so no figure.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from starlette.requests import Request

from services.subscribers.store import subscribers
from shared.database import read_connection, utcnow
from shared.i18n import request_language, translate
from shared.service import PageSection
from shared.web.charts import Chart
from shared.web.templates import render_text

#: Weeks the chart of confirmed subscribers looks back (half a year).
WEEKS_OVER_TIME = 26

#: Weeks the chart of what happened per week looks back (a quarter).
WEEKS_OF_EVENTS = 12


def week_starts(today: date, count: int) -> list[date]:
    """The Mondays of the last ``count`` weeks up to this one, the oldest first."""
    this_monday = today - timedelta(days=today.weekday())
    return [this_monday - timedelta(weeks=n) for n in range(count - 1, -1, -1)]


def _moment(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


@dataclass(frozen=True)
class WeeklyFigures:
    """The figures of the charts, one value per week."""

    weeks: list[date]
    signups: list[int]
    confirmations: list[int]
    unsubscribes: list[int]
    bounces: list[int]


def confirmed_at_week_ends(weeks: list[date]) -> list[int]:
    """How many subscribers were confirmed (and had neither left nor bounced) at the end
    of each week, or now for this week."""
    with read_connection("subscribers") as conn:
        rows = conn.execute(
            sa.select(
                subscribers.c.confirmed_at, subscribers.c.unsubscribed_at, subscribers.c.bounced_at
            ).where(subscribers.c.confirmed_at.is_not(None))
        ).all()
    joined = sorted(row.confirmed_at for row in rows)
    left = sorted(
        min(moment for moment in (row.unsubscribed_at, row.bounced_at) if moment is not None)
        for row in rows
        if row.unsubscribed_at is not None or row.bounced_at is not None
    )
    ends = [min(_moment(week + timedelta(weeks=1)), utcnow()) for week in weeks]
    return [bisect_right(joined, end) - bisect_right(left, end) for end in ends]


def weekly_figures(weeks: list[date]) -> WeeklyFigures:
    """Sign-ups (new addresses), confirmations, unsubscribes and bounces per week."""
    start = _moment(weeks[0])
    columns = {
        "signups": subscribers.c.created_at,
        "confirmations": subscribers.c.confirmed_at,
        "unsubscribes": subscribers.c.unsubscribed_at,
        "bounces": subscribers.c.bounced_at,
    }
    counts: dict[str, list[int]] = {}
    with read_connection("subscribers") as conn:
        for name, column in columns.items():
            per_week = [0] * len(weeks)
            for (moment,) in conn.execute(sa.select(column).where(column >= start)):
                per_week[min((moment - start).days // 7, len(weeks) - 1)] += 1
            counts[name] = per_week
    return WeeklyFigures(weeks=weeks, **counts)


def dashboard_sections(request: Request) -> list[PageSection]:
    """The subscribers' charts for the admin dashboard."""
    language = request_language(request)

    def _(text: str) -> str:
        return translate(text, language)

    today = utcnow().date()
    over_time = week_starts(today, WEEKS_OVER_TIME)
    figures = weekly_figures(week_starts(today, WEEKS_OF_EVENTS))
    charts = [
        Chart(
            "chart-confirmed",
            _("Confirmed subscribers at the end of each week"),
            _("Week from"),
            [week.strftime("%d.%m.") for week in over_time],
            {_("Confirmed subscribers"): confirmed_at_week_ends(over_time)},
            kind="line",
        ),
        Chart(
            "chart-weekly",
            _("Sign-ups, confirmations, unsubscribes and bounces per week"),
            _("Week from"),
            [week.strftime("%d.%m.") for week in figures.weeks],
            {
                _("Sign-ups"): figures.signups,
                _("Confirmations"): figures.confirmations,
                _("Unsubscribes"): figures.unsubscribes,
                _("Bounces"): figures.bounces,
            },
        ),
    ]
    html = render_text("subscribers/_dashboard.html", language, charts=charts)
    return [PageSection(10, html)]
