"""The shared mail transport against real aiosmtpd servers: MIME shape, connection reuse,
and temporary versus permanent failures."""

from __future__ import annotations

import email
import email.policy
import time

import pytest
from aiosmtpd.controller import Controller
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.mail.message import WELCOME, PreparedMessage, Unsubscribe
from shared.mail.transport import (
    Delivery,
    PermanentMailError,
    SMTPEndpoint,
    SMTPTransport,
    TemporaryMailError,
)
from tests.conftest import free_port
from tests.smtp_server import RecordingSMTPServer


class CountingServer(RecordingSMTPServer):
    """Counts SMTP sessions, to see whether the transport reuses its connection."""

    def __init__(self, **controller_options) -> None:
        super().__init__()
        self.peers: set[tuple[str, int]] = set()
        self.controller_options = controller_options

    @property
    def sessions(self) -> int:
        return len(self.peers)

    def start(self) -> None:
        self.port = free_port()
        self.controller = Controller(
            self, hostname="127.0.0.1", port=self.port, **self.controller_options
        )
        self.controller.start()

    async def handle_DATA(self, server, session, envelope) -> str:
        self.peers.add(session.peer)
        return await super().handle_DATA(server, session, envelope)


def message(
    to: str = "leser@example.org", subject: str = "Grüße aus Köln – Ausgabe 3/2026"
) -> bytes:
    return PreparedMessage(subject, WELCOME).render(
        to,
        "Lena Müller",
        text="Hallo Lena,\nviele Grüße.\n",
        html="<p>Hallo Lena,<br>viele Grüße.</p>",
        unsubscribe=Unsubscribe("https://kgi.example.org/subscribers/unsubscribe/abc"),
    )


def send(transport: SMTPTransport, to: str = "leser@example.org") -> Delivery:
    return transport.send("infobrief@kgi.example.org", to, message(to))


