"""Event series with registration, against the real stack: Chromium for the journey, a
real SMTP server for the mails, a real worker on Redis, the database the suite runs on.

Judged from outside: the invitations by vobject (an iCalendar parser we did not write,
with its own reading of time zones), the pages by axe-core in Chromium, the CSV export by
Python's csv reader, the mails by the standard library's strict parser.
"""

from __future__ import annotations

import csv
import io
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
import vobject

from services.events import links, programme, registration, schedule, store, upkeep
from services.events.fields import (
    EventFields,
    InvalidEvent,
    RegistrationForm,
    SeriesFields,
    parse_event,
    slug_of,
)
from services.events.times import when
from shared.database import engine, utcnow
from shared.web.paths import path_for
from tests.browser import WIDTHS, chromium, horizontal_overflow, page_as, wcag_violations
from tests.conftest import csrf_of, link_in, login, wait_for

#: Every mail of a registration leads to its own page, where one cancels.
MANAGE_PATH = "/events/registration/"


def add_series(
    *dates: dict[str, Any], title: str = "Kommunen international"
) -> tuple[store.Series, list[int]]:
    """A published series with ``dates`` (EventFields overrides; defaults: online, in a
    week at 10:00 Berlin time, no limit)."""
    series_id = schedule.save_series(
        SeriesFields(title, "Eine Online-Reihe für Kommunen.", "<p>Vier Termine.</p>")
    )
    schedule.set_series_state(series_id, store.PUBLISHED)
    ids = []
    for number, overrides in enumerate(dates or ({},)):
        start = datetime(2030, 3, 18 + number, 9, 0, tzinfo=UTC)  # 10:00 in Berlin
        fields: dict[str, Any] = {
            "title": f"Termin {number + 1}",
            "starts_at": start,
            "ends_at": start + timedelta(hours=2),
            "timezone": "Europe/Berlin",
            "mode": "online",
            "place": "",
            "link": "https://meet.example.org/kgi",
            "capacity": None,
            "registration_deadline": None,
        }
        ids.append(programme.add_event(series_id, EventFields(**{**fields, **overrides})))
    return schedule.get_series(series_id), ids


def form(email: str, event_ids: list[int], name: str = "Lea Becker") -> RegistrationForm:
    return RegistrationForm(
        email=email, email_key=email.lower(), name=name, organisation="Jugendamt",
        municipality="Jena", language="de", event_ids=tuple(event_ids), whole_series=False,
    )  # fmt: skip


def confirmed_registration(
    series: store.Series, email: str, event_ids: list[int]
) -> store.Registration:
    """Register and confirm without the mail round trip (the journey test does that)."""
    registration.register(series, form(email, event_ids), event_ids)
    with engine("events").connect() as conn:
        row_id = conn.execute(
            sa.select(store.registrations.c.id).where(store.registrations.c.email_key == email)
        ).scalar_one()
        pending = store.registration(conn, row_id)
    assert pending is not None
    token = links.confirmation_url(pending).split("/confirm/")[1].split("?")[0]
    return registration.confirm(token)


def seat_states(event_id: int) -> dict[str, str]:
    with engine("events").connect() as conn:
        rows = conn.execute(
            sa.select(store.registrations.c.email, store.seats.c.status)
            .join(store.registrations, store.registrations.c.id == store.seats.c.registration_id)
            .where(store.seats.c.event_id == event_id)
        )
        return {row.email: row.status for row in rows}


def invitations_of(mail: Any) -> list[tuple[str, Any]]:
    """(METHOD, parsed calendar) of each iCalendar attachment, read by vobject: one date
    each, as RFC 5546 wants one UID per REQUEST or CANCEL."""
    found = []
    for part in mail.message.iter_attachments():
        if part.get_content_type() != "text/calendar":
            continue
        method = part.get_param("method")
        parsed = vobject.readOne(part.get_content())
        assert parsed.method.value == method and len(parsed.vevent_list) == 1
        found.append((method, parsed))
    return found


