"""The rich-text editor of item bodies (TinyMCE, installed from the npm registry and served
by the site): an editor formats a paragraph, adds a link and an uploaded image with its
description and saves, in Chromium; the public page shows it through the allowlist.
Word's pasted markup loses its styling; the page has no WCAG 2.1 AA violation with the
editor on it; and without the editor the textarea takes HTML as before."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page

from services.feeds import content, listing
from services.newsletter import compose
from shared.sanitize import rich_text
from shared.web.paths import path_for
from tests.browser import WIDTHS, chromium, horizontal_overflow, page_as, wcag_violations
from tests.conftest import csrf_of, login

#: The smallest PNG: one transparent pixel.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)

#: What Word puts on the clipboard for a bold word in a paragraph (shortened).
WORD_HTML = (
    "<html xmlns:o='urn:schemas-microsoft-com:office:office'><body>"
    "<p class=MsoNormal style='margin:0cm;font-family:\"Calibri\";mso-fareast-language:DE'>"
    "<b><span style='font-size:14pt;color:#C00000'>Wichtig</span></b>"
    "<span style='mso-spacerun:yes'> </span>aus Word<o:p></o:p></p>"
    "<!--[if gte mso 9]><xml><w:WordDocument></w:WordDocument></xml><![endif]-->"
    "</body></html>"
)


def open_editor(page: Page, site: str) -> None:
    page.goto(site + path_for("feeds:admin_new"))
    page.wait_for_selector(".tox-tinymce")


def editor_body(page: Page):
    return page.frame_locator("iframe.tox-edit-area__iframe").locator("body")


def type_bold_line_then_link(page: Page, bold: str, link_text: str, url: str) -> None:
    """In the focused editor: ``bold`` as a bold paragraph (with the toolbar), then a new
    paragraph ``link_text`` linked to ``url`` (with Ctrl+K and the link dialog)."""
    page.keyboard.type(bold)
    page.keyboard.press("Control+A")
    page.get_by_role("button", name=re.compile("^(Fett|Bold)$")).first.click()
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    page.keyboard.type(link_text)
    page.keyboard.press("Shift+Home")
    page.keyboard.press("Control+K")
    dialog = page.get_by_role("dialog")
    dialog.get_by_label(re.compile("^URL")).fill(url)
    dialog.get_by_role("button", name=re.compile("^(Speichern|Save)$")).click()


def saved_item(title: str):
    (item,) = [i for i in listing.editor_items() if i.title == title]
    return item


def test_an_editor_formats_links_and_adds_an_image_with_its_description(site: str) -> None:
    editor = login(site, "rte@example.org", "editor")
    page_for_token = editor.get(path_for("feeds:admin_new"))
    uploaded = editor.post(
        path_for("feeds:admin_images"),
        data={"csrf_token": csrf_of(page_for_token.text)},
        files={"file": ("pixel.png", PIXEL, "image/png")},
        headers={"Accept": "application/json"},
    )
    assert uploaded.status_code == 200
    location = uploaded.json()["location"]
    # The editor offers what was uploaded.
    assert {"title": location.rsplit("/", 1)[1], "value": location} in editor.get(
        path_for("feeds:admin_images")
    ).json()
    with chromium() as browser, page_as(browser, site, editor) as (page, violations):
        open_editor(page, site)
        page.fill("#title", "Formatiert im Editor")
        editor_body(page).click()
        type_bold_line_then_link(
            page, "Ein fetter Satz.", "Zum Netzwerk", "https://netzwerk.example.org/"
        )
        page.keyboard.press("End")
        page.keyboard.press("Enter")
        page.get_by_role("button", name=re.compile(r"Bild einfügen|Insert\/edit image")).click()
        dialog = page.get_by_role("dialog")
        # Chosen from the list of uploaded images.
        dialog.get_by_role("combobox", name=re.compile("Bildliste|Image list")).click()
        page.get_by_role("option", name=location.rsplit("/", 1)[1]).click()
        dialog.get_by_label(re.compile("Alternative Beschreibung|Alternative description")).fill(
            "Ein Pixel"
        )
        dialog.get_by_role("button", name=re.compile("^(Speichern|Save)$")).click()
        page.get_by_role("button", name="Speichern").last.click()
        page.wait_for_load_state()
        assert violations == []
    body = saved_item("Formatiert im Editor").body
    assert re.search(r"<strong>Ein fetter Satz\.</strong>", body), body
    # The bold of the first paragraph went on into the next, as in every word processor.
    assert re.search(
        r'<a href="https://netzwerk\.example\.org/"[^>]*>(<strong>)?Zum Netzwerk', body
    )
    assert f'<img src="{location}" alt="Ein Pixel"' in body
    # Published, the page shows it through the allowlist.
    item = saved_item("Formatiert im Editor")
    content.transition(item.id, "submit", "rte@example.org", "editor")
    content.transition(item.id, "publish", "admin@example.org", "admin")
    public = httpx.get(site + path_for("feeds:item", slug=item.slug)).text
    assert "<strong>Ein fetter Satz.</strong>" in public
    assert 'href="https://netzwerk.example.org/" rel="noopener noreferrer"' in public
    assert 'alt="Ein Pixel"' in public and httpx.get(site + location).status_code == 200


def test_words_styling_is_dropped_on_paste_and_on_saving(site: str) -> None:
    editor = login(site, "rte-word@example.org", "editor")
    with chromium() as browser, page_as(browser, site, editor) as (page, _):
        open_editor(page, site)
        page.fill("#title", "Aus Word")
        editor_body(page).click()
        # A real paste event, as the browser fires it when Word's text is pasted.
        editor_body(page).evaluate(
            """(body, html) => {
                const data = new DataTransfer();
                data.setData("text/html", html);
                data.setData("text/plain", "Wichtig aus Word");
                body.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data,
                                                                bubbles: true, cancelable: true}));
            }""",
            WORD_HTML,
        )
        page.get_by_role("button", name="Speichern").last.click()
        page.wait_for_load_state()
    body = saved_item("Aus Word").body
    assert "Wichtig" in body and "aus Word" in body
    for word_markup in ("Mso", "mso-", "style=", "class=", "o:p", "<span", "w:WordDocument"):
        assert word_markup not in body, (word_markup, body)


def test_the_page_with_the_editor_is_accessible(site: str) -> None:
    editor = login(site, "rte-axe@example.org", "editor")
    with chromium() as browser, page_as(browser, site, editor) as (page, violations):
        open_editor(page, site)
        for name, width in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": 900})
            assert wcag_violations(page) == [], name
            assert horizontal_overflow(page) == 0, name
        assert violations == []


def test_without_the_editor_the_textarea_takes_html(site: str) -> None:
    """No JavaScript: the form posts the textarea's HTML, cleaned by the allowlist."""
    editor = login(site, "rte-nojs@example.org", "editor")
    with chromium() as browser:
        context = browser.new_context(java_script_enabled=False)
        context.add_cookies(
            [{"name": "kgi_session", "value": editor.cookies["kgi_session"], "url": site}]
        )
        page = context.new_page()
        page.goto(site + path_for("feeds:admin_new"))
        assert page.locator("textarea#body").is_visible()
        page.fill("#title", "Ohne Editor")
        page.fill(
            "#body", '<p onclick="x()">Handgeschrieben <em>kursiv</em></p><script>x()</script>'
        )
        page.get_by_role("button", name="Speichern").last.click()
        context.close()
    assert saved_item("Ohne Editor").body == "<p>Handgeschrieben <em>kursiv</em></p>"


