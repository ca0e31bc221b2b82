"""A throwaway dovecot IMAP server on loopback ports, for the bounce-mailbox tests.

Everything lives in a temporary directory: the configuration, dovecot's sockets and
state, a passwd-file with the test accounts, the maildirs and the log. The server offers
plain IMAP (with STARTTLS) and IMAPS with the test-only certificate in
``tests/fixtures/tls``.

Dovecot refuses to run its login processes as root ("This process must not be run as
root") and to access mail as root ("Mail access not allowed for root"), so the whole
instance runs as one unprivileged user, the way Dovecot's own rootless container image
does: the current user, or ``nobody`` when the tests run as root. Every process of the
instance, master included, then runs as that user, so the internal, login and mail
users all name it, and chrooting (which needs root) is switched off.
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

from tests.conftest import free_port

#: Debian's dovecot (package dovecot-imapd), installed by scripts/install-test-tools.sh.
DOVECOT = Path("/usr/sbin/dovecot")

#: The self-signed test certificate (also its own CA) for 127.0.0.1 and localhost.
TLS = Path(__file__).parent / "fixtures" / "tls"

#: Who dovecot runs as when the tests run as root: an account that exists everywhere and
#: owns nothing, so the instance can touch only its own temporary directory.
UNPRIVILEGED_USER = "nobody"

#: The account the poller reads. The password has characters a URL must percent-encode.
USER = "bounces@kgi.example.org"
PASSWORD = "s3c/r?t#@%x"

#: A second account whose password is not ASCII, which IMAP LOGIN cannot carry. (Dovecot
#: takes only ASCII user names by default: auth_username_chars.)
UNICODE_USER = "lena@kgi.example.org"
UNICODE_PASSWORD = "Schöne-Grüße-2026"

#: Seconds to wait for dovecot to answer on both ports.
START_TIMEOUT_SECONDS = 20

_CONFIG = """\
# Written by tests/dovecot_server.py for one test session.
protocols = imap
listen = 127.0.0.1
instance_name = kgi-tests-{imap_port}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
auth_verbose = yes

# One unprivileged user for every process (see the module docstring).
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
mail_uid = {user}
mail_gid = {group}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{root}/mail/%u

ssl = yes
ssl_cert = <{root}/tls/cert.pem
ssl_key = <{root}/tls/key.pem
# Loopback only: plain-text passwords without TLS are what imap:// without STARTTLS does.
disable_plaintext_auth = no
auth_mechanisms = plain
# Wrong passwords are tested on purpose: no 2 s reply delay, no growing penalty.
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = {root}/passwd
}}

service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def available() -> bool:
    """Whether dovecot is installed, so the tests that need it can run."""
    return DOVECOT.is_file() and os.access(DOVECOT, os.X_OK)


