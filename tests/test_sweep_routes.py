"""A generated sweep over every route of the routing table: hostile values in path
parameters, query parameters and every HTML form field (found by reading the pages as
a visitor, an editor and an administrator, with valid CSRF tokens), hostile JSON bodies,
non-ASCII headers and broken CSV imports. No answer may be a 5xx and no traceback may
reach the log.

The routes come from ``kgi.site.create_site()`` itself (Mount and Route, recursively), so
a new route is swept without anyone listing it. Values are a fixed hostile corpus plus
generated ones (seeded: ``KGI_SWEEP_SEED`` reproduces a run); each class samples, so the
whole module stays within a few minutes on two cores.

One test per area (the service mounts and the portal), so a 5xx in one area does not
hide the others; the last test prints the cases per attack class.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from bs4 import BeautifulSoup
from starlette.convertors import Convertor
from starlette.routing import BaseRoute, Mount, Route, compile_path

from services.events import links as event_links
from services.events import programme, registration, schedule
from services.events import store as events_store
from services.events.fields import EventFields, RegistrationForm, SeriesFields
from services.feeds.demo import load_demo
from services.members import store as members_store
from services.members.fields import parse_member
from services.newsletter import compose, render, store
from services.subscribers import optin, transfer
from services.subscribers.store import Context, find_by_key
from shared.database import engine, read_connection, utcnow
from shared.tokens import service_headers
from tests.conftest import login

# --- the hostile corpus ---------------------------------------------------------------

#: Text a visitor can type or a script can send, decoded (sent percent-encoded).
HOSTILE_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x01\x08\x1b[31m\x7f",
    "line\r\nX-Injected: yes",
    "\r\n\r\n<html>",
    "../../../../etc/passwd",
    "..\\..\\windows",
    "999999999999999999999999999999",
    "9223372036854775808",
    "-1",
    "-999999999999999999999999999999",
    "0",
    "00000000000000000000000001",
    "1e309",
    "NaN",
    "-0",
    "½",
    "٣",
    "9" * 5000,
    "x" * (100 * 1024),
    "ä" * 3000,
    "=?utf-8?b?PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==?=",
    "=?UTF-8?Q?=0D=0ABcc:_victim@example.org?=",
    "0001-01-01T00:30",
    "9999-12-31T23:59+14:00",
    "9999-12-31T23:59-14:00",
    "0001-01-01T00:00+14:00",
    "2026-02-30T25:61",
    "ä",
    "%C3%A4",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' OR '1'='1' --",
    "\u202etxt.exe",
    "😀" * 50,
    "\ufeffBOM",
    "a@b",
    "user@xn--ls8h.example",
    "[]",
    "{}",
    "null",
    "true",
]

#: Wire forms that no decoded text gives: a lone surrogate as UTF-8 (%ED%A0%80),
#: invalid UTF-8, broken percent escapes, an encoded slash.
RAW_WIRE = ["%ED%A0%80", "a%ED%BF%BFb", "%FF%FE", "%C3", "%", "%zz", "%2e%2e%2f", "%00", "+%2B+"]

#: The few values each form's CSRF field gets (all must be refused with 403).
HOSTILE_CSRF = ["%C3%A4", "", "%00", "%ED%A0%80", quote("x" * 20000)]

#: Field values that let the other fields of a form reach validation.
VALID_FIELDS = {
    "email": "sweep.signup@example.org",
    "name": "Sweep Test",
    "language": "de",
    "subject": "Sweep issue",
    "intro": "Intro",
    "closing": "Closing",
    "password": "wrong password",
    "title": "Sweep item",
    "summary": "Summary",
    "body": "<p>Body</p>",
    "url": "https://example.org/feed.xml",
    "scheduled_at": (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"),
}

#: Query names tried on every GET route, besides those the pages' GET forms use.
QUERY_NAMES = [
    "page",
    "lang",
    "q",
    "status",
    "type",
    "tag",
    "partners",
    "since",
    "limit",
    "next",
    "message",
    "language",
    "id",
]

#: Header sets sent to every route: non-ASCII (Latin-1 and UTF-8 bytes), odd validators,
#: a broken session cookie.
HOSTILE_HEADERS: list[dict[str, bytes]] = [
    {"authorization": "Bearer ä".encode("latin-1")},
    {"authorization": "Bearer ä€😀".encode()},
    {"authorization": b"Basic \xff\xfe"},
    {"cookie": "kgi_session=ä; kgi_lang=\xff".encode("latin-1")},
    {"cookie": b"kgi_session=" + b"A" * 3000},
    {"accept-language": "de-DE,ä;q=0.9".encode()},
    {"accept": b"application/json"},
    {"if-none-match": 'W/"ä", \xff'.encode("latin-1")},
    {"if-modified-since": b"Mon, 01 Jan 0001 00:30:00 GMT"},
    {"if-modified-since": b"Fri, 31 Dec 9999 23:59:59 +1400"},
    {"if-modified-since": b"gestern"},
    {"referer": "https://exämple.org/ä?x=\xff".encode()},
    {"user-agent": "Mozilla ä".encode() * 500},
    {"x-forwarded-for": b"999.999.999.999, \xff"},
    {"content-type": "multipart/form-data; boundary=ä".encode()},
    {"content-type": b"application/x-www-form-urlencoded; charset=\xff"},
]

#: Number of values each attack class takes from the corpus per target (a sample).
PATH_VALUES = 24
QUERY_VALUES = 6
FORM_VALUES = 12
FORM_VALUES_OTHER_ROLES = 3

#: Longest value put into a URL: httpx refuses URLs over 64 KiB, and the server's own
#: limit (h11: 16 KiB of request head) lies below it either way.
URL_VALUE_LIMIT = 60_000

#: The HTTP server's limit on a request head (h11's default, which uvicorn keeps).
HEAD_LIMIT = 16 * 1024

#: Pages read per role while looking for forms and links.
CRAWL_PAGES = 40

SEED = int(os.environ.get("KGI_SWEEP_SEED", "20261202"))

#: The areas swept, one test each: (name, path prefix).
AREAS = {
    "subscribers": "/subscribers",
    "newsletter": "/newsletter",
    "feeds": "/news",
    "members": "/members",
    "events": "/events",
    "portal": "",
}

#: Whose code answers in each area: a failing area names who fixes it.
OWNERS = {
    "subscribers": "services/subscribers",
    "newsletter": "services/newsletter",
    "feeds": "services/feeds",
    "members": "services/members",
    "events": "services/events",
    "portal": "kgi/portal.py",
}

#: Where each area takes CSV files: each is sent every hostile file.
CSV_IMPORTS = {
    "subscribers": "/subscribers/admin/import",
    "members": "/members/admin/members.csv",
}

#: Attack classes, in the order of the report.
CLASSES = ("path params", "query params", "form fields", "JSON", "headers", "CSV")

#: Cases sent and server errors seen, per area and attack class, for the report.
CASES: dict[str, Counter[str]] = defaultdict(Counter)
ERRORS: dict[str, Counter[str]] = defaultdict(Counter)

#: Cases per area the HTTP server refused by closing the connection (request head too big).
CLOSED: Counter[str] = Counter()


def generated_values(rng: random.Random, count: int) -> list[str]:
    """Random text from awkward parts of Unicode, numbers and dates (wire form)."""
    ranges = [(0, 0x1F), (0x7F, 0x9F), (0x300, 0x36F), (0x590, 0x6FF), (0x2000, 0x206F)]
    ranges += [(0xE000, 0xF8FF), (0xFFF0, 0xFFFF), (0x1F300, 0x1F6FF), (0x10FFF0, 0x10FFFF)]
    values = []
    for _ in range(count):
        kind = rng.randrange(4)
        if kind == 0:
            low, high = rng.choice(ranges)
            text = "".join(chr(rng.randint(low, high)) for _ in range(rng.randint(1, 40)))
            values.append(quote(text, safe=""))
        elif kind == 1:
            values.append(str(rng.choice([-1, 1]) * rng.randint(0, 10 ** rng.randint(1, 60))))
        elif kind == 2:
            year = rng.choice([1, 2, 1969, 2038, 9999, rng.randint(1, 9999)])
            offset = rng.choice(["", "Z", "+14:00", "-14:00", "+23:59"])
            values.append(quote(f"{year:04d}-12-31T23:59{offset}", safe=""))
        else:
            values.append(rng.choice(RAW_WIRE) + quote(rng.choice(HOSTILE_TEXT)[:50], safe=""))
    return values


def corpus(rng: random.Random, count: int, in_url: bool = False) -> list[str]:
    """``count`` wire values: most from the fixed corpus, one in four generated; cut to
    what an URL can carry when ``in_url``."""
    fixed = [quote(text, safe="") for text in HOSTILE_TEXT] + RAW_WIRE
    chosen = rng.sample(fixed, min(len(fixed), count - count // 4))
    values = chosen + generated_values(rng, count - len(chosen))
    if in_url:
        # Cut after a whole escape: a cut "%C3%A" would test the cut, not the value.
        values = [
            v[:URL_VALUE_LIMIT].rsplit("%", 1)[0] if len(v) > URL_VALUE_LIMIT else v for v in values
        ]
    return values


# --- the routing table ----------------------------------------------------------------


@dataclass(frozen=True)
class RouteInfo:
    """One route of the site with its full path and methods."""

    path: str
    methods: tuple[str, ...]
    convertors: dict[str, Convertor[Any]]

    def matches(self, path: str) -> dict[str, str] | None:
        """The raw path parameters when ``path`` is this route's, else None."""
        regex, _, _ = compile_path(self.path)
        found = regex.match(path)
        return found.groupdict() if found else None

    def url(self, values: dict[str, str]) -> str:
        """The path with ``values`` (wire form) for its parameters."""
        return re.sub(r"{(\w+)(:\w+)?}", lambda m: values[m.group(1)], self.path)


