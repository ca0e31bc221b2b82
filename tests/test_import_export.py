"""CSV import and export: the fixture list with all its awkward rows, from the admin page
and from ``kgi subscribers``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import pytest

from services.subscribers import store, transfer
from shared.database import engine
from shared.spreadsheets import decode_csv
from tests.conftest import csrf_of, login, run_kgi
from tests.test_signup_flow import subscriber

FIXTURE = Path(__file__).parent / "fixtures" / "subscribers" / "import.csv"


def outcomes(report: transfer.ImportReport) -> dict[int, tuple[str, str]]:
    return {row.line: (row.outcome, row.reason) for row in report.rows}


def test_fixture_import_handles_every_case():
    report = transfer.import_csv(decode_csv(FIXTURE.read_bytes()), "import.csv")
    result = outcomes(report)
    assert result[2][0] == "added"  # anna
    assert result[3][0] == "added"  # mixed case
    assert result[4][0] == "added"  # jane
    assert result[5] == ("merged", "duplicate of line 2")
    assert result[6][0] == "skipped" and "valid" in result[6][1]
    assert result[7][0] == "added"  # quoted name with comma and apostrophe
    assert result[8][0] == "added"  # internationalised domain
    assert result[9] == ("skipped", "empty e-mail address")
    assert report.summary == {"added": 5, "merged": 1, "skipped": 2}

    obrien = subscriber("o'brien+kgi@example.ie")
    assert (
        obrien.name == "O'Brien, Seán" and obrien.language == "en" and obrien.status == "confirmed"
    )
    assert (
        subscriber("jugendamt@beispielstadt.example.de").email
        == "Jugendamt@beispielstadt.example.de"
    )
    idn = subscriber("zoe@xn--exmple-cua.de")
    assert idn.email == "zoe@exämple.de"
    assert idn.confirmed_at.isoformat() == "2025-05-05T05:05:05+00:00"
    with engine("subscribers").connect() as conn:
        event = store.history(conn, idn.id)[0]
    assert (
        event.action == "import"
        and "import.csv" in event.source
        and "website (legacy list)" in event.source
    )

    # Importing the same file again adds no one.
    again = transfer.import_csv(decode_csv(FIXTURE.read_bytes()), "import.csv")
    assert again.summary["added"] == 0
    with engine("subscribers").connect() as conn:
        assert store.counts_by_status(conn)["confirmed"] == 5


def test_import_never_resubscribes_the_unsubscribed():
    transfer.import_csv("email,consent_source\ngone@example.org,fair 2024\n", "a.csv")
    with engine("subscribers").begin() as conn:
        row = store.find_by_key(conn, "gone@example.org")
        store.update(conn, row.id, status="unsubscribed")
    report = transfer.import_csv("email,consent_source\ngone@example.org,fair 2024\n", "b.csv")
    assert report.rows[0].outcome == "skipped" and "unsubscribed" in report.rows[0].reason
    assert subscriber("gone@example.org").status == "unsubscribed"


def test_confirmed_import_needs_a_consent_source():
    with pytest.raises(transfer.ImportRefused, match="consent_source"):
        transfer.import_csv("email,name\na@example.org,A\n", "no-consent.csv")
    report = transfer.import_csv("email,consent_source\na@example.org,\n", "blank.csv")
    assert report.rows[0] == transfer.RowOutcome(
        2, "a@example.org", "skipped", "no consent source given"
    )


def test_export_lists_everyone_and_defuses_formulas():
    transfer.import_csv(
        'email,name,consent_source\nf@example.org,"=HYPERLINK(""x"")",fair\n', "f.csv"
    )
    rows = list(csv.DictReader(io.StringIO(transfer.export_csv())))
    assert rows[0]["email"] == "f@example.org"
    assert rows[0]["name"].startswith("'=")


def test_command_line_import_and_export():
    result = run_kgi("subscribers", "import", str(FIXTURE))
    assert result.returncode == 0, result.stderr
    assert "5 added, 1 merged, 2 skipped" in result.stdout
    assert "line     9  skipped  -  empty e-mail address" in result.stdout
    exported = run_kgi("subscribers", "export", "--status", "confirmed")
    assert exported.returncode == 0
    assert len(list(csv.DictReader(io.StringIO(exported.stdout)))) == 5
    missing = run_kgi("subscribers", "import", "/nonexistent.csv")
    assert missing.returncode == 1 and "Import refused" in missing.stderr


def test_admin_needs_login_and_shows_counts_search_history(site):
    anonymous = httpx.get(f"{site}/subscribers/admin/", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=")
    assert httpx.get(f"{site}/admin", follow_redirects=False).status_code == 303

    transfer.import_csv(decode_csv(FIXTURE.read_bytes()), "import.csv")
    client = login(site)
    listing = client.get("/subscribers/admin/")
    assert 'data-count="confirmed">5<' in listing.text
    found = client.get("/subscribers/admin/?q=smith")
    assert "j.smith@example.org" in found.text and "anna.mueller" not in found.text
    row = subscriber("j.smith@example.org")
    detail = client.get(f"/subscribers/admin/{row.id}")
    assert "website (legacy list)" in detail.text
    exported = client.get("/subscribers/admin/export.csv")
    assert (
        exported.headers["content-type"].startswith("text/csv")
        and "zoe@exämple.de" in exported.text
    )


def test_admin_import_upload_reports_per_row(site):
    client = login(site)
    page = client.get("/subscribers/admin/import")
    response = client.post(
        "/subscribers/admin/import",
        data={"csrf_token": csrf_of(page.text)},
        files={"file": ("import.csv", FIXTURE.read_bytes(), "text/csv")},
    )
    assert response.status_code == 200
    assert "duplicate of line 2" in response.text and "empty e-mail address" in response.text
    broken = client.post(
        "/subscribers/admin/import",
        data={"csrf_token": csrf_of(page.text)},
        files={"file": ("x.csv", b"name\nfoo\n", "text/csv")},
    )
    assert broken.status_code == 422 and "email" in broken.text


def test_editors_cannot_import_but_can_read(site):
    client = login(site, "plain.editor@example.org", role="editor")
    assert client.get("/subscribers/admin/").status_code == 200
    assert client.get("/subscribers/admin/import").status_code == 403


def test_login_is_throttled_after_repeated_failures(site):
    login(site, "target@example.org")
    client = httpx.Client(base_url=site)
    codes = []
    for _ in range(7):
        page = client.get("/login")
        codes.append(
            client.post(
                "/login",
                data={
                    "email": "target@example.org",
                    "password": "wrong",
                    "csrf_token": csrf_of(page.text),
                },
            ).status_code
        )
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]


def test_logout_ends_the_session_everywhere(site):
    client = login(site)
    page = client.get("/admin")
    assert page.status_code == 200
    client.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert client.get("/subscribers/admin/", follow_redirects=False).status_code == 303


def test_broken_csv_is_refused_whole_with_the_line(site):
    header = "email,name,language,consent_source\n"
    text = (
        header
        + "first@example.org,F,de,form\n"
        + "big@example.org,"
        + "x" * (130 * 1024)
        + ",de,form\n"
    )
    with pytest.raises(
        transfer.ImportRefused, match=r"after line \d.*field larger than field limit"
    ):
        transfer.import_csv(text, "big.csv")
    assert subscriber("first@example.org") is None  # nothing imported, not half the file
    client = login(site)
    page = client.get("/subscribers/admin/import")
    response = client.post(
        "/subscribers/admin/import",
        data={"csrf_token": csrf_of(page.text)},
        files={"file": ("big.csv", text.encode(), "text/csv")},
    )
    assert response.status_code == 422 and "nothing was imported" in response.text


def test_subscription_dates_beyond_what_a_datetime_holds_mean_now():
    report = transfer.import_csv(
        "email,consent_source,subscribed_at\n"
        "early@example.org,form,0001-01-01T00:30+14:00\n"
        "late@example.org,form,9999-12-31T23:59-14:00\n",
        "dates.csv",
    )
    assert report.summary["added"] == 2
    assert (
        subscriber("early@example.org").created_at.year
        == subscriber("late@example.org").created_at.year
        > 2000
    )
