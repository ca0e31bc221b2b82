"""The one outbox engine: its retry policy, and the move of the subscribers' mail outbox
onto it (migration subscribers 0003) with rows as the old code left them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from services.subscribers import store
from services.subscribers.service import SERVICE as SUBSCRIBERS
from shared.database import create_engine_for, utcnow
from shared.mail import outbox


def test_retry_policy_grows_and_is_capped():
    delays = [outbox.retry_delay(n).total_seconds() for n in range(1, outbox.MAX_ATTEMPTS + 1)]
    assert delays[:4] == [15, 30, 60, 120]
    assert max(delays) == outbox.RETRY_MAX_SECONDS
    assert sum(delays[:-1]) > 3600  # greylisting and a relay's short outage are outlived


def _config(engine: sa.Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SUBSCRIBERS.migrations))
    config.attributes["engine"] = engine
    return config


def test_old_outbox_rows_keep_their_meaning(tmp_path: Path):
    engine = create_engine_for(f"sqlite:///{tmp_path / 'subscribers.db'}")
    command.upgrade(_config(engine), "0002")
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO subscribers (id, email, email_key, name, language, status,"
                " created_at, updated_at, requested_at, manage_key)"
                " VALUES (1, 'a@example.org', 'a@example.org', '', 'de', 'confirmed',"
                " :now, :now, :now, 'k')"
            ),
            {"now": now},
        )
        for status, error in [
            ("pending", None),
            ("sending", None),
            ("sent", None),
            ("sent", "not sent: unsubscribed before the welcome mail"),
            ("failed", "550 5.1.1 no such user"),
        ]:
            conn.execute(
                sa.text(
                    "INSERT INTO mail_outbox (subscriber_id, kind, status, created_at,"
                    " attempts, last_error) VALUES (1, 'welcome', :status, :now, 1, :error)"
                ),
                {"status": status, "error": error, "now": now},
            )
    command.upgrade(_config(engine), "head")
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.mail_outbox).order_by(store.mail_outbox.c.id)).all()
    assert [row.status for row in rows] == ["queued", "claimed", "delivered", "skipped", "failed"]
    assert rows[4].error == "550 5.1.1 no such user"
    engine.dispose()


def test_claim_takes_expired_leases_first_then_due_rows(site):
    from services.subscribers.mails import OUTBOX
    from shared.database import engine

    with engine("subscribers").begin() as conn:
        subscriber_id = store.insert(
            conn, email="b@example.org", email_key="b@example.org", name="", language="de",
            status="confirmed",
        )  # fmt: skip
        ids = [store.queue_mail(conn, subscriber_id, "welcome") for _ in range(4)]
    scope = store.mail_outbox.c.subscriber_id == subscriber_id
    first = OUTBOX.claim("one", scope, 2, lease_seconds=60)
    assert [row.id for row in first] == ids[:2]
    OUTBOX.postpone([ids[2]], "nobody", timedelta(hours=1))  # not its owner: no effect
    later = OUTBOX.claim("two", scope, 5, lease_seconds=60)
    assert [row.id for row in later] == ids[2:]
    # Senders die; when their leases are over, their rows go to the next claimant.
    assert OUTBOX.claim("three", scope, 5, lease_seconds=60) == []
    taken = OUTBOX.claim("three", scope, 5, 60, now=utcnow() + timedelta(seconds=61))
    assert [row.id for row in taken] == ids
    OUTBOX.release("three", scope)
    assert [row.status for row in OUTBOX.claim("four", scope, 1, 60)] == ["claimed"]
