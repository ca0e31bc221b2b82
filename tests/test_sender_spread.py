"""An issue's senders spread over the worker processes (services.newsletter.process_share).

Dramatiq's worker process takes messages ahead (twice its threads), so the first process
to ask used to take every sender of an issue and run them on one core while the others
sat idle. Here one ``kgi worker`` runs two processes (it tells them how many there are)
and an issue has four senders: the operating system's list of open connections shows both
processes talking to the SMTP server at once, and every recipient gets exactly one copy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from services.newsletter import dispatch, process_share
from tests.conftest import kill, wait_for
from tests.smtp_server import RecordingSMTPServer
from tests.test_newsletter import new_issue, state_of, subscribe

#: Enough recipients, each slowed by the relay, that one sender alone would take half
#: a minute: a sender that finds its process full comes back through Dramatiq's delay
#: queue, about a second a time, and must find the other process while work is left.
RECIPIENTS = 300

#: Seconds the test relay takes per message.
RELAY_DELAY = 0.1


def processes_talking_smtp(worker: subprocess.Popen[bytes], port: int) -> set[int]:
    """The worker's processes with an open connection to the SMTP server."""
    talking = set()
    for process in psutil.Process(worker.pid).children(recursive=True):
        try:
            connections = process.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        if any(c.raddr and c.raddr.port == port for c in connections):
            talking.add(process.pid)
    return talking


def test_two_worker_processes_each_run_a_sender(
    site: str, smtp: RecordingSMTPServer, worker_processes: list, monkeypatch
) -> None:
    from shared.config import get_settings

    # Four seats, so that this process enqueues four senders too.
    monkeypatch.setenv("KGI_NEWSLETTER_SENDERS", "4")
    get_settings.cache_clear()
    readers = subscribe(RECIPIENTS)
    issue = new_issue()
    smtp.delay = RELAY_DELAY
    worker = subprocess.Popen(
        [sys.executable, "-m", "kgi", "worker", "--processes", "2", "--threads", "4"],
        # Two senders per process: the first process takes all four (Dramatiq's
        # prefetch) and sends two back to the queue for the other.
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    worker_processes.append(worker)
    dispatch.start(issue.id, "redaktion@example.org")
    wait_for(
        lambda: len(processes_talking_smtp(worker, smtp.port)) == 2,
        timeout=60,
        message="a sender in each of the two processes",
    )
    wait_for(lambda: state_of(issue.id) == "sent", timeout=180, message="issue sent")
    counts = smtp.count_by_recipient()
    assert all(counts.get(reader) == 1 for reader in readers)
    kill(worker)


@pytest.fixture(autouse=True)
def settings_read_again() -> Iterator[None]:
    """Settings changed by a test here are read afresh by the tests after it."""
    from shared.config import get_settings

    yield
    get_settings.cache_clear()


def test_a_sender_sent_back_waits_longer_each_time() -> None:
    delays = [process_share.elsewhere_delay_ms(hops) for hops in range(process_share.MOST_HOPS)]
    assert delays == sorted(delays) and delays[0] == process_share.ELSEWHERE_DELAY_MS
    assert max(delays) == process_share.LONGEST_ELSEWHERE_DELAY_MS


def test_a_process_runs_its_share_and_no_more(monkeypatch) -> None:
    from shared.config import get_settings

    monkeypatch.setenv("KGI_NEWSLETTER_SENDERS", "4")
    monkeypatch.setenv("KGI_WORKER_PROCESSES", "3")
    get_settings.cache_clear()
    try:
        assert process_share.share() == 2  # 4 senders over 3 processes: 2, 1 and 1
        with process_share.place(7) as first, process_share.place(7) as second:
            assert first and second
            with process_share.place(7) as third, process_share.place(8) as other_issue:
                assert not third and other_issue
                # A sender that came back MOST_HOPS times runs where it lands.
                with process_share.place(7, insist=True) as insisting:
                    assert insisting
        with process_share.place(7) as again:
            assert again
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
