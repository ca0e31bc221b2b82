"""The admin dashboard: each service's figures from its own data. Charts are SVG drawn
on the server with the same figures in a table; the numbers are checked against what the
test made happen; in Chromium the page has no WCAG 2.1 AA violation (axe-core), no
sideways scrolling and no broken image at desktop and phone width."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from services.feeds import aggregate, content, partner_sources
from services.newsletter import dispatch
from services.subscribers import store as subscribers_store
from services.subscribers.store import UNSUBSCRIBED, Context
from shared.database import engine, read_connection
from shared.web.charts import Chart
from shared.web.paths import path_for
from tests.browser import WIDTHS, chromium, horizontal_overflow, page_as, wcag_violations
from tests.conftest import login, wait_for
from tests.test_newsletter import new_issue, state_of, subscribe

SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"


def make_things_happen() -> dict[str, int]:
    """Three subscribers, an issue sent to them, one of them leaving afterwards; an item
    submitted for review; a partner source that cannot be fetched."""
    subscribe(3, prefix="dash")
    issue = new_issue()
    dispatch.start(issue.id, "redaktion@example.org")
    wait_for(lambda: state_of(issue.id) == "sent", timeout=30)
    with read_connection("subscribers") as conn:
        leaving = subscribers_store.find_by_key(conn, "dash0@example.org")
    assert leaving is not None
    with engine("subscribers").begin() as conn:
        subscribers_store.end_subscription(
            conn, leaving.id, UNSUBSCRIBED, Context(source="test"), "unsubscribed"
        )
    item = content.create_item({"title": "Bitte prüfen"}, "editor@example.org")
    content.transition(item.id, "submit", "editor@example.org", "editor")
    source = partner_sources.add_source("https://nowhere.invalid/feed.xml", "Kaputte Quelle")
    assert aggregate.fetch_source(source.id).status == "error"
    return {"issue": issue.id}


def table_after(page: str, caption_id: str) -> str:
    return page[page.index(f'id="{caption_id}"') :].split("</table>")[0]


def test_the_dashboard_shows_what_happened(site: str, worker: object, smtp: object) -> None:
    made = make_things_happen()
    admin = login(site, "dash@example.org", "admin")
    admin.get(path_for("portal:home") + "?lang=en")
    page = admin.get(path_for("portal:admin")).text
    # Subscribers: three confirmed this week, one of them gone: two at the week's end.
    confirmed = table_after(page, "chart-confirmed")
    last_row = re.findall(r"<tr><th scope=\"row\">[^<]+</th><td>(\d+)</td></tr>", confirmed)[-1]
    assert last_row == "2"
    weekly = re.findall(r"<td>(\d+)</td>", table_after(page, "chart-weekly").split("<tbody>")[1])
    # This week (the last row): 3 sign-ups, 3 confirmations, 1 unsubscribe, 0 bounces.
    assert weekly[-4:] == ["3", "3", "1", "0"]
    # The issue: sent to three, none failed, one left within the week.
    row = re.search(rf'<tr data-issue="{made["issue"]}">.*?</tr>', page, re.S)
    assert row is not None
    assert re.findall(r"<td>([^<]*)</td>", row.group(0))[1:] == ["3", "0", "0", "0", "1"]
    # Feeds: the submitted item, the failing source with its error.
    assert "Bitte prüfen" in page and "Kaputte Quelle" in page
    # Every chart is well-formed SVG, without script, hidden from screen readers.
    charts = re.findall(r"<svg .*?</svg>", page, re.S)
    assert len(charts) == 3
    for svg in charts:
        root = etree.fromstring(svg.encode())
        assert root.get("aria-hidden") == "true"
        assert not root.findall(".//{http://www.w3.org/2000/svg}script")


def test_the_dashboard_in_chromium(site: str, worker: object, smtp: object) -> None:
    make_things_happen()
    admin = login(site, "dash-browser@example.org", "editor")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser, page_as(browser, site, admin) as (page, violations):
        page.goto(site + path_for("portal:admin"))
        for name, width in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": 900})
            page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=True)
            assert wcag_violations(page) == [], name
            assert horizontal_overflow(page) == 0, name
            broken = page.evaluate(
                "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).length"
            )
            assert broken == 0, name
        # The table of a chart opens for whoever wants the figures.
        page.get_by_text("Die Zahlen als Tabelle").first.click()
        assert page.locator("#chart-confirmed ~ details table").first.is_visible()
        assert violations == []


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=30),
    kind=st.sampled_from(["bar", "line"]),
)
def test_any_counts_make_a_well_formed_chart_with_whole_marks(values: list[int], kind: str) -> None:
    chart = Chart(
        "c",
        "Figures <&>",
        "Week",
        [f"{n:02d}.01." for n in range(len(values))],
        {"Sign-ups": values},
        kind,
    )
    root = etree.fromstring(str(chart.svg).encode())
    assert root.get("aria-hidden") == "true"
    assert not root.findall(".//{http://www.w3.org/2000/svg}script")
    axis = root.find(".//{*}g[@class='axis y always_show']")
    assert axis is not None
    marks = [float(text.text) for text in axis.iter("{*}text")]
    assert marks and max(marks) >= max(values)
    assert all(mark == int(mark) for mark in marks)
    assert chart.rows()[-1] == (f"{len(values) - 1:02d}.01.", [values[-1]])
