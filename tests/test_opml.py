"""OPML import and export of partner sources: what feed readers write is read, what we
write is read by a parser we did not write (listparser), an export makes the same
sources elsewhere, hostile files are refused with a clear message and add nothing, and
200 sources go in with one upload."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import listparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.feeds import opml, partner_sources
from services.feeds.partner_sources import ADDED, REFUSED, SKIPPED, SourceDefinition
from services.feeds.store import Source
from shared.database import utcnow
from shared.sanitize import plain_text
from shared.web.paths import path_for
from tests.browser import WIDTHS, chromium, horizontal_overflow, page_as, wcag_violations
from tests.conftest import csrf_of, login, run_kgi

FIXTURE = Path(__file__).parent / "fixtures" / "opml" / "feed-reader-export.opml"

#: An entity that would read a local file into the document (XXE).
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<opml version="2.0"><body><outline text="&secret;" xmlUrl="https://x.example.org/feed"/></body></opml>
"""

#: Entities that grow a few hundred bytes into gigabytes ("billion laughs").
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE opml [
 <!ENTITY a "lollollollollollollollollollol">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
]>
<opml version="2.0"><body><outline text="&f;" xmlUrl="https://x.example.org/feed"/></body></opml>
"""


def opml_of(urls: list[str]) -> bytes:
    outlines = "".join(
        f'<outline type="rss" text="Quelle {n}" xmlUrl="{url}"/>' for n, url in enumerate(urls)
    )
    return f'<?xml version="1.0"?><opml version="1.0"><body>{outlines}</body></opml>'.encode()


def upload(client: httpx.Client, data: bytes, name: str = "sources.opml") -> httpx.Response:
    page = client.get(path_for("feeds:admin_sources"))
    return client.post(
        path_for("feeds:admin_sources_opml"),
        data={"csrf_token": csrf_of(page.text)},
        files={"file": (name, data, "text/x-opml")},
    )


def outcomes_on(page: str) -> list[str]:
    return re.findall(r'<tr data-outcome="(\w+)">', page)


def test_an_admin_imports_a_feed_readers_export(site: str) -> None:
    admin = login(site, "opml-admin@example.org", "admin")
    admin.get(path_for("portal:home") + "?lang=en")  # the reasons below in English
    response = upload(admin, FIXTURE.read_bytes())
    assert response.status_code == 200
    # Five feeds in the file: three new, the second IJAB one a duplicate, one refused.
    assert outcomes_on(response.text) == [ADDED, ADDED, ADDED, SKIPPED, REFUSED]
    assert "must start with http:// or https://" in response.text
    by_url = {source.url: source for source in partner_sources.list_all()}
    ijab = by_url["https://ijab.example.org/feed.xml"]
    assert (ijab.name, ijab.language, ijab.kind) == ("IJAB – Fachstelle", "de", "feed")
    assert by_url["https://partner.example.org/atom"].name == "Städtepartnerschaften & Austausch"
    assert by_url["https://partner.example.org/atom"].language == "en"
    assert by_url["https://jfe.example.org/rss"].name == "Jugend für Europa"
    assert "https://page.example.org/" not in by_url  # a link is no feed
    # The same file again changes nothing: every feed is a source already.
    again = upload(admin, FIXTURE.read_bytes())
    assert outcomes_on(again.text) == [SKIPPED, SKIPPED, SKIPPED, SKIPPED, REFUSED]
    assert len(partner_sources.list_all()) == len(by_url)


def test_editors_export_but_only_admins_import(site: str) -> None:
    editor = login(site, "opml-editor@example.org", "editor")
    assert editor.get(path_for("feeds:admin_sources_opml")).status_code == 200
    page = editor.get(path_for("feeds:admin_sources"))
    assert 'enctype="multipart/form-data"' not in page.text  # no import form for editors
    refused = editor.post(
        path_for("feeds:admin_sources_opml"),
        data={"csrf_token": csrf_of(page.text)},
        files={"file": ("s.opml", opml_of(["https://e.example.org/feed"]), "text/x-opml")},
    )
    assert refused.status_code == 403
    assert partner_sources.list_all() == []
    anonymous = httpx.get(site + path_for("feeds:admin_sources_opml"))
    assert anonymous.status_code == 303


def test_the_export_is_read_by_listparser_and_makes_the_same_sources_again(site: str) -> None:
    partner_sources.add_source(
        "https://verband.example.org/feed",
        'Verband "Jugend" & Co',
        language="en",
        interval_minutes=90,
    )
    selectors = {"item": "article", "title": "h2 a", "date": "time", "summary": "p"}
    partner_sources.add_source("https://kommune.example.org/aktuelles", "Kommune", selectors)
    editor = login(site, "opml-export@example.org", "editor")
    response = editor.get(path_for("feeds:admin_sources_opml"))
    assert response.headers["content-type"].startswith("text/x-opml")
    assert response.headers["content-disposition"] == 'attachment; filename="kgi-sources.opml"'
    parsed = listparser.parse(response.content)
    assert not parsed.bozo, parsed.bozo_exception
    assert parsed.meta.title == "KGI – Partnerquellen"
    assert [(feed.url, feed.title) for feed in parsed.feeds] == [
        ("https://verband.example.org/feed", 'Verband "Jugend" & Co')
    ]
    # Our own reader gets back every source, the page with its selectors.
    before = {s.url: s for s in partner_sources.list_all()}
    for source in before.values():
        partner_sources.delete_source(source.id)
    report = partner_sources.add_sources(opml.read_opml(response.content))
    assert [row.outcome for row in report.outcomes] == [ADDED, ADDED]
    after = {s.url: s for s in partner_sources.list_all()}
    fields = ("name", "kind", "selectors", "language", "interval_minutes")
    for url, source in before.items():
        assert [getattr(after[url], f) for f in fields] == [getattr(source, f) for f in fields]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (XXE, "document type"),
        (LAUGHS, "document type"),
        (b"not xml at all", "not well-formed XML"),
        (b"<html><body><a href='https://x.example.org/feed'>feed</a></body></html>", "not an OPML"),
        (b'<opml version="2.0"><body><outline text="Ordner"/></body></opml>', "no feeds"),
        (
            opml_of([f"https://x{n}.example.org/" for n in range(opml.MAX_OUTLINES + 1)]),
            "more than",
        ),
        (b"<opml>" + b" " * opml.MAX_OPML_BYTES + b"</opml>", "larger than"),
    ],
    ids=["xxe", "billion-laughs", "not-xml", "html", "no-feeds", "too-many", "too-large"],
)
def test_hostile_or_wrong_files_are_refused_with_a_clear_message(
    site: str, data: bytes, message: str
) -> None:
    with pytest.raises(opml.InvalidOpml, match=message):
        opml.read_opml(data)
    admin = login(site, f"opml-{len(data)}@example.org", "admin")
    admin.get(path_for("portal:home") + "?lang=en")
    response = upload(admin, data)
    assert response.status_code == 422
    assert message.split()[0] in response.text
    assert partner_sources.list_all() == []
    assert "root:" not in response.text  # nothing of /etc/passwd, ever


def test_two_hundred_sources_in_one_upload(site: str) -> None:
    urls = [f"https://quelle{n}.example.org/feed.xml" for n in range(200)]
    admin = login(site, "opml-many@example.org", "admin")
    started = time.monotonic()
    response = upload(admin, opml_of(urls))
    elapsed = time.monotonic() - started
    assert outcomes_on(response.text) == [ADDED] * 200
    assert {s.url for s in partner_sources.list_all()} == set(urls)
    print(f"\n200 sources imported in {elapsed:.2f} s (one upload)")


def test_the_command_line_imports_and_exports(tmp_path: Path) -> None:
    imported = run_kgi("sources", "import", str(FIXTURE))
    assert imported.returncode == 0, imported.stderr
    assert "5 feeds in the file: 3 added, 1 skipped, 1 refused." in imported.stdout
    assert "javascript:alert(1)" in imported.stdout
    out = tmp_path / "export.opml"
    exported = run_kgi("sources", "export", "--output", str(out))
    assert exported.returncode == 0, exported.stderr
    assert {f.url for f in listparser.parse(out.read_bytes()).feeds} == {
        "https://ijab.example.org/feed.xml",
        "https://jfe.example.org/rss",
        "https://partner.example.org/atom",
    }
    broken = tmp_path / "broken.opml"
    broken.write_bytes(XXE)
    refused = run_kgi("sources", "import", str(broken))
    assert refused.returncode == 1 and "document type" in refused.stderr


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=300), interval=st.integers(min_value=5, max_value=1440))
def test_any_name_survives_the_way_out_and_back(name: str, interval: int) -> None:
    """Whatever a source is called (after the cleaning every name gets), the OPML we
    write is well-formed and gives back the same name and interval."""
    stored = plain_text(name, 200) or "example.org"
    source = Source(
        id=1, name=stored, url="https://example.org/feed", kind="feed", selectors=None,
        language=None, paused=False, interval_minutes=interval, etag=None,
        last_modified=None, last_fetch_at=None, next_fetch_at=None, last_status=None,
        last_error=None, failures=0, created_at=utcnow(),
    )  # fmt: skip
    (read,) = opml.read_opml(opml.write_opml([source], "Test", utcnow()))
    assert read == SourceDefinition("https://example.org/feed", stored, None, None, interval)


def test_importing_in_chromium_leaves_an_accessible_page(site: str) -> None:
    """An admin imports the feed reader's file in Chromium: the report is on the page, and
    axe-core finds no WCAG 2.1 AA violation on it at desktop or phone width, nor does the
    page scroll sideways."""
    admin = login(site, "opml-browser@example.org", "admin")
    with chromium() as browser, page_as(browser, site, admin) as (page, violations):
        page.goto(site + path_for("feeds:admin_sources"))
        page.set_input_files("#opml-file", str(FIXTURE))
        page.get_by_role("button", name="Importieren").click()
        page.wait_for_selector("#import-result")
        assert page.locator("tr[data-outcome]").count() == 5
        for name, width in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": 900})
            assert wcag_violations(page) == [], name
            assert horizontal_overflow(page) == 0, name
        assert violations == []
