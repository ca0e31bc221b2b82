"""SpamAssassin judges every kind of mail we send, as a receiving mail server would.

Each mail is produced through the real flows (the sign-up form, the confirmation button,
an administrator's test send and dispatch by a real worker), captured byte for byte by
the test SMTP server, and scored by Debian's ``spamassassin`` with local rules only: no
network tests, no Bayes, no auto-learning, configuration and state in a private temporary
folder. Every mail must score below :data:`SCORE_LIMIT`; a table of scores, sizes and the
rules that hit is printed once at the end of the module (run pytest with ``-s``).

Local rules only means SpamAssassin's score set 0 (no network, no Bayes): a receiver with
both uses set 3, where some rules weigh differently (see 50_scores.cf). And the links in
our mails point at the test site, ``http://127.0.0.1:<port>``: WEIRD_PORT (0.001 in set 0)
hits for that reason alone and says nothing about production links.
"""

from __future__ import annotations

import email.policy
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from services.feeds.demo import load_demo
from services.subscribers import transfer
from tests.conftest import csrf_of, link_in, login, wait_for
from tests.smtp_server import ReceivedMail, RecordingSMTPServer

#: A mail at or above this score is a problem: 5.0 is SpamAssassin's default threshold,
#: but many receivers combine its score with their own signals and act far below it.
SCORE_LIMIT = 1.0

#: The rules Debian's package ships. Passed explicitly so that rules fetched later by
#: ``sa-update`` (into /var/lib/spamassassin) cannot change the result from day to day.
RULES_DIR = Path("/usr/share/spamassassin")

#: Debian's site configuration: only its ``*.pre`` files (which load the plugins most rules
#: need) are copied; the machine's ``local.cf`` is not read.
SITE_DIR = Path("/etc/spamassassin")

#: Compiled body rules (sa-compile) are a cache of the same rules; a stale one from
#: another rules version must not change the result.
SKIPPED_PRE_FILES = frozenset({"sa-compile.pre"})

#: Our settings, written to the private site configuration folder.
LOCAL_CF = """\
# Written by tests/test_spamassassin.py for one test run.
# Scores depend only on the message: no Bayes database, no learning, no network.
use_bayes 0
bayes_auto_learn 0
skip_rbl_checks 1
dns_available no
# Keep the message as it is and put the rules that hit, with their scores, in a header.
report_safe 0
required_score 5.0
add_header all Tests _TESTSSCORES(,)_
# The Received header we prepend says 127.0.0.1, and loopback is always trusted
# (Mail::SpamAssassin::Conf, trusted_networks): ALL_TRUSTED would take a point off every
# mail, a bonus a real receiver, who gets our mail from the internet, never gives.
score ALL_TRUSTED 0
"""

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Verdict:
    """What SpamAssassin said about one mail."""

    kind: str
    size: int
    #: Rule name to the score it added, highest first.
    rules: dict[str, float]

    @property
    def score(self) -> float:
        # The sum of the rules, not the one-decimal _SCORE_ SpamAssassin prints.
        return round(sum(self.rules.values()), 3)

    def rules_text(self) -> str:
        """``RULE=score, ...`` (or ``-`` when none hit)."""
        return ", ".join(f"{name}={score:g}" for name, score in self.rules.items()) or "-"