class DovecotServer:
    """One dovecot instance: ``start()``, point clients at ``url()``, ``stop()``."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="kgi-dovecot-"))
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            account = pwd.getpwnam(UNPRIVILEGED_USER)
        else:
            account = pwd.getpwuid(os.getuid())
        self.uid, self.gid = account.pw_uid, account.pw_gid
        self.user = account.pw_name
        self.group = grp.getgrgid(account.pw_gid).gr_name

    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    def log(self) -> str:
        """Dovecot's log so far (empty before the first line)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> DovecotServer:
        """Write the configuration, start ``dovecot -F`` and wait until both ports answer."""
        self._write_files()
        options: dict[str, object] = {}
        if os.geteuid() == 0:
            # Popen would otherwise keep root's supplementary groups in the child.
            options = {"user": self.uid, "group": self.gid, "extra_groups": []}
        # Whatever dovecot says before its log is open (configuration errors) goes here.
        with (self.root / "stdout.log").open("wb") as output:
            self.process = subprocess.Popen(
                [str(DOVECOT), "-F", "-c", str(self.root / "dovecot.conf")],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                # Its own process group: a Ctrl-C of pytest reaches pytest, which stops it.
                process_group=0,
                **options,  # type: ignore[arg-type]
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        for port in (self.imap_port, self.imaps_port):
            while not _answers(port, greeting=port == self.imap_port):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    report = self.failure_report()
                    self.stop()
                    raise RuntimeError(f"dovecot did not start on port {port}:\n{report}")
                time.sleep(0.05)
        return self

    def _write_files(self) -> None:
        (self.root / "tls").mkdir()
        # Copied: the checkout may sit where the unprivileged user cannot read.
        shutil.copyfile(TLS / "test-only-cert.pem", self.root / "tls" / "cert.pem")
        shutil.copyfile(TLS / "test-only-key.pem", self.root / "tls" / "key.pem")
        (self.root / "tls" / "key.pem").chmod(0o600)
        # passwd-file: user:{scheme}password:uid:gid:gecos:home:shell; empty uid and gid
        # mean mail_uid and mail_gid.
        (self.root / "passwd").write_text(
            f"{USER}:{{PLAIN}}{PASSWORD}:::::\n{UNICODE_USER}:{{PLAIN}}{UNICODE_PASSWORD}:::::\n",
            encoding="utf-8",
        )
        (self.root / "dovecot.conf").write_text(
            _CONFIG.format(
                root=self.root,
                user=self.user,
                group=self.group,
                uid=self.uid,
                gid=self.gid,
                imap_port=self.imap_port,
                imaps_port=self.imaps_port,
            ),
            encoding="utf-8",
        )
        for name in ("run", "state", "mail"):
            (self.root / name).mkdir()
        if os.geteuid() == 0:
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, self.uid, self.gid)

    def failure_report(self) -> str:
        """What dovecot said: its stdout/stderr and its log, for a failure message."""
        try:
            early = (self.root / "stdout.log").read_text(errors="replace")
        except FileNotFoundError:
            early = ""
        code = self.process.poll() if self.process is not None else None
        return f"exit code: {code}\n--- output ---\n{early}\n--- {self.log_path} ---\n{self.log()}"

    def stop(self) -> None:
        """Stop dovecot (SIGTERM, then SIGKILL) and remove its directory."""
        if self.process is not None and self.process.poll() is None:
            # The master stops its children on SIGTERM.
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                # Its own process group (see start), so this reaches the children too.
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(
        self,
        scheme: str = "imap",
        folder: str = "INBOX",
        *,
        user: str = USER,
        password: str = PASSWORD,
        **options: str,
    ) -> str:
        """A mailbox URL for this server, credentials percent-encoded."""
        port = self.imaps_port if scheme == "imaps" else self.imap_port
        query = f"?{urlencode(options)}" if options else ""
        return (
            f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@127.0.0.1:{port}/{quote(folder)}{query}"
        )

    # A client of our own, for putting mail in and looking at what is left.

    @contextlib.contextmanager
    def client(self) -> Iterator[imaplib.IMAP4]:
        """A logged-in plain-text IMAP connection as USER, logged out afterwards."""
        imap = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10)
        try:
            imap.login(USER, PASSWORD)
            yield imap
        finally:
            with contextlib.suppress(Exception):
                imap.logout()

    def append(self, *messages: bytes, folder: str = "INBOX") -> None:
        """Deliver ``messages`` into ``folder`` with IMAP APPEND, in this order."""
        with self.client() as imap:
            for raw in messages:
                typ, data = imap.append(folder, None, None, raw)
                assert typ == "OK", data

    def messages(self, folder: str = "INBOX") -> list[tuple[set[str], bytes]]:
        """Flags and raw bytes of every message in ``folder`` (an IMAP name), in UID order.

        Read with BODY.PEEK[] in a read-only session, so looking changes nothing.
        """
        with self.client() as imap:
            typ, data = imap.select(f'"{folder}"', readonly=True)
            assert typ == "OK", data
            if data == [b"0"]:
                return []
            typ, data = imap.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
            assert typ == "OK", data
            found = []
            for item in data:
                if isinstance(item, tuple):
                    flags = re.search(rb"FLAGS \(([^)]*)\)", item[0])
                    uid = re.search(rb"UID (\d+)", item[0])
                    assert flags and uid, item[0]
                    found.append((int(uid[1]), set(flags[1].decode().split()), item[1]))
            return [(flags, raw) for _, flags, raw in sorted(found)]

    def folders(self) -> list[str]:
        """The folder names as the server lists them (modified UTF-7 for non-ASCII)."""
        with self.client() as imap:
            typ, data = imap.list()
            assert typ == "OK", data
        # Each line: (flags) "separator" name, the name quoted or not.
        names = [
            re.sub(rb'^\([^)]*\) (?:"[^"]*"|NIL) ', b"", line).strip(b'"').decode()
            for line in data
            if isinstance(line, bytes)
        ]
        return sorted(names)

    def empty(self) -> None:
        """Remove every folder but INBOX, and every message in INBOX."""
        others = [name for name in self.folders() if name != "INBOX"]
        with self.client() as imap:
            for name in others:
                typ, data = imap.delete(f'"{name}"')
                assert typ == "OK", data
            typ, data = imap.select("INBOX")
            assert typ == "OK", data
            if data != [b"0"]:
                imap.store("1:*", "+FLAGS.SILENT", r"(\Deleted)")
                imap.expunge()


def _answers(port: int, greeting: bool) -> bool:
    """Whether the loopback ``port`` accepts connections (and greets like IMAP)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            # The master listens at once; the greeting shows a login process works too.
            return not greeting or sock.recv(64).startswith(b"* OK")
    except OSError:
        return False