def walk_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[RouteInfo]:
    """Every Route under ``routes``, through Mounts, with its full path."""
    for route in routes:
        if isinstance(route, Mount):
            yield from walk_routes(list(route.routes or []), prefix + route.path)
        elif isinstance(route, Route):
            methods = tuple(sorted((route.methods or {"GET"}) - {"HEAD"}))
            yield RouteInfo(prefix + route.path, methods, dict(route.param_convertors))


def site_routes() -> list[RouteInfo]:
    from kgi.site import create_site

    return list(walk_routes(list(create_site().app.routes)))


def area_of(path: str) -> str:
    for name, prefix in AREAS.items():
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            return name
    return "portal"


# --- sending and recording ------------------------------------------------------------


@dataclass
class Failure:
    attack: str
    role: str
    method: str
    url: str
    detail: str


@dataclass
class Sweep:
    """Sends the cases of one area and records what went wrong."""

    area: str
    site: str
    clients: dict[str, httpx.Client]
    csrf: dict[str, str]
    caplog: pytest.LogCaptureFixture
    rng: random.Random
    failures: list[Failure] = field(default_factory=list)
    _seen_records: int = 0

    def send(
        self,
        attack: str,
        role: str,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
    ) -> httpx.Response | None:
        CASES[self.area][attack] += 1
        label = url if len(url) < 300 else url[:300] + f"… ({len(url)} characters)"
        response = None
        for attempt in range(2):
            try:
                response = self.clients[role].request(
                    method, url, content=content, headers=headers, files=files, data=data
                )
                break
            except httpx.TimeoutException:
                self._fail(attack, role, method, label, "no answer within the timeout")
                return None
            except httpx.TransportError as exc:
                # uvicorn closes a connection after an unhandled error: the keep-alive
                # connection of the case before may be dead, so try once more afresh.
                if attempt == 1 and len(url) <= HEAD_LIMIT:
                    self._fail(attack, role, method, label, f"connection closed: {exc!r}")
        if response is None:
            # A request head over the HTTP server's limit is refused before any of our
            # code runs; uvicorn answers it by closing the connection.
            CLOSED[self.area] += 1
            return None
        if response.status_code >= 500:
            ERRORS[self.area][attack] += 1
            body = (content or b"")[:200]
            self._fail(attack, role, method, label, f"{response.status_code} for body {body!r}")
        self._collect_log(attack, role, method, label)
        return response

    def _fail(self, attack: str, role: str, method: str, url: str, detail: str) -> None:
        self.failures.append(Failure(attack, role, method, url, detail))

    def _collect_log(self, attack: str, role: str, method: str, url: str) -> None:
        records = self.caplog.records
        for record in records[self._seen_records :]:
            if record.levelno < logging.ERROR:
                continue
            # kgi.web logs before the answer goes out, so beside the right case; uvicorn
            # logs after it (and alone for an error in a streamed body), so perhaps
            # while the next case runs.
            where = "" if record.name == "kgi.web" else " (this case or the one before)"
            self._fail(
                attack, role, method, url, f"logged by {record.name}{where}: {describe(record)}"
            )
        self._seen_records = len(records)

    def form_body(self, fields: dict[str, str]) -> bytes:
        """Fields (values already in wire form) as an urlencoded body."""
        return "&".join(f"{quote(k, safe='')}={v}" for k, v in fields.items()).encode()

    def post_form(
        self, attack: str, role: str, url: str, fields: dict[str, str]
    ) -> httpx.Response | None:
        return self.send(
            attack,
            role,
            "POST",
            url,
            content=self.form_body(fields),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )


