"""Every kind of HTML mail, as it is really sent, rendered in headless Chromium.

The mails are captured by the test SMTP server (a sign-up through the site gives the
confirmation and welcome mails, a real send gives an issue) and loaded into one Chromium
page at phone and desktop width, in light and dark mode. Figures are read from the page's
computed styles, not from the template source: what counts is what a client renders.
Run with ``-s`` to see the table of measurements.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from services.newsletter import compose, dispatch, render
from services.newsletter.store import Issue
from shared.config import get_settings
from shared.web.templates import render_text
from tests.browser import chromium
from tests.conftest import csrf_of, link_in, wait_for
from tests.smtp_server import ReceivedMail, RecordingSMTPServer
from tests.test_newsletter import new_issue, state_of, subscribe
from tests.test_signup_flow import signup

#: Viewport widths: a small phone (iPhone SE/mini class) and the design width.
WIDTHS = (375, 600)

#: Colour schemes a reader may have chosen.
SCHEMES = ("light", "dark")

#: WCAG 2.x AA contrast for normal text; the mails have no text big enough for 3:1.
MIN_CONTRAST = 4.5

#: Width of a plain-text line; only a line that is a URL alone may be longer.
TEXT_WIDTH = 72

#: Characters a preheader filler is made of: combining grapheme joiner, zero-width
#: non-joiner, no-break space (and whitespace between them).
FILLER = re.compile(r"[\u034f\u200c\u00a0\s]*")

#: How many filler characters must follow the preheader so that no client fills its
#: preview line (up to about 140 characters) with the mail's first sentences.
MIN_FILLER = 100

#: A plain-text line that is nothing but a URL (bare or in angle brackets).
URL_LINE = re.compile(r"<?https?://\S+>?")

#: Reads what the page renders: overflow, rendering mode, the lowest text contrast, images
#: without alt text and the footer's text. The canvas colour comes from a probe element
#: painted with the ``Canvas`` system colour, so it is Chromium's own in either scheme.
MEASURE = """
() => {
  const parse = (value) => {
    const m = value.match(/rgba?\\(([^)]+)\\)/);
    if (!m) throw new Error("unexpected colour " + value);
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const over = (top, below) => ({
    r: top.r * top.a + below.r * (1 - top.a),
    g: top.g * top.a + below.g * (1 - top.a),
    b: top.b * top.a + below.b * (1 - top.a),
    a: 1,
  });
  const probe = document.createElement("div");
  probe.style.backgroundColor = "Canvas";
  document.documentElement.appendChild(probe);
  const canvas = parse(getComputedStyle(probe).backgroundColor);
  probe.remove();
  const background = (element) => {
    const layers = [];
    for (let node = element; node; node = node.parentElement) {
      const colour = parse(getComputedStyle(node).backgroundColor);
      if (colour.a > 0) layers.push(colour);
      if (colour.a >= 1) break;
    }
    return layers.reverse().reduce((below, top) => over(top, below), canvas);
  };
  const channel = (c) => {
    c /= 255;
    return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
  };
  const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const hex = (c) =>
    "#" + [c.r, c.g, c.b].map((v) => Math.round(v).toString(16).padStart(2, "0")).join("");
  let worst = null;
  let checked = 0;
  for (const element of document.body.querySelectorAll("*")) {
    const ownText = [...element.childNodes]
      .filter((node) => node.nodeType === Node.TEXT_NODE)
      .map((node) => node.textContent).join("").trim();
    if (!ownText) continue;
    if (!element.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})) continue;
    const box = element.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    const bg = background(element);
    const fg = over(parse(getComputedStyle(element).color), bg);
    const [light, dark] = [luminance(fg), luminance(bg)].sort((x, y) => y - x);
    const ratio = (light + 0.05) / (dark + 0.05);
    checked += 1;
    if (!worst || ratio < worst.ratio) {
      worst = {ratio, text: ownText.slice(0, 50), tag: element.tagName.toLowerCase(),
               fg: hex(fg), bg: hex(bg)};
    }
  }
  const footer = document.querySelector(".footer");
  return {
    scrollWidth: document.scrollingElement.scrollWidth,
    innerWidth: window.innerWidth,
    compatMode: document.compatMode,
    checked,
    worst,
    imagesWithoutAlt: document.querySelectorAll("img:not([alt])").length,
    footer: footer ? footer.innerText : "",
  };
}
"""


@dataclass
class Measurement:
    """What Chromium rendered for one mail at one width in one colour scheme."""

    mail: str
    width: int
    scheme: str
    figures: dict[str, Any]

    def row(self) -> str:
        """One line of the printed table."""
        worst = self.figures["worst"] or {"ratio": float("inf"), "fg": "-", "bg": "-", "text": ""}
        return (
            f"{self.mail:<13} {self.width:>5} {self.scheme:<6} "
            f"{self.figures['scrollWidth']:>11} {self.figures['compatMode']:<11} "
            f"{worst['ratio']:>8.2f}  {worst['fg']} on {worst['bg']}  {worst['text']!r}"
        )

    def problems(self) -> list[str]:
        """Every requirement this rendering misses, each as one readable line."""
        where = f"{self.mail} at {self.width}px, {self.scheme}"
        figures, found = self.figures, []
        if figures["scrollWidth"] > figures["innerWidth"]:
            found.append(
                f"{where}: {figures['scrollWidth']}px wide in a {figures['innerWidth']}px viewport"
            )
        if figures["compatMode"] != "CSS1Compat":
            found.append(f"{where}: {figures['compatMode']} (quirks mode, no doctype)")
        worst = figures["worst"]
        if figures["checked"] == 0 or worst is None:
            found.append(f"{where}: no visible text")
        elif worst["ratio"] < MIN_CONTRAST:
            found.append(
                f"{where}: contrast {worst['ratio']:.2f} for {worst['tag']} {worst['text']!r} "
                f"({worst['fg']} on {worst['bg']})"
            )
        if figures["imagesWithoutAlt"]:
            found.append(f"{where}: {figures['imagesWithoutAlt']} images without alt")
        settings = get_settings()
        for needed in (settings.organisation, settings.postal_address):
            if needed not in figures["footer"]:
                found.append(f"{where}: footer lacks {needed!r}")
        return found


@pytest.fixture(scope="module")
def mail_page() -> Iterator[Page]:
    """One Chromium page for the whole module: starting a browser costs a second."""
    with chromium() as browser:
        page = browser.new_page()
        yield page
        page.close()


def render_everywhere(page: Page, mail: str, document: str) -> list[Measurement]:
    """``document`` measured at every width in every scheme; prints the table rows."""
    measurements = []
    for width in WIDTHS:
        for scheme in SCHEMES:
            page.set_viewport_size({"width": width, "height": 800})
            page.emulate_media(color_scheme=scheme)
            page.set_content(document)
            measurement = Measurement(mail, width, scheme, page.evaluate(MEASURE))
            measurements.append(measurement)
    print()
    print(
        f"{'mail':<13} {'width':>5} {'scheme':<6} {'scrollWidth':>11} {'mode':<11} {'contrast':>8}"
    )
    for measurement in measurements:
        print(measurement.row())
    return measurements


def assert_renders_well(measurements: list[Measurement]) -> None:
    """Fail with every problem at once, so one run shows the whole picture."""
    problems = [problem for m in measurements for problem in m.problems()]
    assert not problems, "\n".join(problems)


def overlong_lines(text: str) -> list[str]:
    """Lines wider than TEXT_WIDTH that are not a URL alone."""
    return [
        line
        for line in text.splitlines()
        if len(line) > TEXT_WIDTH and not URL_LINE.fullmatch(line.strip())
    ]


def assert_names_the_sender(text: str) -> None:
    """``text`` names the sending organisation and its postal address."""
    settings = get_settings()
    assert settings.organisation in text, text
    assert settings.postal_address in text, text


def sign_up_and_confirm(site: str, smtp: RecordingSMTPServer) -> tuple[ReceivedMail, ReceivedMail]:
    """The confirmation and welcome mails of a German sign-up with a long name."""
    client = httpx.Client(base_url=site)
    address = "maximiliane.mustermann-schulze@example.org"
    signup(client, address, "Maximiliane Mustermann-Schulze", "de")
    confirmation = wait_for(lambda: smtp.to(address), message="confirmation mail")[0]
    link = link_in(confirmation.part("plain"), "/subscribers/confirm/")
    page = client.get(link)
    assert client.post(link, data={"csrf_token": csrf_of(page.text)}).status_code == 200
    welcome = wait_for(
        lambda: [m for m in smtp.to(address) if m is not confirmation], message="welcome mail"
    )[0]
    return confirmation, welcome


def test_confirmation_and_welcome_mails_render_on_phones_and_in_dark_mode(
    site: str, worker: Any, smtp: RecordingSMTPServer, mail_page: Page
) -> None:
    confirmation, welcome = sign_up_and_confirm(site, smtp)
    measurements = render_everywhere(mail_page, "confirmation", confirmation.part("html"))
    measurements += render_everywhere(mail_page, "welcome", welcome.part("html"))
    assert_renders_well(measurements)


def test_confirmation_and_welcome_text_parts_name_the_sender(
    site: str, worker: Any, smtp: RecordingSMTPServer
) -> None:
    confirmation, welcome = sign_up_and_confirm(site, smtp)
    for mail in (confirmation, welcome):
        assert_names_the_sender(mail.part("plain"))


def test_subscriber_text_parts_wrap_at_72_without_breaking_links(
    site: str, worker: Any, smtp: RecordingSMTPServer
) -> None:
    """The text parts as sent: lines of at most 72 columns (or one URL alone), every
    link whole, the signature separator kept."""
    from shared.mail.message import wrap_text

    confirmation, welcome = sign_up_and_confirm(site, smtp)
    for mail in (confirmation, welcome):
        sent = mail.part("plain")
        assert not overlong_lines(sent), sent
        assert "\n-- \n" in sent
        assert wrap_text(sent) == sent
    link = link_in(confirmation.part("html"), "/subscribers/confirm/")
    assert link in confirmation.part("plain").split()


#: The preheader of the test issue.
PREHEADER = "Neues aus dem Netzwerk: Werkstattgespräche, Fachtage und Berichte"

#: An intro long enough to need wrapping in the text part, with a long German compound.
INTRO = (
    "hier kommt der neue KGI-Infobrief mit Neuigkeiten aus dem Netzwerk der Kommunen, "
    "die die internationale Jugendarbeit stärken, mit Berichten von den Fachtagen und "
    "mit Terminen der Jugendbegegnungsstättenförderungsrichtlinienberatung.\n\n"
    "Viel Freude beim Lesen!"
)


def send_issue(smtp: RecordingSMTPServer) -> tuple[Issue, ReceivedMail]:
    """A real send of a German issue with a preheader to one subscriber; the mail."""
    (reader,) = subscribe(1)
    drafted = new_issue()
    compose.update_texts(
        drafted.id,
        {
            "subject": drafted.subject,
            "preheader": PREHEADER,
            "intro": INTRO,
            "closing": "Mit herzlichen Grüßen, das KGI-Team",
        },
        "redaktion@example.org",
    )
    assert dispatch.start(drafted.id, "redaktion@example.org") == 1
    wait_for(lambda: state_of(drafted.id) == "sent", timeout=30, message="issue sent")
    return drafted, smtp.to(reader)[0]


def test_issue_renders_on_phones_and_in_dark_mode(
    site: str, worker: Any, smtp: RecordingSMTPServer, mail_page: Page
) -> None:
    _, mail = send_issue(smtp)
    assert_renders_well(render_everywhere(mail_page, "issue", mail.part("html")))


def test_issue_preheader_is_padded_hidden_and_not_in_the_text(
    site: str, worker: Any, smtp: RecordingSMTPServer, mail_page: Page
) -> None:
    _, mail = send_issue(smtp)
    mail_page.set_viewport_size({"width": 600, "height": 800})
    mail_page.set_content(mail.part("html"))
    shown = mail_page.evaluate(
        """() => {
          const preheader = document.querySelector(".preheader");
          return {
            everything: document.body.textContent,
            visible: preheader.checkVisibility({checkOpacity: true, checkVisibilityCSS: true}),
            height: preheader.getBoundingClientRect().height,
            bodyText: document.body.innerText,
          };
        }"""
    )
    # A client builds its preview from the text in source order, hidden or not: after the
    # preheader comes only filler, enough to fill any preview line.
    everything = shown["everything"].lstrip()
    assert everything.startswith(PREHEADER), everything[:200]
    filler = FILLER.match(everything, len(PREHEADER)).group(0)
    assert len(filler) >= MIN_FILLER, f"only {len(filler)} filler characters after the preheader"
    assert not shown["visible"] and shown["height"] == 0
    assert PREHEADER not in shown["bodyText"]
    text = mail.part("plain")
    assert PREHEADER not in text
    assert "\u034f" not in text and "\u200c" not in text


def test_issue_text_part_names_the_sender(
    site: str, worker: Any, smtp: RecordingSMTPServer
) -> None:
    _, mail = send_issue(smtp)
    assert_names_the_sender(mail.part("plain"))


def test_issue_text_part_wraps_at_72_without_breaking_links(
    site: str, worker: Any, smtp: RecordingSMTPServer
) -> None:
    _, mail = send_issue(smtp)
    text = mail.part("plain")
    assert not overlong_lines(text), "\n".join(overlong_lines(text))
    # The long compound and every link survive whole.
    assert "Jugendbegegnungsstättenförderungsrichtlinienberatung." in text.split()
    for href in re.findall(r'href="([^"]+)"', mail.part("html")):
        url = href.replace("&amp;", "&")
        assert any(url in word for word in text.split()), url


def test_imprint_is_linked_in_every_footer_when_configured(
    site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = replace(get_settings(), imprint_url="https://kgi.example.org/impressum")
    monkeypatch.setattr("shared.web.templates.get_settings", lambda: configured)
    monkeypatch.setattr(render, "get_settings", lambda: configured)

    issue = new_issue()
    rendered = render.rendered_of(issue)
    context = {
        "subscriber": None,
        "confirmation_url": "https://kgi.example.org/subscribers/confirm/x",
        "unsubscribe_url": "https://kgi.example.org/u",
        "preferences_url": "https://kgi.example.org/p",
    }
    documents = [(rendered.html, rendered.text)] + [
        (
            render_text(f"mail/subscribers/{kind}.html", "de", **context),
            render_text(f"mail/subscribers/{kind}.txt", "de", **context),
        )
        for kind in ("confirmation", "welcome")
    ]
    for html, text in documents:
        assert re.search(
            r'<a [^>]*href="https://kgi.example.org/impressum"[^>]*>Impressum</a>', html
        )
        assert "https://kgi.example.org/impressum" in text and "Impressum" in text

    # Unset: no imprint link at all, in either language.
    unset = replace(configured, imprint_url=None)
    monkeypatch.setattr("shared.web.templates.get_settings", lambda: unset)
    assert "Impressum" not in render_text("mail/subscribers/welcome.html", "de", **context)
    english = render_text("mail/subscribers/welcome.html", "en", **context)
    assert "Imprint" not in english
    monkeypatch.setattr("shared.web.templates.get_settings", lambda: configured)
    english = render_text("mail/subscribers/welcome.html", "en", **context)
    assert ">Imprint</a>" in english