class SpamAssassin:
    """SpamAssassin with local rules only and a private home and configuration in ``root``.

    With Debian's ``spamd`` and ``spamc`` at hand, one daemon (on a UNIX socket in
    ``root``) scores every mail: it parses the rules once, so a mail takes about 0.3 s
    instead of the 1.3 s of a ``spamassassin`` run, most of which is reading the rules.
    Without them, ``spamassassin`` runs once per mail. Both read the same configuration
    and give the same scores.
    """

    def __init__(self, executable: str, root: Path) -> None:
        self.executable = executable
        self.verdicts: list[Verdict] = []
        self.home = root / "home"
        self.site = root / "site"
        self.home.mkdir()
        self.site.mkdir()
        # spamd started by root reads its configuration as "nobody": the folder (nothing
        # secret in it) must be readable for everyone, not 0700 as mkdtemp makes it.
        for folder in (root, self.home, self.site):
            folder.chmod(0o755)
        if SITE_DIR.is_dir():
            for pre in sorted(SITE_DIR.glob("*.pre")):
                if pre.name not in SKIPPED_PRE_FILES:
                    shutil.copyfile(pre, self.site / pre.name)
        (self.site / "local.cf").write_text(LOCAL_CF, "utf-8")
        self.prefs = self.home / "user_prefs"
        self.prefs.write_text("", "utf-8")
        for written in [*self.site.iterdir(), self.prefs]:
            written.chmod(0o644)  # whatever the umask
        self.socket = root / "spamd.sock"
        self.log = root / "spamd.log"
        self.spamc = shutil.which("spamc")
        spamd = shutil.which("spamd") or shutil.which("spamd", path="/usr/sbin")
        self.daemon: subprocess.Popen[bytes] | None = None
        self.ready = False
        if spamd and self.spamc:
            # Started now, it reads its rules while the first flow produces mail.
            self.daemon = subprocess.Popen(
                [
                    spamd,
                    *self.options(),
                    "--nouser-config",
                    f"--socketpath={self.socket}",
                    "--max-children=1",
                    "--min-children=1",
                    f"--syslog={self.log}",
                    f"--helper-home-dir={self.home}",
                ],
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )

    def options(self) -> list[str]:
        """What ``spamassassin`` and ``spamd`` both take: local tests, our configuration."""
        options = ["--local", f"--siteconfigpath={self.site}"]
        if RULES_DIR.is_dir():
            options.append(f"--configpath={RULES_DIR}")
        return options

    def environment(self) -> dict[str, str]:
        """The environment of every SpamAssassin process: nothing of ours leaks in."""
        # HOME keeps ~/.spamassassin (and anything a plugin writes there) in our folder;
        # the C locale keeps the output free of translations.
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": "C",
            "LC_ALL": "C",
        }

    def command(self) -> list[str]:
        """The command that reads one mail on stdin and writes it back with our headers."""
        if self.daemon is None:
            return [
                self.executable,
                *self.options(),
                "--nocreate-prefs",
                f"--prefspath={self.prefs}",
            ]
        spamc = self.wait_for_daemon()
        # --no-safe-fallback: an error is an error, not the mail handed back unscored.
        return [spamc, "--no-safe-fallback", f"--socket={self.socket}", "--max-size=50000000"]

    def wait_for_daemon(self, timeout: float = 60) -> str:
        """Wait until spamd answers a ping; returns the spamc to talk to it with."""
        assert self.daemon is not None and self.spamc is not None
        deadline = time.monotonic() + timeout
        while not self.ready:
            log = self.log.read_text("utf-8", "replace") if self.log.exists() else ""
            assert self.daemon.poll() is None, f"spamd exited:\n{log}"
            assert time.monotonic() < deadline, f"spamd did not start:\n{log}"
            if self.socket.exists():
                ping = subprocess.run(
                    [self.spamc, f"--socket={self.socket}", "-K"],
                    capture_output=True,
                    timeout=10,
                    check=False,
                )
                self.ready = ping.returncode == 0
                # A configuration line SpamAssassin did not understand would silently
                # change the rules; it says so in the log.
                assert "config:" not in log, f"spamd configuration problem:\n{log}"
            if not self.ready:
                time.sleep(0.1)
        return self.spamc

    def rules_for(self, message: bytes) -> dict[str, float]:
        """The rules that hit ``message`` (as delivered), with their scores."""
        result = subprocess.run(
            self.command(),
            input=message,
            capture_output=True,
            env=self.environment(),
            timeout=120,
            check=False,
        )
        stderr = result.stderr.decode("utf-8", "replace")
        assert result.returncode == 0, f"scoring failed ({result.returncode}):\n{stderr}"
        assert "config:" not in stderr, f"spamassassin configuration problem:\n{stderr}"
        return rules_of(result.stdout)

    def judge(self, kind: str, mail: ReceivedMail) -> Verdict:
        """Score ``mail`` as delivered to its first recipient and remember the verdict."""
        assert mail.raw, "the SMTP server kept no raw bytes for this mail"
        verdict = Verdict(kind, len(mail.raw), self.rules_for(as_delivered(mail)))
        self.verdicts.append(verdict)
        return verdict

    def close(self) -> None:
        """Stop the daemon (it takes its child with it)."""
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait(timeout=10)

    def table(self) -> str:
        """One row per judged mail: kind, score, size as sent, rules with their scores."""
        how = "spamd" if self.daemon is not None else "spamassassin"
        header = f"{'mail':<32} {'score':>6} {'bytes':>7}  rules"
        rows = [
            f"{v.kind:<32} {v.score:>6.3f} {v.size:>7}  {v.rules_text()}" for v in self.verdicts
        ]
        title = f"SpamAssassin ({how}, local rules only), limit {SCORE_LIMIT}; bytes as sent"
        return "\n".join(["", title, header, *rows, ""])


