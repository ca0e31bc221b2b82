"""An editor composes and sends an issue in headless Chromium and watches it go out."""

from __future__ import annotations

from services.feeds.demo import load_demo
from tests.browser import chromium
from tests.conftest import run_kgi, wait_for
from tests.test_newsletter import subscribe


def test_editor_composes_previews_and_sends_an_issue(site, worker, smtp):
    load_demo()
    readers = subscribe(3)
    assert (
        run_kgi(
            "users",
            "add",
            "chefin@example.org",
            "--role",
            "admin",
            "--password-stdin",
            stdin="correct horse battery\n",
        ).returncode
        == 0
    )
    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{site}/login")
        page.get_by_label("E-Mail-Adresse").fill("chefin@example.org")
        page.get_by_label("Passwort").fill("correct horse battery")
        page.get_by_role("button", name="Anmelden").click()
        page.wait_for_url("**/admin")
        page.get_by_role("link", name="Ausgaben", exact=True).click()
        page.get_by_label("Betreff (freiwillig)").fill("Infobrief Winter 2026")
        page.get_by_role("button", name="Neue Ausgabe").click()
        page.wait_for_selector("text=Inhalte hinzufügen")
        page.get_by_role(
            "button", name="Alles seit der letzten Ausgabe Veröffentlichte hinzufügen"
        ).click()
        page.wait_for_selector("#contents li[data-row]")
        assert page.locator("#contents li[data-row]").count() == 3
        preview = page.frame_locator('iframe[title="Vorschau, schmale Breite"]')
        assert "Weiterlesen" in preview.locator("body").inner_text()
        page.get_by_role("button", name="Jetzt an alle Abonnent*innen senden").click()
        page.wait_for_selector("progress")
        wait_for(
            lambda: all(smtp.to(address) for address in readers), timeout=30, message="issue mails"
        )
        page.wait_for_selector('[data-state="sent"]', timeout=20_000)
        assert page.locator("progress").get_attribute("value") in ("100", "100.0")
        assert smtp.to(readers[0])[0].message["Subject"] == "Infobrief Winter 2026"
