"""The members' map: member municipalities kept in the admin, imported from the CSV files
office staff make, published as a list, a Leaflet map and GeoJSON.

Judged from outside: the GeoJSON by a model of RFC 7946 we did not write
(geojson-pydantic), the page by Chromium (markers drawn from the GeoJSON, tiles from the
tile server the settings name, no CSP complaint) and axe-core (WCAG 2.1 AA at both widths,
in both languages), the import by generated files (hypothesis), every route by the sweep
(tests/test_sweep_routes.py).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from geojson_pydantic import FeatureCollection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.members import store, transfer
from services.members.fields import InvalidMember, parse_member
from shared.web.paths import path_for
from tests.browser import WIDTHS, chromium, horizontal_overflow, page_as, wcag_violations
from tests.conftest import ENV, csrf_of, login, run_kgi, wait_for

EXCEL_FILE = Path(__file__).parent / "fixtures" / "members" / "members-excel.csv"

#: What the fixture's refused rows must say (line: words of the reason).
REFUSED_LINES = {
    8: "swapped",
    9: "outside Germany",
    10: "federal state",
    11: "needs a name",
    12: "same municipality as line 2",
    13: "e-mail",
}


def add_member(name: str, state: str, latitude: str, longitude: str, **more: str) -> int:
    fields = {"name": name, "federal_state": state, "latitude": latitude, "longitude": longitude}
    return store.save(parse_member({**fields, **more}))


def import_file(client: httpx.Client, data: bytes, name: str = "members.csv") -> httpx.Response:
    page = client.get(path_for("members:admin"))
    return client.post(
        path_for("members:admin_csv"),
        data={"csrf_token": csrf_of(page.text)},
        files={"file": (name, data, "text/csv")},
    )


# --- reading what people type ------------------------------------------------------------


def test_fields_take_what_is_meant_and_name_what_cannot_be() -> None:
    member = parse_member(
        {
            "name": "  Neustadt   an der  Weinstraße ",
            "federal_state": "Rhineland-Palatinate",
            "latitude": "49,3539",
            "longitude": " 8.1386 ",
            "website": "www.neustadt.example",
            "email": "Jugend@Neustadt.example",
        }
    )
    assert member.name == "Neustadt an der Weinstraße"
    assert member.federal_state == "RP"
    assert (member.latitude, member.longitude) == (49.3539, 8.1386)
    assert member.website == "https://www.neustadt.example"
    for raw, words in [
        ({"latitude": "9.9", "longitude": "53.5"}, "swapped"),
        ({"latitude": "48.85", "longitude": "2.35"}, "outside Germany"),
        ({"latitude": "nan", "longitude": "10"}, "number of degrees"),
        ({"federal_state": "Bayernland"}, "federal state"),
        ({"website": "javascript:alert(1)"}, "http or https"),
        ({"website": "http://[::1"}, "http or https"),
        ({"email": "kein-mail"}, "e-mail"),
    ]:
        with pytest.raises(InvalidMember, match=words):
            parse_member(
                {"name": "X", "federal_state": "BY", "latitude": "48", "longitude": "11", **raw}
            )


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(transfer.FIELDS), st.text(max_size=60)))
def test_any_text_is_a_member_or_a_clear_refusal(raw: dict[str, str]) -> None:
    try:
        member = parse_member(raw)
    except InvalidMember as exc:
        assert str(exc).endswith(")") or str(exc).endswith(".")
        return
    assert member.name and 47 <= member.latitude <= 55.2 and 5.5 <= member.longitude <= 15.5


# --- import and export ------------------------------------------------------------------


def test_an_excel_file_imports_its_good_rows_and_names_each_bad_one(site: str) -> None:
    admin = login(site)
    response = import_file(admin, EXCEL_FILE.read_bytes(), "Mitglieder.csv")
    assert response.status_code == 200
    assert "6 hinzugefügt, 0 aktualisiert, 0 unverändert, 6 abgelehnt" in response.text
    members = {member.name: member for member in store.all_members()}
    assert set(members) == {
        "Köln",
        "München",
        "Leipzig",
        "Neustadt an der Weinstraße",
        "Neustadt in Holstein",
        "Dresden",
    }
    assert members["Köln"].contact == "Jugendamt, Internationale Jugendarbeit"
    assert (members["Köln"].latitude, members["Köln"].longitude) == (50.9375, 6.9603)
    assert members["München"].federal_state == "BY"
    report = transfer.import_csv(EXCEL_FILE.read_bytes())
    refused = {row.line: row.reason for row in report.rows if row.outcome == transfer.REFUSED}
    assert set(refused) == set(REFUSED_LINES)
    for line, words in REFUSED_LINES.items():
        assert words in refused[line], (line, refused[line])
    # Imported again: nothing added, nothing doubled.
    assert report.count(transfer.ADDED) == 0 and report.count(transfer.UNCHANGED) == 6
    assert len(store.all_members()) == 6


def test_the_export_imports_back_unchanged_and_a_changed_row_updates(site: str) -> None:
    transfer.import_csv(EXCEL_FILE.read_bytes())
    admin = login(site)
    exported = admin.get(path_for("members:admin_csv"))
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 6
    again = transfer.import_csv(exported.content)
    assert again.count(transfer.UNCHANGED) == 6 and again.count(transfer.ADDED) == 0
    rows[0]["contact"] = "Neue Ansprechperson"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    changed = transfer.import_csv(buffer.getvalue().encode())
    assert changed.count(transfer.UPDATED) == 1
    assert len(store.all_members()) == 6


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.lists(st.text(max_size=12), min_size=0, max_size=6),
        max_size=8,
    ),
    st.sampled_from([",", ";", "\t"]),
)
def test_any_file_imports_row_by_row_or_is_refused_whole(
    rows: list[list[str]], separator: str
) -> None:
    """Generated CSV under a valid header: every row is reported, the added ones are
    stored, and nothing else happens (or the whole file is refused with a reason)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=separator)
    writer.writerow(["name", "federal_state", "latitude", "longitude", "contact"])
    writer.writerows(rows)
    before = len(store.all_members())
    try:
        report = transfer.import_csv(buffer.getvalue().encode())
    except transfer.ImportRefused:
        assert len(store.all_members()) == before
        return
    assert len(store.all_members()) == before + report.count(transfer.ADDED)
    assert all(row.reason for row in report.rows if row.outcome == transfer.REFUSED)


