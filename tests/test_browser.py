"""A person signs up through the real page in headless Chromium and confirms through the
link from the real mail."""

from __future__ import annotations

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