def describe(record: logging.LogRecord) -> str:
    """A logged error in a few lines: the exception and the innermost frames of ours."""
    if not record.exc_info or record.exc_info[1] is None:
        return record.getMessage()
    exc = record.exc_info[1]
    frames = [
        f"{frame.filename.split('/work/main/')[-1]}:{frame.lineno} {frame.name}"
        for frame in traceback.extract_tb(exc.__traceback__)
        if "site-packages" not in frame.filename
    ]
    return f"{type(exc).__name__}: {exc} at " + " <- ".join(reversed(frames[-3:]))


# --- state: accounts, subscribers, content, issues --------------------------------------


@dataclass
class State:
    """What the sweep needs to exist, and the concrete URLs that reach it."""

    seeds: list[str]
    emails: dict[str, str]


def prepare_state(with_issues: bool) -> State:
    """Subscribers in every state, the demo content, and with ``with_issues`` a draft and
    a sent issue (composed through the feeds API, so only where the newsletter is swept:
    elsewhere the feeds service's own requests would count against that area)."""
    load_demo()
    rows = "\n".join(f"sweep{n}@example.org,Leser {n},de,paper form" for n in range(3))
    transfer.import_csv(f"email,name,language,consent_source\n{rows}\n", "sweep.csv")
    optin.sign_up(
        optin.check_signup({"email": "pending.sweep@example.org", "language": "de"}),
        Context(source="sweep"),
    )
    with read_connection("subscribers") as conn:
        pending = find_by_key(conn, "pending.sweep@example.org")
        confirmed = find_by_key(conn, "sweep0@example.org")
    assert pending is not None and confirmed is not None
    unsubscribe_url, preferences_url = optin.manage_urls(confirmed)
    member = members_store.save(
        parse_member(
            {"name": "Sweepstadt", "federal_state": "BY", "latitude": "48.1", "longitude": "11.5"}
        )
    )
    seeds = [
        "/",
        "/login",
        "/admin",
        "/subscribers/signup",
        "/subscribers/admin/",
        "/subscribers/admin/import",
        f"/subscribers/admin/{confirmed.id}",
        path(optin.confirmation_url(pending)),
        path(unsubscribe_url),
        path(preferences_url),
        urlsplit(preferences_url).path.replace("/preferences/", "/privacy/") + "/export",
        "/news/",
        "/news/admin/",
        "/news/admin/new",
        "/news/admin/sources",
        "/newsletter/admin/",
        "/newsletter/archive/",
        "/members/",
        "/members/admin/",
        "/members/admin/new",
        f"/members/admin/{member}",
        *event_seeds(),
    ]
    if with_issues:
        seeds += issue_seeds()
    return State(seeds, {"admin": "sweep.admin@example.org", "editor": "sweep.editor@example.org"})