def test_broken_files_are_refused_whole_with_a_reason(site: str) -> None:
    admin = login(site)
    for data, words in [
        (b"Ort;Land\nA;B\n", "needs a header row"),
        (b"name,federal_state,latitude,longitude\n" + b"X,BY,48,11\n" * 5001, "more than 5000"),
        (b'name,federal_state,latitude,longitude\n"X' + b"y" * 200_000 + b"\n", "cannot be read"),
    ]:
        response = import_file(admin, data)
        assert response.status_code == 422
        assert words in response.text
    assert store.all_members() == []
    empty = admin.post(
        path_for("members:admin_csv"),
        data={"csrf_token": csrf_of(admin.get(path_for("members:admin")).text)},
    )
    assert empty.status_code == 422 and "CSV" in empty.text


def test_editors_keep_members_and_admins_import_and_remove(site: str) -> None:
    editor = login(site, "redaktion@example.org", role="editor")
    page = editor.get(path_for("members:admin_new"))
    assert page.status_code == 200 and 'name="latitude"' in page.text
    fields = {"name": "Kassel", "federal_state": "HE", "latitude": "51.31", "longitude": "9.48"}
    saved = editor.post(
        path_for("members:admin_new"), data={**fields, "csrf_token": csrf_of(page.text)}
    )
    assert saved.status_code == 303
    member_id = store.all_members()[0].id
    again = editor.post(
        path_for("members:admin_new"), data={**fields, "csrf_token": csrf_of(page.text)}
    )
    assert again.status_code == 422 and "gibt es in diesem Bundesland schon" in again.text
    wrong = editor.post(
        path_for("members:admin_member", id=member_id),
        data={**fields, "latitude": "9.48", "longitude": "51.31", "csrf_token": csrf_of(page.text)},
    )
    assert wrong.status_code == 422 and "vertauscht" in wrong.text  # German by default
    assert 'value="9.48"' in wrong.text  # what was typed stays in the form
    assert import_file(editor, EXCEL_FILE.read_bytes()).status_code == 403
    delete = path_for("members:admin_delete", id=member_id)
    assert editor.post(delete, data={"csrf_token": csrf_of(page.text)}).status_code == 403
    admin = login(site)
    token = csrf_of(admin.get(path_for("members:admin")).text)
    assert admin.post(delete, data={"csrf_token": token}).status_code == 303
    assert admin.post(delete, data={"csrf_token": token}).status_code == 404
    assert store.all_members() == []
    anonymous = httpx.get(site + path_for("members:admin"), follow_redirects=False)
    assert anonymous.status_code == 303


def test_the_command_line_imports_and_exports(tmp_path: Path) -> None:
    result = run_kgi("members", "import", str(EXCEL_FILE))
    assert result.returncode == 0, result.stderr
    assert "6 added" in result.stdout and "line     8  refused" in result.stdout
    target = tmp_path / "out.csv"
    assert run_kgi("members", "export", "-o", str(target)).returncode == 0
    assert target.read_text().startswith("name,federal_state,latitude,longitude")
    refused = run_kgi("members", "import", str(tmp_path / "missing.csv"))
    assert refused.returncode == 1 and "Import refused" in refused.stderr