def invitation_of(mail: Any) -> tuple[str, Any]:
    """The one invitation of a mail about one date."""
    [(method, parsed)] = invitations_of(mail)
    [part] = [p for p in mail.message.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert part.get_filename() == "invite.ics"
    return method, parsed


def mails_to(smtp: Any, address: str, words: str) -> list[Any]:
    """The mails to ``address`` whose subject begins with ``words``."""
    return [mail for mail in smtp.to(address) if str(mail.message["Subject"]).startswith(words)]


# --- reading what organisers type --------------------------------------------------------


def test_times_are_read_in_the_events_zone_across_daylight_saving_time() -> None:
    winter = parse_event(
        {"title": "A", "starts_at": "2030-03-18T10:00", "ends_at": "2030-03-18T12:00",
         "timezone": "Europe/Berlin", "mode": "online", "link": "meet.example.org/a"}
    )  # fmt: skip
    summer = parse_event(
        {"title": "B", "starts_at": "2030-07-18T10:00", "ends_at": "2030-07-18T12:00",
         "timezone": "Europe/Berlin", "mode": "on_site", "place": "Rathaus Jena",
         "capacity": "25", "registration_deadline": "2030-07-11T23:59"}
    )  # fmt: skip
    assert winter.starts_at == datetime(2030, 3, 18, 9, tzinfo=UTC)  # CET, UTC+1
    assert summer.starts_at == datetime(2030, 7, 18, 8, tzinfo=UTC)  # CEST, UTC+2
    assert winter.link == "https://meet.example.org/a" and summer.capacity == 25
    assert when(summer, "de") == "Donnerstag, 18. Juli 2030, 10:00–12:00 Uhr"
    assert when(winter, "en") == "Monday, 18 March 2030, 10:00–12:00"
    for change, field in [
        ({"ends_at": "2030-03-18T09:00"}, "ends_at"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"link": "javascript:alert(1)"}, "link"),
        ({"link": ""}, "link"),
        ({"capacity": "-3"}, "capacity"),
        ({"starts_at": "18.03.2030"}, "starts_at"),
        ({"registration_deadline": "2030-03-19T10:00"}, "registration_deadline"),
        ({"mode": "hybrid"}, "mode"),
    ]:
        raw = {"title": "A", "starts_at": "2030-03-18T10:00", "ends_at": "2030-03-18T12:00",
               "mode": "online", "link": "https://meet.example.org/a", **change}  # fmt: skip
        with pytest.raises(InvalidEvent) as refused:
            parse_event(raw)
        assert refused.value.field == field
    assert (
        slug_of("Kommunale Jugendarbeit: Übergänge 2030!")
        == "kommunale-jugendarbeit-uebergaenge-2030"
    )


# --- the journey in Chromium ----------------------------------------------------------------


def test_registration_journey_in_chromium(site: str, worker: Any, smtp: Any) -> None:
    series, ids = add_series(
        {}, {"capacity": 1}, {"mode": "on_site", "place": "Rathaus Jena", "link": None}
    )
    confirmed_registration(series, "first@example.org", [ids[1]])  # the second date is full
    url = site + path_for("events:series", slug=series.slug)
    with chromium() as browser, page_as(browser, site, None) as (page, csp):
        page.goto(url)
        assert "ausgebucht – Warteliste" in page.locator("table").inner_text()
        assert_accessible(page, "series")
        # Nothing chosen: the form says so and keeps what was typed.
        page.fill("#name", "Lea Becker")
        page.fill("#email", "Lea.Becker@Example.org")
        page.get_by_role("button", name="Anmelden").click()
        assert "mindestens einen Termin" in page.locator("#dates-error").inner_text()
        assert page.input_value("#name") == "Lea Becker"
        assert_accessible(page, "series with an error")
        page.get_by_label("Die ganze Reihe").check()
        page.fill("#organisation", "Jugendamt")
        page.fill("#municipality", "Jena")
        page.get_by_role("button", name="Anmelden").click()
        page.wait_for_url("**/events/sent#register")
        assert_accessible(page, "sent")

        mail = wait_for(lambda: smtp.to("Lea.Becker@example.org"), message="confirmation mail")[0]
        assert (
            str(mail.message["Subject"]) == f"Bitte bestätigen Sie Ihre Anmeldung: {series.title}"
        )
        assert mail.message["Auto-Submitted"] == "auto-generated"
        link = link_in(mail.part("plain"), "/events/confirm/")
        assert link_in(mail.part("html"), MANAGE_PATH)
        # A mail scanner only GETs the link: nothing is confirmed by that.
        assert httpx.get(link).status_code == 200
        assert seat_states(ids[0]) == {"Lea.Becker@example.org": "requested"}

        page.goto(link)
        assert_accessible(page, "confirm")
        page.get_by_role("button", name="Anmeldung bestätigen").click()
        assert "Ihre Anmeldung ist bestätigt" in page.locator("[role=status]").inner_text()
        assert "Warteliste, Platz 1" in page.locator("form").inner_text()
        assert_accessible(page, "own registration")
        assert csp == []

    assert seat_states(ids[0])["Lea.Becker@example.org"] == "confirmed"
    assert seat_states(ids[1])["Lea.Becker@example.org"] == "waiting"
    [done] = wait_for(lambda: mails_to(smtp, "Lea.Becker@example.org", "Ihre Anmeldung:"))
    assert done.message.get_content_type() == "multipart/mixed"
    assert "Termin 2 (Warteliste, Platz 1)" in " ".join(done.part("plain").split())
    assert link_in(done.part("plain"), MANAGE_PATH)
    # One invitation per date held; the waiting-list date has none (yet).
    found = invitations_of(done)
    assert {method for method, _ in found} == {"REQUEST"}
    entries = sorted((c.vevent for _, c in found), key=lambda entry: entry.dtstart.value)
    assert len(entries) == 2
    start = entries[0].dtstart.value
    assert (start.hour, start.minute) == (10, 0)
    # vobject converts with the VTIMEZONE we sent, by its own reading of it.
    assert start.astimezone(UTC) == datetime(2030, 3, 18, 9, tzinfo=UTC)
    assert entries[0].location.value == "https://meet.example.org/kgi"
    assert entries[1].location.value == "Rathaus Jena"
    assert entries[0].attendee.value == "mailto:Lea.Becker@example.org"
    assert entries[0].attendee.params["PARTSTAT"] == ["ACCEPTED"]
    assert {entry.uid.value for entry in entries} == {
        f"event-{ids[0]}@127.0.0.1",
        f"event-{ids[2]}@127.0.0.1",
    }


