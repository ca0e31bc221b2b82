"""Downloads attached to items (Plone's File type): PDFs checked by their signature, shown
with their size on the item page, served with their type and a Content-Disposition that
Werkzeug's parser (and Chromium) read back to the same name, and listed in the feeds
as enclosures (feedparser reads them). Who may attach what, and what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import feedparser
import httpx
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.http import parse_options_header

from services.feeds import content, downloads, store
from shared.database import read_connection
from shared.web.paths import path_for
from tests.browser import WIDTHS, chromium, horizontal_overflow, wcag_violations
from tests.conftest import csrf_of, login

#: A small PDF (what a factsheet starts and ends like).
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n" + b" " * 1500


def new_item(title: str, author: str = "editor@example.org") -> store.Item:
    return content.create_item({"title": title, "summary": "Mit Anhang."}, author)


def publish(item: store.Item) -> store.Item:
    content.transition(item.id, "submit", "editor@example.org", "editor")
    return content.transition(item.id, "publish", "admin@example.org", "admin")


def attach(client: httpx.Client, item: store.Item, name: str, data: bytes) -> httpx.Response:
    page = client.get(path_for("feeds:admin_item", id=item.id))
    return client.post(
        path_for("feeds:admin_files", id=item.id),
        data={"csrf_token": csrf_of(page.text)},
        files={"file": (name, data, "application/pdf")},
    )


def filename_of(header: str) -> str | None:
    """The file name Werkzeug's header parser (RFC 6266: ``filename*`` first) reads."""
    disposition, options = parse_options_header(header)
    assert disposition == "attachment"
    return options.get("filename")


def test_an_attached_pdf_is_on_the_item_page_and_in_every_feed(site: str) -> None:
    editor = login(site, "files@example.org", "editor")
    item = new_item("Factsheet Jugendaustausch")
    response = attach(editor, item, "Factsheet – Jugendaustausch 2026.pdf", PDF)
    assert response.status_code == 303
    assert attach(editor, item, "Bericht.pdf", PDF + b"2").status_code == 303
    item = publish(item)
    page = httpx.get(site + path_for("feeds:item", slug=item.slug)).text
    assert "Factsheet – Jugendaustausch 2026.pdf" in page and "(PDF, 2 KB)" in page
    files = downloads.files_of([item.id])[item.id]
    assert [f.name for f in files] == ["Factsheet – Jugendaustausch 2026.pdf", "Bericht.pdf"]
    served = httpx.get(site + path_for("feeds:download", id=files[0].id, name="x"))
    assert served.status_code == 200 and served.content == PDF
    assert served.headers["content-type"] == "application/pdf"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert filename_of(served.headers["content-disposition"]) == files[0].name
    assert served.headers["content-disposition"].startswith("attachment;")
    # RSS carries one enclosure (the first file), Atom and JSON Feed all of them.
    rss = feedparser.parse(httpx.get(site + path_for("feeds:feed", fmt="rss")).content)
    (enclosure,) = rss.entries[0].enclosures
    assert (enclosure.type, enclosure.length) == ("application/pdf", str(len(PDF)))
    assert httpx.get(enclosure.href).content == PDF
    atom = feedparser.parse(httpx.get(site + path_for("feeds:feed", fmt="atom")).content)
    assert [e.length for e in atom.entries[0].enclosures] == [str(len(PDF)), str(len(PDF) + 1)]
    feed = json.loads(httpx.get(site + path_for("feeds:feed", fmt="json")).content)
    attachments = feed["items"][0]["attachments"]
    assert [a["title"] for a in attachments] == [f.name for f in files]
    assert attachments[1]["size_in_bytes"] == len(PDF) + 1


