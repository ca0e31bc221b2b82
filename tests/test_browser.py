"""A person signs up through the real page in headless Chromium and confirms through the
link from the real mail."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.browser import chromium
from tests.conftest import link_in, wait_for
from tests.test_signup_flow import subscriber


def test_sign_up_and_confirm_in_a_browser(site, worker, smtp):
    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{site}/")
        # The home page's sign-up box takes the address to the sign-up form.
        page.locator("#home-email").fill("browser@example.org")
        page.get_by_role("button", name="Weiter").click()
        assert page.get_by_label("E-Mail-Adresse").input_value() == "browser@example.org"
        page.get_by_label("Name (freiwillig)").fill("Bea Browser")
        page.get_by_label("English").check()
        page.get_by_role("button", name="Abonnieren").click()
        page.wait_for_url("**/subscribers/signup/sent")
        assert "Bitte schauen Sie in Ihr Postfach" in page.content()

        mail = wait_for(lambda: smtp.to("browser@example.org"), message="confirmation mail")[0]
        link = link_in(mail.part("plain"), "/subscribers/confirm/")
        page.goto(link)
        assert subscriber("browser@example.org").status == "pending"
        page.get_by_role("button").filter(has_text="subscribe").click()
        page.wait_for_selector("text=your subscription is confirmed")
        assert subscriber("browser@example.org").status == "confirmed"


def test_form_errors_are_announced_and_linked_to_the_field(site):
    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{site}/subscribers/signup?lang=en")
        page.get_by_label("E-mail address").fill("not-an-email")
        page.get_by_role("button", name="Subscribe").click()
        field = page.get_by_label("E-mail address")
        assert field.get_attribute("aria-invalid") == "true"
        assert page.locator("#email-error").inner_text() == "This is not a valid e-mail address."
        assert field.input_value() == "not-an-email"


def test_a_foreign_page_cannot_send_the_sign_up_form(site):
    """Another origin's page (here another port of the same host, so even the same
    site) that makes its visitors' browsers send the sign-up form is refused: Chromium
    says where the form comes from (Sec-Fetch-Site), and no address is signed up."""
    foreign_page = (
        f'<form method="post" action="{site}/subscribers/signup">'
        '<input name="email" value="foreign.page@example.org">'
        '<button type="submit">Go</button></form>'
    ).encode()

    class ForeignSite(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(foreign_page)))
            self.end_headers()
            self.wfile.write(foreign_page)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), ForeignSite)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with chromium() as browser:
            page = browser.new_page()
            page.set_default_timeout(10_000)
            page.goto(f"http://127.0.0.1:{server.server_port}/")
            with page.expect_response(f"{site}/subscribers/signup") as answer:
                page.get_by_role("button", name="Go").click()
            assert answer.value.status == 403
            assert "von einer anderen Website" in page.content()
    finally:
        server.shutdown()
    assert subscriber("foreign.page@example.org") is None