def event_seeds() -> list[str]:
    """A published series with a date, one registration waiting for confirmation and one
    confirmed; the URLs of their pages and links."""
    series_id = schedule.save_series(SeriesFields("Sweep-Reihe", "", ""))
    schedule.set_series_state(series_id, events_store.PUBLISHED)
    start = datetime(2031, 1, 1, 9, tzinfo=UTC)
    event = programme.add_event(
        series_id,
        EventFields(
            "Sweep-Termin", start, start + timedelta(hours=1), "Europe/Berlin", "online", "",
            "https://meet.example.org/sweep", 1, None,
        ),
    )  # fmt: skip
    series = schedule.get_series(series_id)
    links = []
    for email in ("waiting.sweep@example.org", "seated.sweep@example.org"):
        form = RegistrationForm(email, email, "Sweep", "", "", "de", (event,), False)
        registration.register(series, form, [event])
        with read_connection("events") as conn:
            row_id = conn.execute(
                sa.select(events_store.registrations.c.id).where(
                    events_store.registrations.c.email_key == email
                )
            ).scalar_one()
            person = events_store.registration(conn, row_id)
        assert person is not None
        links.append(path(event_links.confirmation_url(person)))
    seated = registration.confirm(links[1].split("/confirm/")[1].split("?")[0])
    return [
        "/events/",
        f"/events/{series.slug}",
        f"/events/{series.slug}/calendar.ics",
        links[0],
        path(event_links.manage_url(seated)),
        "/events/admin/",
        f"/events/admin/{series_id}",
        f"/events/admin/{series_id}/dates/new",
        f"/events/admin/dates/{event}",
        f"/events/admin/dates/{event}/participants.csv",
    ]


def issue_seeds() -> list[str]:
    """A draft issue and a sent one in the archive; the URLs of their pages."""
    draft = compose.create_issue("de", "sweep.admin@example.org", "Sweep draft")
    compose.add_since(draft.id, "sweep", datetime(2000, 1, 1, tzinfo=UTC))
    sent = compose.create_issue("de", "sweep.admin@example.org", "Sweep archive")
    compose.add_since(sent.id, "sweep", datetime(2000, 1, 1, tzinfo=UTC))
    rendered = render.rendered_of(_issue(sent.id))
    with engine("newsletter").begin() as conn:
        conn.execute(
            store.issues.update()
            .where(store.issues.c.id == sent.id)
            .values(
                state=store.SENT,
                started_at=utcnow(),
                finished_at=utcnow(),
                rendered_html=rendered.html,
                rendered_text=rendered.text,
            )
        )
    return [
        f"/newsletter/admin/{draft.id}",
        f"/newsletter/admin/{draft.id}/preview.html",
        f"/newsletter/archive/{sent.id}",
    ]