def as_delivered(mail: ReceivedMail) -> bytes:
    """The raw mail as the receiving server hands it to its filter: ``Return-Path`` (the
    envelope sender) and one ``Received`` header in front, the rest byte for byte."""
    newline = b"\r\n" if b"\r\n" in mail.raw else b"\n"
    received = (
        f"Received: from localhost (localhost [127.0.0.1]){newline.decode()}"
        f"\tby mx.example.org (Postfix) with ESMTP id 4F1A2B3C4D{newline.decode()}"
        f"\tfor <{mail.to}>; {format_datetime(datetime.now(UTC))}"
    )
    trace = f"Return-Path: <{mail.mail_from}>".encode() + newline + received.encode() + newline
    return trace + mail.raw


def rules_of(output: bytes) -> dict[str, float]:
    """The rules (with scores) from the ``X-Spam-Tests`` header of SpamAssassin's output."""
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(output)
    tests = headers.get("X-Spam-Tests")
    assert tests is not None, "spamassassin added no X-Spam-Tests header"
    rules: dict[str, float] = {}
    for entry in re.sub(r"\s+", "", str(tests)).split(","):
        if entry and entry != "none":
            name, _, score = entry.partition("=")
            rules[name] = float(score)
    return dict(sorted(rules.items(), key=lambda item: (-item[1], item[0])))


