"""Issues composed from published content, rendered once, sent through a real SMTP server
by real workers on a real Redis: headers, one-click unsubscribe, retries, failures,
SIGKILL and restarts, unsubscribe during dispatch, schedules, archive."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import feedparser
import httpx
import pytest
import sqlalchemy as sa

from services.feeds.demo import load_demo
from services.newsletter import archive, compose, dispatch, render, sender, store
from services.subscribers import transfer
from shared.database import after_commit, engine, utcnow
from shared.mail import outbox as outbox_engine
from shared.mail import signing
from tests.conftest import (
    csrf_of,
    kill,
    login,
    run_kgi,
    start_worker_process,
    unsubscribe_uris,
    wait_for,
)


def subscribe(count: int, language: str = "de", prefix: str = "leser") -> list[str]:
    """``count`` confirmed subscribers (imported, as an existing list would be)."""
    rows = "\n".join(
        f"{prefix}{n}@example.org,Leser {n},{language},paper form" for n in range(count)
    )
    report = transfer.import_csv(f"email,name,language,consent_source\n{rows}\n", "list.csv")
    assert report.summary["added"] == count
    return [f"{prefix}{n}@example.org" for n in range(count)]


def new_issue(language: str = "de") -> store.Issue:
    load_demo()
    issue = compose.create_issue(language, "redaktion@example.org", "KGI-Infobrief Test")
    assert (
        compose.add_since(issue.id, "redaktion@example.org", datetime(2000, 1, 1, tzinfo=UTC)) > 0
    )
    return issue


def state_of(issue_id: int) -> str:
    return dispatch.progress(issue_id).state


def rows(issue_id: int) -> list[sa.Row]:
    with engine("newsletter").connect() as conn:
        return list(
            conn.execute(sa.select(store.outbox).where(store.outbox.c.issue_id == issue_id))
        )


def test_render_once_inline_css_and_text_part(site, monkeypatch):
    issue = new_issue()
    calls = []
    original = render.render_issue
    monkeypatch.setattr(render, "render_issue", lambda *a: calls.append(a) or original(*a))
    rendered = render.rendered_of(issue)
    assert 'style="' in rendered.html and "prefers-color-scheme: dark" in rendered.html
    assert render.NAME in rendered.html and render.UNSUBSCRIBE_URL in rendered.html
    assert "Werkstattgespräche für mehr internationale Jugendarbeit" in rendered.text
    assert "<p" not in rendered.text and "Neuigkeiten\n===" in rendered.text
    html, text = render.personalise(
        rendered, render.Recipient("Ana <b>", "https://u.example/x?a=1&b=2", "https://p")
    )
    assert "Ana &lt;b&gt;" in html and 'href="https://u.example/x?a=1&amp;b=2"' in html
    assert "https://u.example/x?a=1&b=2" in text
    assert "Entwurf" not in html  # the draft never appears


def test_send_an_issue_to_everyone_once_with_list_headers(site, worker, smtp, monkeypatch):
    readers = subscribe(12)
    subscribe(3, language="en", prefix="reader")
    issue = new_issue()
    calls = []
    original = dispatch.render_issue
    monkeypatch.setattr(dispatch, "render_issue", lambda *a: calls.append(a) or original(*a))
    assert dispatch.start(issue.id, "redaktion@example.org") == 12
    wait_for(lambda: state_of(issue.id) == "sent", timeout=30, message="issue sent")
    assert len(calls) == 1  # rendered once for the whole audience
    counts = smtp.count_by_recipient()
    assert all(counts.get(address) == 1 for address in readers)
    assert not any(address.startswith("reader") for address in counts)  # English list untouched
    mail = smtp.to(readers[3])[0]
    headers = mail.message
    assert headers["Subject"] == "KGI-Infobrief Test"
    # In the sender's domain, not the web host (127.0.0.1 here).
    assert headers["List-Id"] == "KGI-Infobrief <infobrief.kgi.example.org>"
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    mailto, unsubscribe = unsubscribe_uris(headers)
    assert unsubscribe.startswith(f"{site}/subscribers/unsubscribe/")
    assert mailto and mailto.startswith("mailto:bounces+u")
    assert headers["Feedback-ID"] == f"issue{issue.id}:newsletter:kgi-infobrief"
    assert "Auto-Submitted" not in headers
    # VERP: the envelope sender names the subscriber and the issue, signed.
    tag = signing.read_return_address(mail.mail_from)
    assert tag is not None and tag.issue_id == issue.id and tag.kind == "bounce"
    assert (
        headers["Message-ID"]
        and headers["Date"]
        and headers["To"] == "Leser 3 <leser3@example.org>"
    )
    assert "Hallo Leser 3," in mail.part("plain") and "Leser 3" in mail.part("html")
    assert unsubscribe.replace("&", "&amp;") in mail.part("html")
    # One-click unsubscribe from the received mail.
    assert (
        httpx.post(
            unsubscribe,
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        ).status_code
        == 200
    )
    with engine("subscribers").connect() as conn:
        status = conn.execute(
            sa.text("select status from subscribers where email_key='leser3@example.org'")
        )
        assert status.scalar_one() == "unsubscribed"
    summary = wait_for(lambda: smtp.to("redaktion@example.org"), message="summary mail")[0]
    # In the language its creator works in (German here), plain text, marked as generated.
    assert "12 verschickt, 0 fehlgeschlagen, 0 übersprungen" in summary.part("plain")
    assert summary.message["Subject"] == "Verschickt: KGI-Infobrief Test"
    assert summary.message.get_content_type() == "text/plain"
    assert summary.message["Auto-Submitted"] == "auto-generated"


def test_archive_and_its_feeds(site, worker, smtp):
    subscribe(2)
    issue = new_issue()
    dispatch.start(issue.id, "redaktion@example.org")
    wait_for(lambda: state_of(issue.id) == "sent", timeout=30)
    listing = httpx.get(f"{site}/newsletter/archive/").text
    assert "KGI-Infobrief Test" in listing
    page = httpx.get(f"{site}/newsletter/archive/{issue.id}").text
    assert "Werkstattgespräche" in page
    assert "/subscribers/unsubscribe/" not in page and "Leser" not in page
    assert render.NAME not in page and "kgi-placeholder" not in page
    for fmt in ("rss", "atom"):
        parsed = feedparser.parse(httpx.get(f"{site}/newsletter/archive/feed.{fmt}").content)
        assert not parsed.bozo and parsed.entries[0].title == "KGI-Infobrief Test"
    assert 'href="/newsletter/archive/"' in httpx.get(f"{site}/subscribers/signup").text
    assert 'href="/newsletter/archive/"' in httpx.get(f"{site}/").text


def test_temporary_failure_is_retried_and_permanent_one_recorded(site, worker, smtp, monkeypatch):
    monkeypatch.setattr(outbox_engine, "RETRY_BASE_SECONDS", 1)
    readers = subscribe(5)
    issue = new_issue()
    smtp.refuse_next("451 4.7.1 Greylisted, try again", "550 5.1.1 User unknown")
    dispatch.start(issue.id, "redaktion@example.org")
    wait_for(lambda: state_of(issue.id) == "sent", timeout=30, message="issue sent")
    outcome = {row.email: row for row in rows(issue.id)}
    failed = [row for row in outcome.values() if row.status == "failed"]
    assert len(failed) == 1 and "550" in failed[0].error
    retried = [row for row in outcome.values() if row.attempts == 2]
    assert len(retried) == 1 and retried[0].status in ("delivered", "committed")
    counts = smtp.count_by_recipient()
    assert sum(counts.get(a, 0) for a in readers) == 4
    assert all(counts.get(a, 0) <= 1 for a in readers)
    assert dispatch.progress(issue.id).failed == 1


def test_too_many_failures_in_a_row_pause_the_issue(site, worker, smtp, monkeypatch):
    monkeypatch.setattr(sender, "MAX_CONSECUTIVE_FAILURES", 3)
    subscribe(8)
    issue = new_issue()
    smtp.refuse_next(*["554 5.7.1 Rejected"] * 3)
    dispatch.start(issue.id, "redaktion@example.org")
    wait_for(lambda: state_of(issue.id) == "paused", timeout=30, message="automatic pause")
    assert "3 failures in a row" in dispatch.progress(issue.id).pause_reason
    dispatch.resume(issue.id, "redaktion@example.org")
    wait_for(lambda: state_of(issue.id) == "sent", timeout=30)
    p = dispatch.progress(issue.id)
    assert (p.sent, p.failed) == (5, 3)


def test_unsubscribing_before_ones_turn_means_no_mail(site, smtp):
    readers = subscribe(6)
    issue = new_issue()
    dispatch.start(issue.id, "redaktion@example.org")  # no worker yet: all still queued
    with engine("subscribers").connect() as conn:
        subscriber_id = conn.execute(
            sa.text("select id from subscribers where email_key='leser4@example.org'")
        )
        subscriber_id = subscriber_id.scalar_one()
    row = next(r for r in rows(issue.id) if r.subscriber_id == subscriber_id)
    httpx.post(
        row.unsubscribe_url,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    sender.Sender(issue.id).run(budget_seconds=20)
    assert state_of(issue.id) == "sent"
    counts = smtp.count_by_recipient()
    assert "leser4@example.org" not in counts
    assert all(counts.get(a) == 1 for a in readers if a != "leser4@example.org")
    assert next(r for r in rows(issue.id) if r.subscriber_id == subscriber_id).status == "skipped"


def test_sigkill_mid_batch_and_restart_leave_exactly_one_copy_each(site, smtp, worker_processes):
    readers = subscribe(120)
    issue = new_issue()
    smtp.delay = 0.02  # a slow relay, so the kill lands mid-batch
    dispatch.start(issue.id, "redaktion@example.org")
    first = start_worker_process()
    worker_processes.append(first)
    wait_for(lambda: len(smtp.mails) >= 30, timeout=60, message="dispatch under way")
    kill(first)
    delivered_before = len(smtp.mails)
    assert delivered_before < 120
    statuses = {row.status for row in rows(issue.id)}
    assert "claimed" in statuses or "queued" in statuses
    smtp.delay = 0.0
    worker_processes.append(start_worker_process())
    time.sleep(3.5)  # the killed sender's lease runs out
    dispatch.wake_senders(issue.id)
    wait_for(
        lambda: state_of(issue.id) == "sent", timeout=60, message="dispatch resumed and finished"
    )
    counts = smtp.count_by_recipient()
    assert {address: counts.get(address, 0) for address in readers} == dict.fromkeys(readers, 1)


def test_redis_restart_mid_dispatch_loses_nothing(site, smtp, worker_processes, environment):
    readers = subscribe(40)
    issue = new_issue()
    dispatch.start(issue.id, "redaktion@example.org")
    environment.redis.stop(kill=True)  # the queued sender messages are gone with it
    environment.redis.start()
    worker_processes.append(start_worker_process())
    from kgi.scheduler import tick

    tick()  # the scheduler notices an issue without senders
    wait_for(
        lambda: state_of(issue.id) == "sent", timeout=60, message="dispatch after Redis restart"
    )
    counts = smtp.count_by_recipient()
    assert {address: counts.get(address, 0) for address in readers} == dict.fromkeys(readers, 1)


def test_schedules_and_a_missed_schedule_asks_first(site, worker, smtp):
    subscribe(2)
    issue = new_issue()
    with pytest.raises(compose.ComposeError):
        compose.schedule(issue.id, utcnow() - timedelta(minutes=5), "r")
    compose.schedule(issue.id, utcnow() + timedelta(hours=1), "r")
    with engine("newsletter").begin() as conn:
        conn.execute(store.issues.update().values(scheduled_at=utcnow() - timedelta(seconds=30)))
    dispatch.supervise()
    wait_for(lambda: state_of(issue.id) == "sent", timeout=30, message="scheduled issue sent")

    late = new_issue()
    compose.schedule(late.id, utcnow() + timedelta(hours=1), "r")
    with engine("newsletter").begin() as conn:
        conn.execute(
            store.issues.update()
            .where(store.issues.c.id == late.id)
            .values(scheduled_at=utcnow() - timedelta(days=1))
        )
    dispatch.supervise()
    assert state_of(late.id) == "overdue" and rows(late.id) == []
    dispatch.start(late.id, "redaktion@example.org")  # an editor confirms
    wait_for(lambda: state_of(late.id) == "sent", timeout=30)


def test_command_line_create_test_send_status_cancel(site, smtp):
    load_demo()
    subscribe(3)
    created = run_kgi(
        "issues", "create", "--language", "de", "--since", "2020-01-01", "--subject", "CLI-Ausgabe"
    )
    assert created.returncode == 0, created.stderr
    issue_id = int(created.stdout.strip())
    assert "items added" in created.stderr
    tested = run_kgi("issues", "test", str(issue_id), "--to", "pruefer@example.org")
    assert tested.returncode == 0, tested.stderr
    test_mail = smtp.to("pruefer@example.org")[0]
    assert (
        test_mail.message["Subject"] == "[TEST] CLI-Ausgabe"
        and test_mail.message["X-KGI-Test"] == "yes"
    )
    assert "List-Unsubscribe" not in test_mail.message
    sent = run_kgi("issues", "send", str(issue_id))
    assert sent.returncode == 0 and "3 recipients" in sent.stdout
    status = run_kgi("issues", "status", str(issue_id))
    assert status.stdout.startswith("sending:") and "of 3" in status.stdout
    assert run_kgi("issues", "pause", str(issue_id)).returncode == 0
    assert run_kgi("issues", "resume", str(issue_id)).returncode == 0
    assert run_kgi("issues", "cancel", str(issue_id)).returncode == 0
    assert (
        "cancelled: 0 sent, 0 failed, 3 skipped"
        in run_kgi("issues", "status", str(issue_id)).stdout
    )
    again = run_kgi("issues", "send", str(issue_id))
    assert again.returncode == 1 and "Not done" in again.stderr


def test_admin_compose_preview_test_and_send(site, worker, smtp):
    load_demo()
    subscribe(2)
    admin = login(site)
    listing = admin.get("/newsletter/admin/")
    created = admin.post(
        "/newsletter/admin/new", data={"csrf_token": csrf_of(listing.text), "language": "de"}
    )
    assert created.status_code == 303
    url = created.headers["location"]
    page = admin.get(url)
    token = csrf_of(page.text)
    ids = re.findall(r'name="content_id" value="(\d+)"', page.text)
    assert len(ids) == 3  # the German demo items, draft excluded
    admin.post(f"{url}/items", data={"csrf_token": token, "action": "add", "content_id": ids[:2]})
    page = admin.get(url)
    row_ids = re.findall(r'<li data-row="(\d+)"', page.text)
    assert len(row_ids) == 2
    admin.post(f"{url}/items", data={"csrf_token": token, "action": "down", "row_id": row_ids[0]})
    assert re.findall(r'<li data-row="(\d+)"', admin.get(url).text) == [row_ids[1], row_ids[0]]
    preview = admin.get(f"{url}/preview.html")
    assert preview.status_code == 200 and "style=" in preview.text
    assert admin.get(f"{url}/preview.txt").headers["content-type"].startswith("text/plain")
    admin.post(f"{url}/test", data={"csrf_token": token, "addresses": "chefin@example.org"})
    assert smtp.to("chefin@example.org")[0].message["Subject"].startswith("[TEST]")
    bad = admin.post(f"{url}/test", data={"csrf_token": token, "addresses": "not-an-address"})
    assert bad.status_code == 422
    admin.post(f"{url}/send", data={"csrf_token": token})
    wait_for(lambda: admin.get(f"{url}/progress.json").json()["state"] == "sent", timeout=30)
    final = admin.get(f"{url}/progress.json").json()
    assert (final["sent"], final["percent"]) == (2, 100.0)
    assert "<progress" in admin.get(url).text
    editor = login(site, "nur.redaktion@example.org", role="editor")
    assert (
        editor.post(f"{url}/cancel", data={"csrf_token": csrf_of(editor.get(url).text)}).status_code
        == 403
    )


def test_return_addresses_are_signed_and_read_back(monkeypatch):
    from dataclasses import replace

    from shared.config import get_settings

    return_address = signing.envelope_sender(42, 7)
    assert re.fullmatch(r"bounces\+42\.7\.[0-9a-f]{10}@kgi\.example\.org", return_address)
    bounce_tag = signing.ReturnTag("bounce", 42, 7)
    assert signing.read_return_address(return_address) == bounce_tag
    # Some relays upper-case local parts.
    assert signing.read_return_address(return_address.upper()) == bounce_tag
    assert signing.envelope_sender(42).startswith("bounces+42.0.")
    assert signing.read_return_address(signing.envelope_sender(42)).issue_id is None
    mailto = signing.unsubscribe_mailto(42)
    address = mailto.removeprefix("mailto:").split("?")[0]
    assert signing.read_return_address(address) == signing.ReturnTag("unsubscribe", 42)
    # A forged tag (another subscriber, another issue, a guessed signature) is nobody's.
    signature = return_address.split(".")[2].split("@")[0]
    for forged in (
        f"bounces+43.7.{signature}@kgi.example.org",
        f"bounces+42.8.{signature}@kgi.example.org",
        f"bounces+u42.{signature}@kgi.example.org",
        return_address.replace("bounces+", "other+"),
        "bounces+lena=example.org@kgi.example.org",
    ):
        assert signing.read_return_address(forged) is None, forged
    # Without a bounce address: the plain sender, no mailto, nothing read back.
    unset = replace(get_settings(), bounce_address=None)
    monkeypatch.setattr(signing, "get_settings", lambda: unset)
    assert signing.envelope_sender(42, 7) == "infobrief@kgi.example.org"
    assert signing.unsubscribe_mailto(42) is None
    assert signing.read_return_address(return_address) is None


def test_rate_limit_is_shared_by_all_senders(site, smtp, monkeypatch):
    import threading

    readers = subscribe(40)
    issue = new_issue()
    monkeypatch.setattr(dispatch, "wake_senders", lambda *a, **k: 0)  # our own senders below
    dispatch.start(issue.id, "redaktion@example.org")
    senders = [sender.Sender(issue.id) for _ in range(2)]
    for each in senders:
        each.limiter.per_second = 10  # 10 messages a second for both together
    started = time.monotonic()
    threads = [threading.Thread(target=s.run, kwargs={"budget_seconds": 30}) for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    counts = smtp.count_by_recipient()
    assert all(counts.get(address) == 1 for address in readers) and state_of(issue.id) == "sent"
    # 40 messages at 10 per second need 4 one-second windows: at least 2 s even when the
    # first window is almost over. Counted per sender (20 a second) they need 2 windows:
    # done in little over 1 s.
    assert elapsed > 1.9


def archived(issue: store.Issue) -> store.Issue:
    """``issue`` as the archive shows it once sent (without sending it)."""
    rendered = render.rendered_of(issue)
    with engine("newsletter").begin() as conn:
        conn.execute(
            store.issues.update()
            .where(store.issues.c.id == issue.id)
            .values(
                state=store.SENT,
                started_at=utcnow(),
                finished_at=utcnow(),
                rendered_html=rendered.html,
                rendered_text=rendered.text,
            )
        )
        # As sending does when it finishes: this process's archive shows it at once.
        after_commit(conn, archive.RENDERINGS.distrust)
    return issue


def test_archive_feeds_have_an_author_and_answer_conditional_gets(site):
    archived(new_issue())
    for fmt in ("rss", "atom"):
        url = f"{site}/newsletter/archive/feed.{fmt}"
        first = httpx.get(url)
        parsed = feedparser.parse(first.content)
        assert not parsed.bozo and parsed.entries[0].title == "KGI-Infobrief Test"
        etag, last_modified = first.headers["etag"], first.headers["last-modified"]
        assert etag.startswith('W/"') and httpx.get(url).headers["etag"] == etag
        # Weak comparison (RFC 9110 13.1.2): the strong spelling of the tag matches too.
        for if_none_match in (etag, etag.removeprefix("W/"), f'"other", {etag}', "*"):
            not_modified = httpx.get(url, headers={"if-none-match": if_none_match})
            assert not_modified.status_code == 304 and not not_modified.content
            assert not_modified.headers["etag"] == etag
        assert httpx.get(url, headers={"if-none-match": '"other"'}).status_code == 200
        assert httpx.get(url, headers={"if-modified-since": last_modified}).status_code == 304
        old = httpx.get(url, headers={"if-modified-since": "Mon, 01 Jan 2001 00:00:00 GMT"})
        assert old.status_code == 200
    atom = feedparser.parse(httpx.get(f"{site}/newsletter/archive/feed.atom").content)
    assert atom.feed.author_detail.name == "KGI-Infobrief"  # RFC 4287 4.1.1
    etag = httpx.get(f"{site}/newsletter/archive/feed.atom").headers["etag"]
    archived(new_issue())
    changed = httpx.get(f"{site}/newsletter/archive/feed.atom", headers={"if-none-match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert httpx.get(f"{site}/newsletter/archive/feed.json").status_code == 404


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("0001-01-01T00:30", "in the past"),
        ("0001-01-01T00:00+14:00", "in the past"),
        ("9999-12-31T23:59+14:00", "within the next year"),
        ("9999-12-31T23:59-14:00", "within the next year"),
        ("2026-02-30T25:61", "YYYY-MM-DDTHH:MM"),
        ("999999999999999999999999999999", "YYYY-MM-DDTHH:MM"),
    ],
)
def test_schedule_times_out_of_range_are_422(typed, message):
    with pytest.raises(compose.ComposeError, match=message):
        compose.schedule(0, compose.parse_send_time(typed), "r")


#: Who may do what with an issue: the HTTP status each role gets (303: done, back to the
#: issue; for visitors: to the login page). The README's permission table is this one.
PERMISSIONS = {
    # action:      (visitor, editor, admin)
    "create": (303, 303, 303),
    "edit texts": (303, 303, 303),
    "items": (303, 303, 303),
    "preview": (303, 200, 200),
    "test send": (303, 303, 303),
    "schedule": (303, 403, 303),
    "send": (303, 403, 303),
    "pause": (303, 403, 303),
    "resume": (303, 403, 303),
    "cancel": (303, 403, 303),
    "progress": (303, 200, 200),
}


def test_issue_permissions_per_role(site, smtp):
    subscribe(2)
    draft, to_send = new_issue(), new_issue()
    editor = login(site, "redakteurin@example.org", role="editor")
    admin = login(site, "chefin@example.org", role="admin")
    visitor = httpx.Client(base_url=site)
    visitor.get("/login")
    with engine("newsletter").connect() as conn:
        first_row = store.issue_contents(conn, draft.id)[0]["row_id"]
    later = (utcnow() + timedelta(days=1)).astimezone(compose.LOCAL_ZONE)

    def attempt(client: httpx.Client, email: str, action: str) -> httpx.Response:
        token = csrf_of(client.get("/login").text)
        base = f"/newsletter/admin/{draft.id}"
        sending = f"/newsletter/admin/{to_send.id}"
        forms = {
            "create": ("/newsletter/admin/new", {"language": "de"}),
            "edit texts": (f"{base}/texts", {"subject": f"Von {email}", "intro": "Hallo"}),
            "items": (f"{base}/items", {"action": "down", "row_id": str(first_row)}),
            "test send": (f"{base}/test", {"addresses": email}),
            "schedule": (
                f"{base}/schedule",
                {"scheduled_at": later.strftime("%Y-%m-%dT%H:%M")},
            ),
            "send": (f"{sending}/send", {}),
            "pause": (f"{sending}/pause", {}),
            "resume": (f"{sending}/resume", {}),
            "cancel": (f"{sending}/cancel", {}),
        }
        if action == "preview":
            return client.get(f"{base}/preview.html")
        if action == "progress":
            return client.get(f"{sending}/progress.json")
        path, fields = forms[action]
        return client.post(path, data={"csrf_token": token, **fields})

    seen = {}
    for column, (client, email) in enumerate(
        [
            (visitor, "besuch@example.org"),
            (editor, "redakteurin@example.org"),
            (admin, "chefin@example.org"),
        ]
    ):
        for action in PERMISSIONS:
            response = attempt(client, email, action)
            seen[action, column] = response.status_code
            if column == 0 and response.status_code == 303:
                assert response.headers["location"].startswith("/login?next=")
        if column == 1:
            # Nothing an editor tried reached the audience or the scheduler.
            assert state_of(to_send.id) == "draft" and state_of(draft.id) == "draft"
            assert rows(to_send.id) == []
    expected = {(a, c): codes[c] for a, codes in PERMISSIONS.items() for c in range(3)}
    assert seen == expected
    assert state_of(draft.id) == "scheduled" and state_of(to_send.id) == "cancelled"
    assert smtp.to("redakteurin@example.org") and smtp.to("chefin@example.org")
    assert not smtp.to("besuch@example.org")


def test_editors_test_send_only_to_themselves(site, smtp):
    issue = new_issue()
    editor = login(site, "redakteurin@example.org", role="editor")
    page = editor.get(f"/newsletter/admin/{issue.id}")
    assert "readonly" in page.text and f"/newsletter/admin/{issue.id}/schedule" not in page.text
    assert f"/newsletter/admin/{issue.id}/send" not in page.text
    token = csrf_of(page.text)
    for addresses in ("chefin@example.org", "Redakteurin@Example.org, chefin@example.org"):
        refused = editor.post(
            f"/newsletter/admin/{issue.id}/test", data={"csrf_token": token, "addresses": addresses}
        )
        assert refused.status_code == 403
    assert not smtp.to("chefin@example.org")
    own = editor.post(
        f"/newsletter/admin/{issue.id}/test",
        data={"csrf_token": token, "addresses": "Redakteurin@example.org"},
    )
    assert own.status_code == 303 and smtp.to("redakteurin@example.org")


def test_summary_mail_is_in_its_creators_language(site, worker, smtp):
    subscribe(1)
    load_demo()
    issue = compose.create_issue("de", "editor.en@example.org", "Ausgabe", creator_language="en")
    compose.add_since(issue.id, "editor.en@example.org", datetime(2000, 1, 1, tzinfo=UTC))
    dispatch.start(issue.id, "editor.en@example.org")
    summary = wait_for(lambda: smtp.to("editor.en@example.org"), message="summary mail")[0]
    assert summary.message["Subject"] == "Sent: Ausgabe"
    assert "1 sent, 0 failed, 0 skipped" in summary.part("plain")
    assert f"/newsletter/admin/{issue.id}" in summary.part("plain")