def test_message_is_correct_mime():
    raw = message()
    built = email.message_from_bytes(raw, policy=email.policy.default)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert built.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in built.iter_parts()] == ["text/plain", "text/html"]
    assert b"Subject: =?utf-8?" in raw  # encoded word for the umlauts
    assert built["Message-ID"].endswith("@kgi.example.org>")
    assert built["Date"] and built["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert str(built["To"]) == "Lena Müller <leser@example.org>"


def test_header_injection_is_impossible():
    with pytest.raises(ValueError):
        message(subject="Hallo\r\nBcc: everyone@example.org")


def test_connection_is_reused_and_survives_a_server_side_close():
    server = CountingServer(server_kwargs={"timeout": 0.5})
    server.start()
    try:
        transport = SMTPTransport(f"smtp://127.0.0.1:{server.port}")
        for n in range(5):
            assert send(transport, f"r{n}@example.org") == Delivery.ACCEPTED
        assert len(server.mails) == 5 and server.sessions == 1
        # The server drops idle connections: the next send reconnects once, transparently.
        time.sleep(1)
        send(transport, "after@example.org")
        assert len(server.mails) == 6 and server.sessions == 2
        transport.close()
    finally:
        server.stop()


def test_temporary_and_permanent_replies_are_told_apart(smtp):
    with SMTPTransport(f"smtp://127.0.0.1:{smtp.port}") as transport:
        smtp.refuse_next("452 4.2.2 Mailbox full")
        with pytest.raises(TemporaryMailError) as temporary:
            send(transport)
        assert temporary.value.code == 452
        smtp.refuse_next("554 5.7.1 Rejected as spam")
        with pytest.raises(PermanentMailError) as permanent:
            send(transport)
        assert permanent.value.code == 554
        send(transport)  # the session is still usable after a refused mail
    assert len(smtp.mails) == 1


def test_unreachable_server_is_temporary():
    with (
        pytest.raises(TemporaryMailError),
        SMTPTransport(f"smtp://127.0.0.1:{free_port()}?timeout=2") as t,
    ):
        send(t)


def test_endpoint_parsing():
    ep = SMTPEndpoint.from_url(
        "smtp://user%40example.org:p%3Ass@mail.example.org:587?starttls=true"
    )
    assert (ep.host, ep.port, ep.starttls, ep.implicit_tls) == (
        "mail.example.org",
        587,
        True,
        False,
    )
    assert (ep.username, ep.password) == ("user@example.org", "p:ss")
    assert SMTPEndpoint.from_url("smtps://mail.example.org").port == 465
    with pytest.raises(ValueError):
        SMTPEndpoint.from_url("http://mail.example.org")


def test_dkim_signature_covers_list_unsubscribe_and_verifies():
    import dkim

    from shared.mail.signing import DkimKey

    fixtures = __import__("pathlib").Path(__file__).parent / "fixtures" / "dkim"
    key = DkimKey("kgi", "kgi.example.org", (fixtures / "test-only-private.pem").read_bytes())
    public = (fixtures / "test-only-public.b64").read_text().strip()
    signed = PreparedMessage("Grüße", WELCOME, dkim_key=key).render(
        "leser@example.org",
        "Lena Müller",
        "Hallo",
        "<p>Hallo</p>",
        Unsubscribe("https://kgi.example.org/u/1", "mailto:bounces+u1.0123456789@kgi.example.org"),
    )
    assert signed.startswith(b"DKIM-Signature:")
    header = signed.split(b"\r\n\r\n")[0].decode()
    signed_names = "".join(header.lower().split()).split(";h=", 1)[1].split(";", 1)[0]
    for name in ("list-unsubscribe", "list-unsubscribe-post", "feedback-id", "auto-submitted"):
        assert name in signed_names

    def dns(name, timeout=5):
        assert name == b"kgi._domainkey.kgi.example.org."
        return f"v=DKIM1; k=rsa; p={public}".encode()

    assert dkim.verify(signed, dnsfunc=dns)
    tampered = signed.replace(b"https://kgi.example.org/u/1", b"https://evil.example/u/1")
    assert not dkim.verify(tampered, dnsfunc=dns)


@given(st.binary(max_size=2000), st.sampled_from(["sha256", "sha1"]))
@settings(max_examples=50, deadline=None)
def test_dkim_rsa_step_by_openssl_gives_dkimpys_own_bytes(data, algorithm):
    """PKCS#1 v1.5 is deterministic: OpenSSL's signature must equal dkimpy's pure-Python
    one bit for bit, for any digest; and it is the step dkimpy now uses."""
    import hashlib

    import dkim
    import dkim.crypto

    from shared.mail import signing

    fixtures = __import__("pathlib").Path(__file__).parent / "fixtures" / "dkim"
    key = dkim.crypto.parse_pem_private_key((fixtures / "test-only-private.pem").read_bytes())
    digest = hashlib.new(algorithm, data)
    assert signing.openssl_rsassa_sign(digest, key) == (
        dkim.crypto.RSASSA_PKCS1_v1_5_sign(digest, key)
    )
    assert dkim.RSASSA_PKCS1_v1_5_sign is signing.openssl_rsassa_sign


TLS = __import__("pathlib").Path(__file__).parent / "fixtures" / "tls"


def _tls_server(**options):
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(TLS / "test-only-cert.pem", TLS / "test-only-key.pem")
    return context


def test_starttls_and_authentication():
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(
            success=isinstance(auth_data, LoginPassword) and auth_data.password == b"s3cret",
            handled=False,  # let aiosmtpd answer 535 itself
        )

    server = CountingServer(
        tls_context=_tls_server(),
        require_starttls=True,
        authenticator=authenticator,
    )
    server.start()
    try:
        ca = TLS / "test-only-cert.pem"
        with SMTPTransport(
            f"smtp://kgi:s3cret@127.0.0.1:{server.port}?starttls=true&cafile={ca}"
        ) as transport:
            send(transport)
        assert len(server.mails) == 1
        with (
            pytest.raises(PermanentMailError) as wrong,
            SMTPTransport(
                f"smtp://kgi:wrong@127.0.0.1:{server.port}?starttls=true&cafile={ca}&timeout=5"
            ) as transport,
        ):
            send(transport)
        assert wrong.value.code == 535
        # Without trusting the server's certificate the connection is refused, not downgraded.
        with (
            pytest.raises(TemporaryMailError),
            SMTPTransport(
                f"smtp://kgi:s3cret@127.0.0.1:{server.port}?starttls=true&timeout=5"
            ) as transport,
        ):
            send(transport)
    finally:
        server.stop()


def test_implicit_tls():
    server = CountingServer(server_hostname="127.0.0.1", ssl_context=_tls_server())
    server.start()
    try:
        ca = TLS / "test-only-cert.pem"
        with SMTPTransport(f"smtps://127.0.0.1:{server.port}?cafile={ca}&timeout=5") as transport:
            send(transport)
        assert len(server.mails) == 1
    finally:
        server.stop()


def test_transactional_mails_are_signed_and_use_verp_too(site, worker, smtp, monkeypatch):
    """One pipeline: the confirmation mail gets the issue's DKIM signature and a VERP
    envelope sender (before, only issues had either)."""
    import dkim
    import httpx

    from shared.mail import message as message_module
    from shared.mail import signing
    from shared.mail.signing import DkimKey
    from tests.conftest import wait_for

    fixtures = __import__("pathlib").Path(__file__).parent / "fixtures" / "dkim"
    key = DkimKey("kgi", "kgi.example.org", (fixtures / "test-only-private.pem").read_bytes())
    public = (fixtures / "test-only-public.b64").read_text().strip()
    monkeypatch.setattr(message_module, "configured_key", lambda: key)
    httpx.post(f"{site}/subscribers/api/subscriptions", json={"email": "signed@example.org"})
    [mail] = wait_for(lambda: smtp.to("signed@example.org"), message="confirmation mail")
    assert mail.raw.startswith(b"DKIM-Signature:")
    assert dkim.verify(mail.raw, dnsfunc=lambda name, timeout=5: f"p={public}".encode())
    tag = signing.read_return_address(mail.mail_from)
    assert tag is not None and tag.kind == "bounce" and tag.issue_id is None