# --- the public side --------------------------------------------------------------------


def test_the_geojson_is_rfc_7946_and_revalidates(site: str) -> None:
    transfer.import_csv(EXCEL_FILE.read_bytes())
    response = httpx.get(site + path_for("members:geojson"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    assert response.headers["access-control-allow-origin"] == "*"
    collection = FeatureCollection.model_validate_json(response.content)
    assert len(collection.features) == 6
    cologne = next(f for f in collection.features if f.properties["name"] == "Köln")
    assert tuple(cologne.geometry.coordinates) == (6.9603, 50.9375)  # longitude first
    assert cologne.properties["federal_state_name"] == "Nordrhein-Westfalen"
    again = httpx.get(
        site + path_for("members:geojson"),
        headers={"If-None-Match": response.headers["etag"]},
    )
    assert again.status_code == 304
    saxony = httpx.get(site + path_for("members:geojson") + "?state=SN").json()
    assert sorted(f["properties"]["name"] for f in saxony["features"]) == ["Dresden", "Leipzig"]


def test_the_list_works_without_javascript_and_filters_by_state(site: str) -> None:
    transfer.import_csv(EXCEL_FILE.read_bytes())
    page = httpx.get(site + path_for("members:map") + "?state=Sachsen&lang=en")
    assert page.status_code == 200
    assert "Dresden" in page.text and "Leipzig" in page.text and "Köln" not in page.text
    assert '<option value="SN" selected>Saxony</option>' in page.text
    plain = httpx.get(site + path_for("members:map"))  # a reader's visit leaves no cookie
    assert "set-cookie" not in {name.lower() for name in plain.headers}
    home = httpx.get(site + path_for("portal:home"))
    assert "6 Kommunen in 5 Bundesländern" in home.text
    assert path_for("members:map") in home.text


@pytest.mark.parametrize("language", ["de", "en"])
def test_the_map_in_chromium(site: str, language: str) -> None:
    transfer.import_csv(EXCEL_FILE.read_bytes())
    ENV.tiles.requests.clear()
    url = f"{site}{path_for('members:map')}?lang={language}"
    with chromium() as browser:
        with page_as(browser, site, None) as (page, csp):
            page.goto(url)
            page.wait_for_selector("#member-map[data-markers='6']")
            # Markers and clusters from the GeoJSON; tiles from the server the settings name.
            drawn = page.locator(".leaflet-marker-icon").count()
            assert 1 <= drawn <= 6
            wait_for(lambda: ENV.tiles.requests, message="tile requests")
            referers = {referer for _, referer in ENV.tiles.requests}
            assert referers == {site + "/"}, referers  # the origin only, never the path
            assert_accessible(page, "map")
            # A single marker opens its popup with the name and a way into the list.
            page.set_viewport_size({"width": 1280, "height": 900})
            marker = page.locator(".leaflet-marker-icon:not(.marker-cluster)").first
            name = marker.get_attribute("alt", timeout=5000)
            marker.dispatch_event("click", timeout=5000)
            popup = page.locator(".leaflet-popup-content")
            assert name and name in popup.inner_text(timeout=5000)
            assert popup.locator("a[href^='#member-']").count() == 1
            assert csp == []
        with page_as(browser, site, None, java_script_enabled=False) as (page, _):
            page.goto(url)
            assert page.locator("#member-map").is_hidden()
            assert page.locator("ul.members li").count() == 6
            # (axe-core is a script: it judged this list above, on the page with JavaScript.)


def assert_accessible(page: Any, name: str) -> None:
    """No WCAG 2.1 AA violation and no sideways scrolling at either width."""
    for width_name, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        assert wcag_violations(page) == [], (name, width_name)
        assert horizontal_overflow(page) == 0, (name, width_name)


def test_the_admin_pages_pass_axe(site: str) -> None:
    admin = login(site)
    with chromium() as browser, page_as(browser, site, admin) as (page, csp):
        page.goto(site + path_for("members:admin"))
        page.set_input_files("#csv-file", str(EXCEL_FILE))
        page.get_by_role("button", name="Importieren").click()
        page.wait_for_selector("#import-result")
        assert_accessible(page, "list with an import report")
        page.goto(site + path_for("members:admin_member", id=store.all_members()[0].id))
        assert_accessible(page, "edit")
        # An error in the form is announced and keeps what was typed.
        page.fill("#latitude", "9,48")
        page.fill("#longitude", "51,31")
        page.get_by_role("button", name="Speichern").click()
        assert "vertauscht" in page.locator("[role=alert]").inner_text()
        assert wcag_violations(page) == []
        assert csp == []
