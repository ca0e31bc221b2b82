"""Crashes and restarts lose nothing and send nothing twice: a worker process killed and
restarted, Redis killed and restarted."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import sqlalchemy as sa

from services.subscribers import mails, store
from shared.database import engine, utcnow
from tests.conftest import kill, start_worker_process, wait_for
from tests.test_signup_flow import subscriber


def outbox_rows() -> list[sa.Row]:
    with engine("subscribers").connect() as conn:
        return list(conn.execute(sa.select(store.mail_outbox)))


def test_worker_restarted_between_sign_up_and_mail_sends_exactly_once(site, smtp, worker_processes):
    response = httpx.post(
        f"{site}/subscribers/api/subscriptions", json={"email": "restart@example.org"}
    )
    assert response.status_code == 202
    time.sleep(0.5)
    assert smtp.to("restart@example.org") == []  # no worker yet: the job waits in Redis

    first = start_worker_process()
    worker_processes.append(first)
    wait_for(lambda: smtp.to("restart@example.org"), timeout=30, message="mail after worker start")
    wait_for(
        lambda: [row.status for row in outbox_rows()] == ["delivered"], message="outbox row sent"
    )
    kill(first)

    second = start_worker_process()
    worker_processes.append(second)
    time.sleep(3)
    assert len(smtp.to("restart@example.org")) == 1
    assert [row.status for row in outbox_rows()] == ["delivered"]


def test_worker_killed_before_it_ran_the_job_leaves_it_for_the_next(site, smtp, worker_processes):
    # The job is queued while no worker runs; a worker that dies at once must not eat it.
    httpx.post(f"{site}/subscribers/api/subscriptions", json={"email": "early.death@example.org"})
    doomed = start_worker_process()
    worker_processes.append(doomed)
    kill(doomed)
    survivor = start_worker_process()
    worker_processes.append(survivor)
    # A message a killed worker had prefetched returns after the broker's heartbeat
    # timeout; the outbox sweep covers it sooner, so run the sweep as the scheduler would.
    deadline = time.monotonic() + 60
    while not smtp.to("early.death@example.org") and time.monotonic() < deadline:
        with engine("subscribers").begin() as conn:
            conn.execute(
                store.mail_outbox.update().values(created_at=utcnow() - timedelta(hours=1))
            )
        from kgi.scheduler import tick

        tick()
        time.sleep(1)
    time.sleep(2)
    assert len(smtp.to("early.death@example.org")) == 1


def test_sign_up_while_redis_is_down_is_kept_and_sent_later(site, worker, smtp, environment):
    environment.redis.stop(kill=True)
    try:
        response = httpx.post(
            f"{site}/subscribers/api/subscriptions", json={"email": "outage@example.org"}
        )
        assert response.status_code == 202
        assert subscriber("outage@example.org").status == "pending"
    finally:
        environment.redis.start()
    assert [row.status for row in outbox_rows()] == ["queued"]
    with engine("subscribers").begin() as conn:
        conn.execute(store.mail_outbox.update().values(created_at=utcnow() - timedelta(hours=1)))
    assert len(mails.stale_outbox_ids()) == 1
    from kgi.scheduler import tick

    tick()
    wait_for(
        lambda: smtp.to("outage@example.org"), timeout=30, message="mail after Redis came back"
    )
    tick()  # a second sweep finds nothing left to do
    time.sleep(1)
    assert len(smtp.to("outage@example.org")) == 1


def test_queued_job_survives_a_redis_restart(site, smtp, environment, worker_processes):
    httpx.post(f"{site}/subscribers/api/subscriptions", json={"email": "persisted@example.org"})
    time.sleep(1.2)  # append-only file is synced every second
    environment.redis.stop()
    environment.redis.start()
    worker_processes.append(start_worker_process())
    wait_for(
        lambda: smtp.to("persisted@example.org"), timeout=30, message="mail after Redis restart"
    )
    time.sleep(1)
    assert len(smtp.to("persisted@example.org")) == 1