def spamassassin_executable() -> str:
    """The installed ``spamassassin``; installs it as root, skips when that is impossible."""
    found = shutil.which("spamassassin")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(
            "spamassassin is not installed and installing it needs root: run "
            "`sh scripts/install-test-tools.sh` as root (Debian: apt-get install spamassassin)"
        )
    installed = subprocess.run(
        ["sh", str(ROOT / "scripts" / "install-test-tools.sh")],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert installed.returncode == 0, f"installing spamassassin failed:\n{installed.stderr}"
    found = shutil.which("spamassassin")
    assert found, "scripts/install-test-tools.sh ran but spamassassin is still missing"
    return found


@pytest.fixture(scope="module")
def spamassassin() -> Iterator[SpamAssassin]:
    """One private SpamAssassin for the module; prints the table of verdicts at its end."""
    executable = spamassassin_executable()
    with tempfile.TemporaryDirectory(prefix="kgi-spamassassin-") as root:
        judge = SpamAssassin(executable, Path(root))
        try:
            yield judge
        finally:
            judge.close()
            print(judge.table())


def assert_below_limit(verdicts: list[Verdict]) -> None:
    """Every verdict below the limit; otherwise one line per mail with the rules that hit."""
    too_high = [v for v in verdicts if v.score >= SCORE_LIMIT]
    assert not too_high, "\n".join(
        f"{v.kind} scores {v.score} (limit {SCORE_LIMIT}): {v.rules_text()}" for v in too_high
    )


#: The Generic Test for Unsolicited Bulk Email (20_body_tests.cf), split so that this
#: file itself does not match it.
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*" + "GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def test_the_judge_is_not_blind(spamassassin: SpamAssassin) -> None:
    """With our private configuration, header and body rules still run: a mail without
    Date and Message-ID that carries the GTUBE line gets all three rules."""
    sample = ReceivedMail(
        "sender@example.net",
        ["reader@example.org"],
        EmailMessage(),
        (
            "From: Sender <sender@example.net>\r\nTo: reader@example.org\r\n"
            f"Subject: Sample\r\n\r\nThis is spam.\r\n{GTUBE}\r\n"
        ).encode(),
    )
    rules = spamassassin.rules_for(as_delivered(sample))
    assert {"GTUBE", "MISSING_DATE", "MISSING_MID"} <= rules.keys(), rules


def signup(client: httpx.Client, email: str, name: str, language: str) -> None:
    """Fill in and send the site's sign-up form, as a visitor does."""
    client.get(f"/subscribers/signup?lang={language}")
    response = client.post(
        "/subscribers/signup",
        data={"email": email, "name": name, "language": language},
        headers={"referer": f"{client.base_url}/subscribers/signup"},
    )
    assert response.status_code == 303, response.text


@pytest.mark.parametrize("language", ["de", "en"])
def test_sign_up_mails(
    site: str,
    worker: object,
    smtp: RecordingSMTPServer,
    spamassassin: SpamAssassin,
    language: str,
) -> None:
    """The confirmation mail and, once confirmed, the welcome mail."""
    address = f"lea.becker.{language}@example.org"
    client = httpx.Client(base_url=site, headers={"user-agent": "Mozilla/5.0 (pytest)"})
    signup(client, address, "Lea Becker", language)
    confirmation = wait_for(lambda: smtp.to(address), message="confirmation mail")[0]
    link = link_in(confirmation.part("plain"), "/subscribers/confirm/")
    page = client.get(link)
    assert client.post(link, data={"csrf_token": csrf_of(page.text)}).status_code == 200
    mails = wait_for(lambda: len(smtp.to(address)) == 2 and smtp.to(address), message="welcome")
    verdicts = [
        spamassassin.judge(f"confirmation ({language})", confirmation),
        spamassassin.judge(f"welcome ({language})", mails[1]),
    ]
    assert_below_limit(verdicts)


@pytest.mark.parametrize("language", ["de", "en"])
def test_issue_mails(
    site: str,
    worker: object,
    smtp: RecordingSMTPServer,
    spamassassin: SpamAssassin,
    language: str,
) -> None:
    """An administrator composes an issue, test-sends it to themselves and sends it: the
    test mail, the copy a subscriber gets and the summary mail for the administrator."""
    load_demo()
    reader = f"sam.taylor.{language}@example.org"
    report = transfer.import_csv(
        f"email,name,language,consent_source\n{reader},Sam Taylor,{language},paper form\n",
        "list.csv",
    )
    assert report.summary["added"] == 1
    editor = f"chefredaktion.{language}@example.org"
    admin = login(site, editor)
    listing = admin.get("/newsletter/admin/")
    created = admin.post(
        "/newsletter/admin/new", data={"csrf_token": csrf_of(listing.text), "language": language}
    )
    assert created.status_code == 303
    url = created.headers["location"]
    page = admin.get(url)
    token = csrf_of(page.text)
    # Everything published in the issue's language, as an editor would pick it.
    content_ids = re.findall(r'name="content_id" value="(\d+)"', page.text)
    assert content_ids, "no published items to put in the issue"
    added = admin.post(
        f"{url}/items", data={"csrf_token": token, "action": "add", "content_id": content_ids}
    )
    assert added.status_code == 303
    tested = admin.post(f"{url}/test", data={"csrf_token": token, "addresses": editor})
    assert tested.status_code == 303
    test_mail = smtp.to(editor)[0]
    assert admin.post(f"{url}/send", data={"csrf_token": token}).status_code == 303
    issue_mail = wait_for(lambda: smtp.to(reader), timeout=30, message="issue mail")[0]
    summary = wait_for(
        lambda: len(smtp.to(editor)) == 2 and smtp.to(editor)[1], timeout=30, message="summary"
    )
    verdicts = [
        spamassassin.judge(f"issue test send ({language})", test_mail),
        spamassassin.judge(f"issue to subscriber ({language})", issue_mail),
        spamassassin.judge(f"editor summary ({language} issue)", summary),
    ]
    assert_below_limit(verdicts)