def test_what_is_no_pdf_or_too_large_is_refused_and_nothing_attached(site: str) -> None:
    editor = login(site, "files-refused@example.org", "editor")
    editor.get(path_for("portal:home") + "?lang=en")
    item = new_item("Ohne Anhang")
    refused = attach(editor, item, "harmlos.pdf", b"<html><script>alert(1)</script></html>")
    assert refused.status_code == 422 and "Please attach a PDF file." in refused.text
    too_large = attach(editor, item, "gross.pdf", b"%PDF-" + b"0" * downloads.MAX_FILE_BYTES)
    assert too_large.status_code == 422 and "larger than 20 MB" in too_large.text
    assert downloads.files_of([item.id])[item.id] == []


def test_hostile_names_stay_inside_their_header_and_their_folder(site: str) -> None:
    editor = login(site, "files-names@example.org", "editor")
    item = new_item("Namen")
    for name in ('a"b;c\\d%e ä.pdf', "../../etc/passwd", "bericht.PDF"):
        assert attach(editor, item, name, PDF + name.encode()).status_code == 303
    files = downloads.files_of([item.id])[item.id]
    assert [f.name for f in files] == ["d%e ä.pdf", "passwd.pdf", "bericht.pdf"]
    for file in files:
        header = editor.get(path_for("feeds:download", id=file.id, name="x")).headers[
            "content-disposition"
        ]
        assert filename_of(header) == file.name
        assert header.count('"') == 2  # the fallback's own quotes, nothing else


def test_published_items_files_are_for_admins_and_drafts_files_for_staff(site: str) -> None:
    editor = login(site, "files-roles@example.org", "editor")
    admin = login(site, "files-admin@example.org", "admin")
    draft = new_item("Entwurf mit Anhang")
    assert attach(editor, draft, "entwurf.pdf", PDF).status_code == 303
    (file,) = downloads.files_of([draft.id])[draft.id]
    address = path_for("feeds:download", id=file.id, name="entwurf.pdf")
    # A draft's file is not public yet, but staff can open it.
    assert httpx.get(site + address).status_code == 404
    assert editor.get(address).status_code == 200
    published = publish(new_item("Veröffentlicht"))
    assert attach(editor, published, "spaet.pdf", PDF).status_code == 403
    assert attach(admin, published, "spaet.pdf", PDF).status_code == 303
    (late,) = downloads.files_of([published.id])[published.id]
    page = admin.get(path_for("feeds:admin_item", id=published.id))
    removed = admin.post(
        path_for("feeds:admin_files_remove", id=published.id),
        data={"csrf_token": csrf_of(page.text), "file_id": str(late.id)},
    )
    assert removed.status_code == 303
    assert downloads.files_of([published.id])[published.id] == []
    # The draft's file has the same content: it stays stored for the draft.
    assert downloads.stored_path(file).exists()
    with read_connection("feeds") as conn:
        assert downloads.files_on(conn, [draft.id])[draft.id] == [file]


@given(st.text(max_size=300))
def test_any_name_reads_back_from_its_header(raw: str) -> None:
    name = downloads.clean_name(raw, "pdf")
    header = downloads.content_disposition(name)
    assert "\r" not in header and "\n" not in header
    assert filename_of(header) == name
    assert name.endswith(".pdf") and "/" not in name and len(name) <= downloads.MAX_NAME_LENGTH


def test_chromium_saves_the_download_under_its_name(site: str) -> None:
    """The browser, which has its own reading of Content-Disposition, offers the file
    under the name it was attached with, umlauts and dashes included."""
    editor = login(site, "files-browser@example.org", "editor")
    item = new_item("Im Browser")
    assert attach(editor, item, "Gute Praxis – Städtepartnerschaft.pdf", PDF).status_code == 303
    item = publish(item)
    with chromium() as browser:
        page = browser.new_page(accept_downloads=True)
        page.goto(site + path_for("feeds:item", slug=item.slug))
        for name, width in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": 900})
            assert wcag_violations(page) == [], name
            assert horizontal_overflow(page) == 0, name
        with page.expect_download() as started:
            page.get_by_role("link", name="Gute Praxis – Städtepartnerschaft.pdf").click()
        download = started.value
        assert download.suggested_filename == "Gute Praxis – Städtepartnerschaft.pdf"
        assert Path(download.path()).read_bytes() == PDF