def path(url: str) -> str:
    """An absolute URL as path and query, for the clients' base URL."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _issue(issue_id: int) -> store.Issue:
    with read_connection("newsletter") as conn:
        issue = store.get_issue(conn, issue_id)
    assert issue is not None
    return issue


# --- discovering links and forms -------------------------------------------------------


@dataclass(frozen=True)
class FormTarget:
    """One way to submit one form: its action, method and fields (wire form)."""

    role: str
    method: str
    action: str
    fields: tuple[tuple[str, str], ...]
    attackable: tuple[str, ...]
    has_file: bool


def _field_value(name: str, value: str | None) -> str:
    if value:
        return quote(value, safe="")
    return quote(VALID_FIELDS.get(name, ""), safe="")


def forms_of(role: str, page_url: str, html: str, own_email: str | None) -> list[FormTarget]:
    """Every submit variant of every form on a page."""
    soup = BeautifulSoup(html, "html.parser")
    targets = []
    for form in soup.find_all("form"):
        method = str(form.get("method") or "get").upper()
        action = urljoin(page_url, str(form.get("action") or page_url))
        fields: dict[str, str] = {}
        has_file = False
        for element in form.find_all(["input", "select", "textarea"]):
            name = element.get("name")
            if not name:
                continue
            kind = str(element.get("type") or "").lower()
            if kind == "file":
                has_file = True
                continue
            if kind in ("checkbox", "radio") and not element.has_attr("checked"):
                continue
            if element.name == "select":
                options = element.find_all("option")
                chosen = next((o for o in options if o.has_attr("selected")), None)
                chosen = chosen or (options[0] if options else None)
                value = str(chosen.get("value", chosen.text)) if chosen else ""
            elif element.name == "textarea":
                value = element.text
            else:
                value = str(element.get("value") or "")
            if name == "addresses" and own_email:
                value = own_email
            fields[str(name)] = _field_value(str(name), value)
        buttons = [
            b
            for b in form.find_all(["button", "input"])
            if (b.name == "button" and str(b.get("type") or "submit") == "submit")
            or str(b.get("type") or "") == "submit"
        ]
        variants = [(action, {})] if not buttons else []
        for button in buttons:
            target = urljoin(page_url, str(button.get("formaction") or action))
            extra = {}
            if button.get("name"):
                extra[str(button["name"])] = quote(str(button.get("value") or ""), safe="")
            variants.append((target, extra))
        for target, extra in variants:
            all_fields = {**fields, **extra}
            targets.append(
                FormTarget(
                    role,
                    method,
                    urlsplit(target).path,
                    tuple(all_fields.items()),
                    tuple(all_fields),
                    has_file,
                )
            )
    return targets


def crawl(
    sweep: Sweep, role: str, seeds: list[str], own_email: str | None
) -> tuple[set[str], list[FormTarget]]:
    """Pages of the sweep's area reachable from ``seeds`` for ``role``; their forms."""
    queue = list(seeds)
    seen: set[str] = set()
    per_route: Counter[str] = Counter()
    forms: list[FormTarget] = []
    routes = site_routes()
    while queue and len(seen) < CRAWL_PAGES:
        url = queue.pop(0)
        path = urlsplit(url).path
        if url in seen or area_of(path) != sweep.area:
            continue
        route = next(
            (r for r in routes if "GET" in r.methods and r.matches(path) is not None), None
        )
        if route is None or per_route[route.path] >= 2:
            continue
        per_route[route.path] += 1
        seen.add(url)
        response = sweep.clients[role].get(url)
        if "text/html" not in response.headers.get("content-type", ""):
            continue
        forms.extend(forms_of(role, url, response.text, own_email))
        for link in BeautifulSoup(response.text, "html.parser").find_all("a", href=True):
            target = urljoin(url, str(link["href"]))
            if target.startswith("/") and not target.startswith("//"):
                queue.append(target)
    return seen, forms


# --- the attacks --------------------------------------------------------------------------


def example_values(route: RouteInfo, known: set[str]) -> dict[str, str]:
    """Concrete path parameters for ``route``: from a URL seen, else a plain default."""
    for url in sorted(known):
        found = route.matches(urlsplit(url).path)
        if found is not None:
            return found
    defaults = {"fmt": "html", "action": "pause", "token": "x", "slug": "x", "name": "x.png"}
    return {name: defaults.get(name, "1") for name in route.convertors}


def csrf_fields(sweep: Sweep, role: str) -> dict[str, str]:
    return {"csrf_token": quote(sweep.csrf[role], safe="")}


def attack_path_params(sweep: Sweep, routes: list[RouteInfo], known: set[str]) -> None:
    for route in routes:
        base = example_values(route, known)
        for name in route.convertors:
            for value in corpus(sweep.rng, PATH_VALUES, in_url=True):
                url = route.url({**base, name: value})
                for method in route.methods:
                    if method == "GET":
                        sweep.send("path params", "admin", "GET", url)
                    else:
                        sweep.post_form("path params", "admin", url, csrf_fields(sweep, "admin"))