def test_an_issues_introduction_is_written_in_the_editor_and_previewed(site: str) -> None:
    """The introduction of an issue gets the editor too (emphasis, links, lists: what a
    mail can carry); the preview of the mail shows it, cleaned."""
    issue = compose.create_issue("de", "rte-issue@example.org", "Ausgabe mit Editor")
    admin = login(site, "rte-issue@example.org", "admin")
    with chromium() as browser, page_as(browser, site, admin) as (page, violations):
        page.goto(site + path_for("newsletter:admin_issue", id=issue.id))
        page.wait_for_selector(".tox-tinymce")
        intro = page.frame_locator("iframe.tox-edit-area__iframe").first.locator("body")
        intro.click()
        page.keyboard.press("Control+A")
        type_bold_line_then_link(
            page, "Liebe Kommunen,", "zum Programm", "https://programm.example.org/"
        )
        for name, width in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": 900})
            assert wcag_violations(page) == [], name
        page.locator("form", has=page.locator("#intro")).get_by_role(
            "button", name="Speichern"
        ).click()
        page.wait_for_load_state()
        assert violations == []
    preview = admin.get(path_for("newsletter:admin_preview", id=issue.id, fmt="html")).text
    assert re.search(r"<strong[^>]*>Liebe Kommunen,</strong>", preview)
    assert re.search(
        r'<a href="https://programm\.example\.org/"[^>]*>(<strong[^>]*>)?zum Programm', preview
    )
    text = admin.get(path_for("newsletter:admin_preview", id=issue.id, fmt="txt")).text
    assert "Liebe Kommunen," in text and "<strong>" not in text


def test_plain_texts_from_before_the_editor_stay_paragraphs() -> None:
    assert rich_text("Hallo & willkommen\n\nZweiter Absatz\n") == (
        "<p>Hallo &amp; willkommen</p>\n<p>Zweiter Absatz</p>"
    )
    cleaned = rich_text('<p onclick="x()">Hi <strong>du</strong><script>x()</script></p>')
    assert cleaned == "<p>Hi <strong>du</strong></p>" == rich_text(cleaned)