def assert_accessible(page: Any, name: str) -> None:
    """No WCAG 2.1 AA violation and no sideways scrolling at either width."""
    for width_name, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        assert wcag_violations(page) == [], (name, width_name)
        assert horizontal_overflow(page) == 0, (name, width_name)


# --- the waiting list ------------------------------------------------------------------------


def test_a_cancelled_place_goes_to_the_longest_waiting(site: str, worker: Any, smtp: Any) -> None:
    series, [event] = add_series({"capacity": 1})
    first = confirmed_registration(series, "first@example.org", [event])
    confirmed_registration(series, "second@example.org", [event])
    confirmed_registration(series, "third@example.org", [event])
    assert seat_states(event) == {
        "first@example.org": "confirmed",
        "second@example.org": "waiting",
        "third@example.org": "waiting",
    }
    # The first cancels from the link in their mail.
    wait_for(lambda: mails_to(smtp, "first@example.org", "Ihre Anmeldung:"))
    manage = links.manage_url(first)
    client = httpx.Client()
    page = client.get(manage)
    assert page.status_code == 200
    answer = client.post(manage, data={"csrf_token": csrf_of(page.text), "dates": str(event)})
    assert answer.status_code == 200 and "Abgemeldet" in answer.text
    assert seat_states(event) == {
        "first@example.org": "cancelled",
        "second@example.org": "confirmed",
        "third@example.org": "waiting",
    }
    [moved] = wait_for(lambda: mails_to(smtp, "second@example.org", "Ein Platz ist für Sie frei"))
    method, calendar = invitation_of(moved)
    assert method == "REQUEST" and calendar.vevent.uid.value == f"event-{event}@127.0.0.1"
    assert link_in(moved.part("plain"), MANAGE_PATH)
    [bye] = wait_for(lambda: mails_to(smtp, "first@example.org", "Ihre Abmeldung"))
    method, calendar = invitation_of(bye)
    assert method == "CANCEL" and calendar.vevent.status.value == "CANCELLED"
    assert not mails_to(smtp, "third@example.org", "Ein Platz")
    # Cancelling again changes nothing and mails nothing.
    assert registration.cancel(first, [event]) == []