def attack_query_params(
    sweep: Sweep, routes: list[RouteInfo], known: set[str], names: set[str]
) -> None:
    for route in routes:
        if "GET" not in route.methods:
            continue
        url = route.url(example_values(route, known))
        for name in sorted(names):
            for value in corpus(sweep.rng, QUERY_VALUES, in_url=True):
                role = sweep.rng.choice(["admin", "admin", "editor", "anonymous"])
                sweep.send("query params", role, "GET", f"{url}?{quote(name)}={value}")


def attack_forms(sweep: Sweep, forms: list[FormTarget]) -> None:
    unique = {(f.role, f.method, f.action, f.attackable): f for f in forms}
    for form in unique.values():
        if form.has_file:
            continue  # the CSV class covers uploads
        fields = dict(form.fields)
        for name in form.attackable:
            values = (
                HOSTILE_CSRF
                if name == "csrf_token"
                else corpus(sweep.rng, FORM_VALUES, in_url=form.method == "GET")
            )
            for value in values:
                changed = {**fields, name: value}
                if form.method == "GET":
                    query = "&".join(f"{quote(k)}={v}" for k, v in changed.items())
                    sweep.send("form fields", form.role, "GET", f"{form.action}?{query}")
                else:
                    sweep.post_form("form fields", form.role, form.action, changed)
            if form.method == "POST" and form.role == "admin" and name != "csrf_token":
                # The same hostile input from weaker roles, with their own tokens.
                for role in ("editor", "anonymous"):
                    for value in corpus(sweep.rng, FORM_VALUES_OTHER_ROLES):
                        changed = {**fields, **csrf_fields(sweep, role), name: value}
                        sweep.post_form("form fields", role, form.action, changed)


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def hostile_json_bodies(rng: random.Random) -> list[bytes]:
    """Bodies for a JSON endpoint: too deep, huge numbers, wrong types, lone surrogates."""
    bodies = [
        deep(5000),
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b'{"email": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        b'{"ids": [' + b"9" * 5000 + b"]}",
        b'{"ids": [999999999999999999999999999999, -1, 0]}',
        b'{"ids": [1e309, NaN, Infinity, -Infinity]}',
        b'{"ids": [true, false, null]}',
        b'{"ids": "1,2,3"}',
        b'{"ids": 5}',
        b'{"ids": {"0": 1}}',
        b'{"ids": [' + b",".join(b"1" for _ in range(5000)) + b"]}",
        b"[]",
        b"null",
        b'"text"',
        b"",
        b"\xff\xfe{}",
        b"\xef\xbb\xbf{}",
        b'{"email": "a@example.org", "email": "b@example.org"}',
        b'{"email": "lone\\ud800@example.org"}',
        b'{"email": "sweep.json@example.org", "name": "Lone \\ud800 surrogate"}',
        b'{"email": "sweep.json@example.org", "name": "\\udfff"}',
        b'{"email": "sweep.json@example.org", "source": "\\ud83d"}',
        b'{"email": "sweep.json@example.org", "name": "a\\u0000b"}',
        b'{"email": "sweep.json@example.org", "language": ["de"]}',
        b'{"email": "sweep.json@example.org", "name": {"first": "x"}}',
        b'{"email": "sweep.json@example.org", "source": {"deep": [1, 2]}}',
        b'{"email": 12345678901234567890123456789012345678901234567890}',
        b'{"email": "' + b"x" * 15000 + b'@example.org"}',
        json.dumps({"email": "=?utf-8?b?YUBleGFtcGxlLm9yZw==?="}).encode(),
        json.dumps({"email": "sweep.json@example.org", "name": "\r\nBcc: x@evil.example"}).encode(),
        json.dumps({"email": "0001-01-01T00:30@example.org"}).encode(),
    ]
    for _ in range(8):
        value: Any = rng.choice(
            [rng.randint(-(10**40), 10**40), rng.random() * 1e308, "ä" * rng.randint(1, 500), None]
        )
        bodies.append(
            json.dumps({rng.choice(["email", "name", "language", "ids"]): value}).encode()
        )
    return bodies


def attack_json(sweep: Sweep, routes: list[RouteInfo]) -> None:
    endpoints = [
        r for r in routes if "POST" in r.methods and ("/api/" in r.path or "/internal/" in r.path)
    ]
    for route in endpoints:
        for body in hostile_json_bodies(sweep.rng):
            headers = {"content-type": "application/json", **service_headers()}
            sweep.send("JSON", "anonymous", "POST", route.path, content=body, headers=headers)


def attack_headers(sweep: Sweep, routes: list[RouteInfo], known: set[str]) -> None:
    for route in routes:
        url = route.url(example_values(route, known))
        for headers in HOSTILE_HEADERS:
            for method in route.methods:
                role = "anonymous" if "cookie" in headers else "admin"
                body = sweep.form_body(csrf_fields(sweep, role)) if method != "GET" else None
                sent = dict(headers)
                if body is not None and "content-type" not in sent:
                    sent["content-type"] = b"application/x-www-form-urlencoded"
                sweep.send("headers", role, method, url, content=body, headers=sent)
    internal = [r for r in routes if "/internal/" in r.path]
    for route in internal:
        for token in ("Bearer ä".encode("latin-1"), "Bearer ❤".encode(), b"\xff" * 64):
            for method in route.methods:
                body = b'{"ids": [1]}' if method == "POST" else None
                headers = {"authorization": token, "content-type": b"application/json"}
                sweep.send(
                    "headers", "anonymous", method, route.path, content=body, headers=headers
                )


def hostile_csv_files() -> list[bytes]:
    header = b"email,name,language,consent_source,subscribed_at\n"
    return [
        header + b"big@example.org," + b"x" * (130 * 1024) + b",de,form,\n",
        header + b'"' + b"y" * (200 * 1024) + b"\n",
        header + b'quote@example.org,"unbalanced,de,form,\n' + b"next@example.org,N,de,form,\n",
        header + b"nul@example.org,A\x00B,de,form,\n",
        header + b"\x00\x00\x00\n",
        header + b"extra@example.org,E,de,form,2026-01-01,extra,columns,here\n",
        header + b"short@example.org\n",
        header + b"\n\n\n",
        header,
        b"",
        b"\xff\xfe" + "email\nutf16@example.org\n".encode("utf-16-le"),
        b"\xef\xbb\xbf" + header + b"bom@example.org,B,de,form,\n",
        header + "cp1252@example.org,J\xfcrgen,de,form,\n".encode("cp1252"),
        header + b"date1@example.org,D,de,form,0001-01-01T00:30+14:00\n",
        header + b"date2@example.org,D,de,form,9999-12-31T23:59+14:00\n",
        header + b"date3@example.org,D,de,form,9999-12-31T23:59-14:00\n",
        header + b"date4@example.org,D,de,form,999999999999999999999999999999\n",
        header + b"lang@example.org,L,xx-YY-zz,form,\n",
        header + b"=?utf-8?b?YUBiLmM=?=,=?utf-8?q?X?=,de,form,\n",
        header + b'crlf@example.org,"A\r\nBcc: x@evil.example",de,form,\n',
        header + b"\r\r\rmac@example.org,M,de,form,\r",
        b"email,email,email\na@example.org,b@example.org,c@example.org\n",
        b"EMAIL , Consent_Source \nupper@example.org,form\n",
        b"name\nnoemail\n",
        bytes(range(256)) * 20,
        header + b"".join(b"row%d@example.org,R,de,form,\n" % n for n in range(2000)),
    ]


def hostile_member_files() -> list[bytes]:
    """Member lists as office staff and attackers make them (semicolons, decimal commas,
    numbers no float holds, formulas, Windows-1252)."""
    header = "name;bundesland;breitengrad;längengrad;kontakt;e-mail;webseite\n".encode()
    rows = [
        "Köln;NW;50,94;6,96;;;",
        "NaN;BY;nan;nan;;;",
        "Inf;BY;inf;-inf;;;",
        "Huge;BY;1e999;1e-999;;;",
        "Swapped;BY;11,5;48,1;;;",
        ";BY;48;11;;;",
        '=HYPERLINK("http://evil");BY;48;11;=1+1;a@b;javascript:alert(1)',
        "Köln;NW;50,94;6,96;;;",
        "Neustadt;DE-XX;48;11;;;",
        "Weit;Bayern;48," + "1" * 5000 + ";11;;;",
    ]
    text = header + "\n".join(rows).encode()
    return [
        text,
        text.decode().encode("cp1252", errors="replace"),
        b"\xef\xbb\xbf" + text,
        header + b"".join(b"Ort %d;BY;48;11;;;\n" % n for n in range(6000)),
        b"name,federal_state\nOnly,BY\n",
    ]


#: Where each area takes CSV files, and the files for it (besides the common ones).
CSV_FILES = {"subscribers": list, "members": hostile_member_files}


def attack_csv(sweep: Sweep, target: str) -> None:
    for data in hostile_csv_files() + CSV_FILES[sweep.area]():
        for name in ("import.csv", "ä\x00.csv", "../../etc/passwd"):
            sweep.send(
                "CSV",
                "admin",
                "POST",
                target,
                data=csrf_fields_plain(sweep, "admin"),
                files={"file": (name, data, "text/csv")},
            )
            if len(data) > 100_000:
                break  # one name is enough for the big ones


def csrf_fields_plain(sweep: Sweep, role: str) -> dict[str, str]:
    return {"csrf_token": sweep.csrf[role]}


# --- the tests --------------------------------------------------------------------------


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog, also fed by uvicorn's loggers (they do not propagate to the root)."""
    caplog.set_level(logging.ERROR)
    uvicorn_loggers = [logging.getLogger(name) for name in ("uvicorn.error", "uvicorn.asgi")]
    for logger in uvicorn_loggers:
        logger.addHandler(caplog.handler)
    yield caplog
    for logger in uvicorn_loggers:
        logger.removeHandler(caplog.handler)


def _client(site: str) -> httpx.Client:
    return httpx.Client(base_url=site, timeout=30, follow_redirects=False)


def run_area(area: str, site: str, caplog: pytest.LogCaptureFixture) -> Sweep:
    state = prepare_state(with_issues=area == "newsletter")
    admin = login(site, state.emails["admin"], role="admin")
    editor = login(site, state.emails["editor"], role="editor")
    anonymous = _client(site)
    for client in (admin, editor):
        client.timeout = httpx.Timeout(30)
        client.follow_redirects = False
    clients = {"admin": admin, "editor": editor, "anonymous": anonymous}
    csrf = {}
    for role, client in clients.items():
        page = client.get("/login").text
        csrf[role] = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    sweep = Sweep(area, site, clients, csrf, caplog, random.Random(f"{SEED}-{area}"))
    routes = [r for r in site_routes() if area_of(r.path) == area]
    known: set[str] = set(state.seeds)
    forms: list[FormTarget] = []
    for role in ("admin", "editor", "anonymous"):
        seen, found = crawl(sweep, role, state.seeds, state.emails.get(role))
        known |= seen
        forms += [f for f in found if area_of(f.action) == area]
    known |= {f.action for f in forms}
    query_names = set(QUERY_NAMES) | {
        name for f in forms if f.method == "GET" for name in f.attackable
    }
    started = time.monotonic()
    attack_path_params(sweep, routes, known)
    attack_query_params(sweep, routes, known, query_names)
    attack_forms(sweep, forms)
    attack_json(sweep, routes)
    attack_headers(sweep, routes, known)
    if area in CSV_IMPORTS:
        attack_csv(sweep, CSV_IMPORTS[area])
    sweep.send("headers", "anonymous", "GET", "/")  # collects log records of the last case
    CASES[area]["seconds"] = round(time.monotonic() - started)
    return sweep


def assert_clean(sweep: Sweep) -> None:
    """Fail with each distinct problem once: how often, one case that shows it."""
    if not sweep.failures:
        return
    groups: dict[str, list[Failure]] = defaultdict(list)
    for failure in sweep.failures:
        key = failure.detail[:200] if failure.detail.startswith("logged") else failure.detail[:3]
        groups[f"{failure.attack} {failure.method} {route_of(failure.url)} {key}"].append(failure)
    lines = []
    for cases in groups.values():
        first = cases[0]
        lines.append(
            f"{len(cases)}x [{first.attack}] {first.role} {first.method} {first.url}\n"
            f"      {first.detail[:400]}"
        )
    pytest.fail(
        f"{len(sweep.failures)} server errors or logged tracebacks in {sweep.area} "
        f"({OWNERS[sweep.area]}):\n" + "\n".join(lines)
    )


def route_of(url: str) -> str:
    """The route pattern ``url`` belongs to (for grouping failures)."""
    path_only = urlsplit(url.split("…")[0]).path
    route = next((r for r in site_routes() if r.matches(path_only) is not None), None)
    return route.path if route else path_only[:80]


@pytest.mark.parametrize("area", list(AREAS))
def test_sweep(area: str, site: str, smtp: Any, server_log: pytest.LogCaptureFixture) -> None:
    """No 5xx and no traceback for any hostile input anywhere in ``area``."""
    assert_clean(run_area(area, site, server_log))


def test_sweep_report(capsys: pytest.CaptureFixture[str]) -> None:
    """Cases per attack class (the table for the release note)."""
    assert CASES, "no sweep ran"
    with capsys.disabled():
        print("\n| attack class | " + " | ".join(CASES) + " | all | 5xx |")
        print("|---|" + "---|" * (len(CASES) + 2))
        for attack in CLASSES:
            counts = [CASES[area][attack] for area in CASES]
            errors = sum(ERRORS[area][attack] for area in CASES)
            row = " | ".join(str(c) for c in counts)
            print(f"| {attack} | {row} | {sum(counts)} | {errors} |")
        print("seconds per area: " + ", ".join(f"{a} {CASES[a]['seconds']}" for a in CASES))
        print("refused by uvicorn (request head over 16 KiB): " + str(dict(CLOSED)))
