"""Exactly once across infrastructure faults in the middle of an issue (issue 10).

Two worker processes send an issue through a slow relay while the scheduler ticks, as in
production; mid-send one fault strikes: a worker process SIGKILLed, Redis SIGKILLed and
restarted (its queues and counters gone), PostgreSQL restarted (``pg_ctl restart -m
fast``; in the PostgreSQL run, where every service's database lives there). Counted at
the SMTP server: every recipient exactly one copy. Each case prints recipients lost,
duplicated and the longest pause in sending; the production-shape test repeats this
through the deployment's own processes.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from kgi import scheduler
from services.newsletter import dispatch, seats
from tests.conftest import ENV, TEST_DATABASE, kill, start_worker_process, wait_for
from tests.smtp_server import RecordingSMTPServer
from tests.test_newsletter import new_issue, state_of, subscribe

#: Recipients per case: enough that the fault lands well inside the send.
RECIPIENTS = 300

#: Seconds the test relay takes per message (two senders: about 3 s for the issue).
RELAY_DELAY = 0.02

#: The longest pause allowed: a dead sender's lease (3 s in the tests), a scheduler tick
#: and Dramatiq's first retry, with room for a loaded machine.
LONGEST_PAUSE_ALLOWED = 15.0

_results: dict[str, FaultResult] = {}


@dataclass(frozen=True)
class FaultResult:
    lost: int
    duplicated: int
    longest_pause: float


@pytest.fixture
def ticking_scheduler() -> Iterator[None]:
    """The scheduler as production runs it, ticking every second."""
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop, 1.0), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)


def send_through(
    fault: Callable[[list], None], smtp: RecordingSMTPServer, workers: list
) -> FaultResult:
    """Send an issue to RECIPIENTS with two worker processes; ``fault(workers)`` strikes
    once a quarter has gone out. Records lost, duplicated and the longest pause."""
    readers = subscribe(RECIPIENTS)
    issue = new_issue()
    smtp.delay = RELAY_DELAY
    workers += [start_worker_process(), start_worker_process()]
    dispatch.start(issue.id, "redaktion@example.org")
    wait_for(lambda: len(smtp.mails) >= RECIPIENTS // 4, timeout=60, message="a quarter sent")
    fault(workers)
    wait_for(lambda: state_of(issue.id) == "sent", timeout=180, message="issue sent")
    counts = smtp.count_by_recipient()
    arrivals = sorted(mail.received_at for mail in smtp.mails)
    pauses = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    return FaultResult(
        lost=sum(1 for reader in readers if counts.get(reader, 0) == 0),
        duplicated=sum(1 for reader in readers if counts.get(reader, 0) > 1),
        longest_pause=max(pauses, default=0.0),
    )


def report(name: str, result: FaultResult) -> None:
    _results[name] = result
    assert (result.lost, result.duplicated) == (0, 0), result
    assert result.longest_pause < LONGEST_PAUSE_ALLOWED, result


def kill_a_worker(workers: list) -> None:
    kill(workers[0])


def restart_redis(workers: list) -> None:
    ENV.redis.stop(kill=True)
    time.sleep(1)
    ENV.redis.start()


def restart_postgres(workers: list) -> None:
    assert ENV.postgres is not None
    ENV.postgres.restart()


def test_worker_killed_mid_issue(site, smtp, worker_processes, ticking_scheduler):
    report("worker SIGKILLed", send_through(kill_a_worker, smtp, worker_processes))


def test_redis_killed_and_restarted_mid_issue(site, smtp, worker_processes, ticking_scheduler):
    report("Redis SIGKILLed, restarted", send_through(restart_redis, smtp, worker_processes))


@pytest.mark.skipif(
    TEST_DATABASE != "postgresql", reason="the suite's databases are SQLite files in this run"
)
def test_postgres_restarted_mid_issue(site, smtp, worker_processes, ticking_scheduler):
    report("PostgreSQL restarted", send_through(restart_postgres, smtp, worker_processes))


def test_fault_report(capsys: pytest.CaptureFixture[str]) -> None:
    """The figures for the issue note: per fault, lost, duplicated, longest pause."""
    with capsys.disabled():
        print(f"\n| fault ({TEST_DATABASE}, {RECIPIENTS} recipients) | lost | duplicated |", end="")
        print(" longest pause |\n|---|---|---|---|")
        for name, result in _results.items():
            print(
                f"| {name} | {result.lost} | {result.duplicated} | {result.longest_pause:.1f} s |"
            )
        print(f"(a dead sender's lease in the tests: {seats.lease_seconds():g} s)")