def test_simultaneous_confirmations_never_overbook() -> None:
    series, [event] = add_series({"capacity": 3})
    tokens = []
    for number in range(12):
        email = f"p{number}@example.org"
        registration.register(series, form(email, [event]), [event])
        with engine("events").connect() as conn:
            row_id = conn.execute(
                sa.select(store.registrations.c.id).where(store.registrations.c.email_key == email)
            ).scalar_one()
            person = store.registration(conn, row_id)
        tokens.append(links.confirmation_url(person).split("/confirm/")[1].split("?")[0])
    barrier = threading.Barrier(len(tokens))
    errors: list[BaseException] = []

    def confirm(token: str) -> None:
        barrier.wait()
        try:
            registration.confirm(token)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=confirm, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    states = list(seat_states(event).values())
    assert states.count("confirmed") == 3 and states.count("waiting") == 9
    assert schedule.get_event(event).taken == 3


def at_once(*calls: Any) -> list[Any]:
    """Run the calls in threads released together; their results (or errors)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(number: int, call: Any) -> None:
        barrier.wait()
        try:
            results[number] = call()
        except Exception as exc:  # reported to the test
            results[number] = exc

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def outbox_kinds(email: str) -> list[str]:
    with engine("events").connect() as conn:
        return list(
            conn.execute(
                sa.select(store.event_mails.c.kind)
                .join(store.registrations)
                .where(store.registrations.c.email_key == email)
                .order_by(store.event_mails.c.id)
            ).scalars()
        )


def test_simultaneous_cancellations_lose_no_place_and_mail_once() -> None:
    series, [event] = add_series({"capacity": 1})
    seated = confirmed_registration(series, "seated@example.org", [event])
    first = confirmed_registration(series, "first@example.org", [event])
    confirmed_registration(series, "second@example.org", [event])
    # The one holding the place and the first waiting cancel at the same moment; the
    # first waiting also clicks twice.
    results = at_once(
        lambda: registration.cancel(seated, [event]),
        lambda: registration.cancel(first, [event]),
        lambda: registration.cancel(first, [event]),
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(map(len, results)) == [0, 1, 1]
    assert seat_states(event) == {
        "seated@example.org": "cancelled",
        "first@example.org": "cancelled",
        "second@example.org": "confirmed",
    }
    # Either the first waiting gave back the waiting place, or (the holder being quicker)
    # the place it had just moved up to (that mail is then skipped): one cancellation.
    assert outbox_kinds("first@example.org") in (
        ["confirm", "registered", "cancelled"],
        ["confirm", "registered", "moved_up", "cancelled"],
    )
    assert outbox_kinds("second@example.org") == ["confirm", "registered", "moved_up"]
    # A form sent twice at once by a new address: one registration, no error.
    person = form("double@example.org", [event])
    results = at_once(*[lambda: registration.register(series, person, [event])] * 2)
    assert results == [None, None]
    assert outbox_kinds("double@example.org") in (["confirm"], ["confirm", "confirm"])


def test_a_link_never_opens_another_persons_registration() -> None:
    series, [event] = add_series()
    registration.register(series, form("lea@example.org", [event]), [event])
    with engine("events").connect() as conn:
        pending = store.registration(
            conn, conn.execute(sa.select(store.registrations.c.id)).scalar_one()
        )
    assert pending is not None
    token = links.confirmation_url(pending).split("/confirm/")[1].split("?")[0]
    person = registration.confirm(token)
    assert links.registration_to_confirm(token).id == person.id  # still shows it
    # Purged, and the id given to someone else (SQLite reuses the highest id).
    with engine("events").begin() as conn:
        conn.execute(store.event_mails.delete())
        conn.execute(store.seats.delete())
        conn.execute(
            store.registrations.update()
            .where(store.registrations.c.id == person.id)
            .values(email="other@example.org", email_key="other@example.org", manage_key="x" * 32)
        )
    with pytest.raises(links.LinkExpired):
        links.registration_to_confirm(token)
    with pytest.raises(links.LinkExpired):
        links.registration_to_manage(
            links.manage_url(person).split("/registration/")[1].split("?")[0]
        )


# --- organisers' changes, reminders, purge -------------------------------------------------


def test_changes_and_cancellations_reach_everyone_registered(
    site: str, worker: Any, smtp: Any
) -> None:
    series, [event] = add_series({"capacity": 1})
    confirmed_registration(series, "seated@example.org", [event])
    confirmed_registration(series, "waiting@example.org", [event])
    admin = login(site)
    page_url = path_for("events:admin_event", id=event)
    page = admin.get(page_url)
    assert "seated@example.org" in page.text and "waiting@example.org" in page.text
    fields = {
        "csrf_token": csrf_of(page.text), "title": "Termin 1", "starts_at": "2030-03-18T14:00",
        "ends_at": "2030-03-18T16:00", "timezone": "Europe/Berlin", "mode": "online",
        "link": "https://meet.example.org/neu", "capacity": "2",
    }  # fmt: skip
    saved = admin.post(page_url, data=fields)
    assert saved.status_code == 303
    # Two places now: the waiting person moved up; both were told of the new time.
    assert set(seat_states(event).values()) == {"confirmed"}
    [changed] = wait_for(lambda: mails_to(smtp, "seated@example.org", "Geändert"))
    method, calendar = invitation_of(changed)
    assert method == "REQUEST" and calendar.vevent.sequence.value == "1"
    assert calendar.vevent.dtstart.value.hour == 14
    assert "https://meet.example.org/neu" in changed.part("plain")
    [moved] = wait_for(lambda: mails_to(smtp, "waiting@example.org", "Ein Platz ist für Sie frei"))
    assert "https://meet.example.org/neu" in moved.part("plain")
    assert not mails_to(smtp, "waiting@example.org", "Geändert")  # one mail for one edit

    cancel = admin.post(
        path_for("events:admin_event_cancel", id=event), data={"csrf_token": fields["csrf_token"]}
    )
    assert cancel.status_code == 303
    for address in ("seated@example.org", "waiting@example.org"):
        [notice] = wait_for(lambda a=address: mails_to(smtp, a, "Abgesagt"))
        method, calendar = invitation_of(notice)
        assert method == "CANCEL" and calendar.vevent.sequence.value == "2"
    public = httpx.get(site + path_for("events:series", slug=series.slug))
    assert "Abgesagt" in public.text and "Die Anmeldung ist für alle Termine" in public.text


def test_the_reminder_goes_out_once_the_day_before(site: str, worker: Any, smtp: Any) -> None:
    soon = utcnow().replace(microsecond=0) + timedelta(hours=20)
    later = soon + timedelta(days=3)
    series, [tomorrow, next_week] = add_series(
        {"starts_at": soon, "ends_at": soon + timedelta(hours=1)},
        {"starts_at": later, "ends_at": later + timedelta(hours=1)},
    )
    confirmed_registration(series, "lea@example.org", [tomorrow, next_week])
    queued = upkeep.queue_reminders()
    assert len(queued) == 1 and upkeep.queue_reminders() == []
    store.hand_over(queued)
    [reminder] = wait_for(lambda: mails_to(smtp, "lea@example.org", "Erinnerung"))
    assert "https://meet.example.org/kgi" in reminder.part("plain")
    assert link_in(reminder.part("plain"), MANAGE_PATH)


def test_registrations_are_forgotten_after_the_retention_time() -> None:
    now = utcnow()
    old_start = now - timedelta(days=40)
    recent_start = now - timedelta(days=10)
    old, [old_event] = add_series(
        {"starts_at": old_start, "ends_at": old_start + timedelta(hours=2)}
    )
    recent, [recent_event] = add_series(
        {"starts_at": recent_start, "ends_at": recent_start + timedelta(hours=2)}, title="Neu"
    )
    with engine("events").begin() as conn:
        for series, event, email in (
            (old, old_event, "old@example.org"),
            (recent, recent_event, "recent@example.org"),
        ):
            person = conn.execute(
                store.registrations.insert().values(
                    series_id=series.id, email=email, email_key=email, name="X",
                    organisation="", municipality="", language="de", status="confirmed",
                    manage_key="k", requested_at=now, created_at=now,
                )
            ).inserted_primary_key[0]  # fmt: skip
            conn.execute(
                store.seats.insert().values(
                    registration_id=person, event_id=event, status="confirmed",
                    queued_at=now, updated_at=now,
                )
            )  # fmt: skip
            store.queue_mail(conn, person, "registered")
    upcoming, [event] = add_series(title="Bald")
    registration.register(upcoming, form("unconfirmed@example.org", [event]), [event])
    assert upkeep.purge_registrations(now) == 1  # the 30-day default: only the old one
    later = now + timedelta(days=4)  # past the 72 hours an unconfirmed sign-up lives
    assert upkeep.purge_registrations(later) == 1
    with engine("events").connect() as conn:
        left = conn.execute(sa.select(store.registrations.c.email)).scalars().all()
        mails = conn.execute(sa.select(sa.func.count()).select_from(store.event_mails)).scalar()
    assert left == ["recent@example.org"] and mails == 1


# --- organisers' pages -------------------------------------------------------------------------


def test_who_may_do_what_with_series(site: str) -> None:
    series, [event] = add_series({"capacity": 2})
    confirmed_registration(series, "lea@example.org", [event])
    editor = login(site, "redaktion@example.org", role="editor")
    token = csrf_of(editor.get(path_for("events:admin")).text)
    created = editor.post(
        path_for("events:admin_new"), data={"csrf_token": token, "title": "Neue Reihe"}
    )
    assert created.status_code == 303
    draft = int(created.headers["location"].rstrip("/").split("/")[-1])
    assert (
        editor.post(
            path_for("events:admin_move", id=draft), data={"csrf_token": token, "move": "submit"}
        ).status_code
        == 303
    )
    assert schedule.get_series(draft).state == store.PENDING
    for move in ("publish", "retract", "send_back"):
        refused = editor.post(
            path_for("events:admin_move", id=draft), data={"csrf_token": token, "move": move}
        )
        assert refused.status_code == 403
    assert (
        editor.post(
            path_for("events:admin_series", id=series.id),
            data={"csrf_token": token, "title": "Umbenannt"},
        ).status_code
        == 403
    )  # published: for admins
    assert (
        editor.post(
            path_for("events:admin_event_cancel", id=event), data={"csrf_token": token}
        ).status_code
        == 403
    )
    # Organisers see the participants and export them.
    export = editor.get(path_for("events:admin_participants", id=event))
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [(row["name"], row["email"], row["status"]) for row in rows] == [
        ("Lea Becker", "lea@example.org", "confirmed")
    ]
    anonymous = httpx.get(site + path_for("events:admin_event", id=event), follow_redirects=False)
    assert anonymous.status_code == 303 and "/login" in anonymous.headers["location"]
    # Drafts are not public.
    assert (
        httpx.get(
            site + path_for("events:series", slug=schedule.get_series(draft).slug)
        ).status_code
        == 404
    )
    home = httpx.get(site + path_for("portal:home"))
    assert path_for("events:series", slug=series.slug) in home.text
    # A series with people registered is not taken off the site without a word to them.
    admin = login(site)
    retract = admin.post(
        path_for("events:admin_move", id=series.id),
        data={"csrf_token": csrf_of(admin.get(path_for("events:admin")).text), "move": "retract"},
    )
    assert retract.status_code == 409 and "Sagen Sie diese Termine zuerst ab" in retract.text
    assert schedule.get_series(series.id).state == store.PUBLISHED


@pytest.mark.parametrize("language", ["de", "en"])
def test_the_pages_pass_axe_in_both_languages(site: str, language: str) -> None:
    series, [event] = add_series({"capacity": 2})
    person = confirmed_registration(series, "lea@example.org", [event])
    admin = login(site)
    own_page = urlsplit(links.manage_url(person)).path
    with chromium() as browser, page_as(browser, site, admin) as (page, csp):
        for path in (
            path_for("events:list"),
            path_for("events:series", slug=series.slug),
            own_page,
            path_for("events:sent"),
            path_for("events:admin"),
            path_for("events:admin_series", id=series.id),
            path_for("events:admin_event", id=event),
            path_for("events:admin_event_new", id=series.id),
        ):
            page.goto(f"{site}{path}?lang={language}")
            assert_accessible(page, path)
        page.fill("#title", "Auftakt")
        page.fill("#starts_at", "2030-05-04T10:00")
        page.fill("#ends_at", "2030-05-04T12:00")
        page.fill("#link", "https://meet.example.org/x")
        page.fill("#capacity", "viele")
        page.locator("form button[type=submit]").first.click()
        assert page.locator("[role=alert]").count() == 1
        assert page.locator("#capacity[aria-invalid=true]").count() == 1
        assert_accessible(page, "event form with an error")
        assert csp == []


# --- the dates elsewhere: the API, the site's calendar, an issue -------------------------------


def test_the_dates_reach_the_api_the_calendar_and_an_issue(site: str) -> None:
    series, [online, on_site] = add_series(
        {}, {"mode": "on_site", "place": "Rathaus Jena", "link": None}
    )
    programme.cancel_event(add_series(title="Abgesagt")[1][0])
    api = httpx.get(site + path_for("events:api_dates"), params={"lang": "de"})
    assert api.status_code == 200 and api.headers["access-control-allow-origin"] == "*"
    dates = api.json()["dates"]
    assert [d["id"] for d in dates] == [online, on_site]  # the cancelled one is not coming
    assert dates[0]["when"] == "Montag, 18. März 2030, 10:00–12:00 Uhr"
    assert dates[0]["event"]["start"] == "2030-03-18T10:00:00+01:00"
    assert "meet.example.org" not in api.text  # the room's link is for participants only
    assert httpx.get(site + path_for("events:api_dates"), params={"lang": "en"}).json() == {
        "dates": []
    }
    for bad in ({"limit": "0"}, {"limit": "1e9"}, {"lang": "fr"}):
        assert httpx.get(site + path_for("events:api_dates"), params=bad).status_code == 422

    # The site's calendar: conference dates and the series' dates, with the invitation's UID.
    for path in (path_for("feeds:calendar"), path_for("events:series_calendar", slug=series.slug)):
        calendar = vobject.readOne(httpx.get(site + path).text)
        entries = {entry.uid.value: entry for entry in calendar.vevent_list}
        assert set(entries) == {f"event-{online}@127.0.0.1", f"event-{on_site}@127.0.0.1"}, path
        assert entries[f"event-{on_site}@127.0.0.1"].location.value == "Rathaus Jena"
        assert entries[f"event-{online}@127.0.0.1"].location.value == "Online"
        start = entries[f"event-{online}@127.0.0.1"].dtstart.value
        assert start.astimezone(UTC) == datetime(2030, 3, 18, 9, tzinfo=UTC)

    # An editor picks a date for an issue; the issue lists it under its own heading.
    from services.newsletter import compose, render
    from services.newsletter import store as newsletter_store

    editor = login(site, "redaktion@example.org", role="editor")
    issue = compose.create_issue("de", "redaktion@example.org", "Infobrief März")
    page = editor.get(path_for("newsletter:admin_issue", id=issue.id))
    assert "Termine der Veranstaltungsreihen" in page.text
    added = editor.post(
        path_for("newsletter:admin_items", id=issue.id),
        data={"csrf_token": csrf_of(page.text), "action": "add_dates", "date_id": str(on_site)},
    )
    assert added.status_code == 303
    with engine("newsletter").connect() as conn:
        contents = newsletter_store.issue_contents(conn, issue.id)
        rendered = render.render_issue(newsletter_store.get_issue(conn, issue.id), contents)
    assert [(c["service"], c["id"], c["kind"]) for c in contents] == [("events", on_site, "event")]
    assert "Veranstaltungen" in rendered.html and "Rathaus Jena" in rendered.html
    assert "Dienstag, 19. März 2030, 10:00–12:00 Uhr" in rendered.text


def test_the_site_calendar_skips_dates_it_cannot_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit test of one function: the events service's answer replaced by a bad one."""
    from services.feeds import calendar_feed
    from services.feeds.listing import ItemFilter

    good = {
        "id": 7, "sequence": 0, "updated_at": "2030-01-01T00:00:00+00:00", "title": "Reihe: A",
        "url": "https://kgi.example.org/events/reihe#date-7", "summary": "",
        "event": {"start": "2030-03-18T10:00:00+01:00", "end": "2030-03-18T12:00:00+01:00",
                  "timezone": "Europe/Berlin", "location": "Online"},
    }  # fmt: skip
    bad = [{"id": 8}, {**good, "event": {**good["event"], "timezone": "Mars/Base"}}, [1], None]
    monkeypatch.setattr(calendar_feed, "_fetch", lambda language: [*bad, good])
    rendered = calendar_feed.render_calendar(ItemFilter())
    entries = vobject.readOne(rendered.body.decode()).vevent_list
    assert [entry.uid.value for entry in entries] == ["event-7@127.0.0.1"]
    # The events service away: the dates it gave last stay in the calendar.
    monkeypatch.setattr(calendar_feed, "_fetch", lambda language: None)
    monkeypatch.setattr(calendar_feed, "SERIES_DATES_FRESH", timedelta(0))
    assert calendar_feed.series_dates(None) == [*bad, good]
