"""Where the bounce mailbox is and how to log in, parsed from ``KGI_BOUNCE_MAILBOX_URL``::

    imaps://bounces%40kgi.example.org:secret@imap.example.org/INBOX
    imap://user:pass@127.0.0.1:1143/INBOX?starttls=true&cafile=/path/ca.pem

:meth:`MailboxEndpoint.from_url` checks every part and says what is wrong without ever
repeating the password; :mod:`shared.mail.mailbox` polls the mailbox it names.
"""

from __future__ import annotations

import math
import re
import ssl
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

#: Seconds to wait for the IMAP server to connect or answer one command.
IMAP_TIMEOUT_SECONDS = 30

#: The folder polled when the URL names none (every IMAP server has an INBOX).
DEFAULT_FOLDER = "INBOX"

#: Query parameters a mailbox URL may carry.
URL_PARAMETERS = frozenset({"starttls", "cafile", "timeout", "processed"})

#: Spellings of yes and no accepted for ``starttls=``.
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

#: Hint for URLs that a special character in the credentials broke apart.
_ENCODE_HINT = (
    "percent-encode special characters in the user name and password "
    "(@ as %40, : as %3A, / as %2F, ? as %3F, # as %23, % as %25)"
)

#: A control character in a folder name would end the IMAP command line early.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class MailboxEndpoint:
    """Where and how to read, parsed from ``imaps://user:pass@host/FOLDER?options``.

    ``imap://`` connects in plain text (port 143), upgraded with ``starttls=true``;
    without it the password crosses the network unencrypted, which is fine on loopback
    only. ``imaps://`` connects with implicit TLS (port 993). The path names the folder
    as the server spells it (``INBOX`` when empty). Options: ``cafile=PATH`` (a CA
    bundle to trust instead of the system's), ``timeout=SECONDS`` and
    ``processed=FOLDER`` (move handled messages there instead of deleting them).
    """

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str
    # Kept out of repr() so that logging an endpoint cannot leak it.
    password: str = field(repr=False)
    folder: str = DEFAULT_FOLDER
    #: Handled messages are moved here instead of being deleted; None: deleted.
    processed_folder: str | None = None
    timeout: float = IMAP_TIMEOUT_SECONDS
    #: CA bundle to trust instead of the system's (a private server with its own CA).
    cafile: str | None = None

    @property
    def label(self) -> str:
        """Who, where and which folder, for messages and logs (no password)."""
        scheme = "imaps" if self.implicit_tls else "imap"
        return f"{self.username} on {scheme}://{self.host}:{self.port}/{self.folder}"

    def tls_context(self) -> ssl.SSLContext:
        """A verifying TLS context: the system's CAs, or only those of ``cafile``."""
        return ssl.create_default_context(cafile=self.cafile)

    @classmethod
    def from_url(cls, url: str) -> MailboxEndpoint:
        """Parse a mailbox URL; raises ValueError naming what is wrong.

        The messages never repeat the password, nor any part of the URL where a
        mistyped password could have ended up.
        """
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in ("imap", "imaps"):
            raise ValueError("bounce mailbox URL must start with imap:// or imaps://")
        # An unencoded / ? or # in the password moves the rest of the credentials, and
        # with them the @ before the host, out of the network location part.
        if "@" in parts.path or "@" in parts.query or "@" in parts.fragment:
            raise ValueError(f"bounce mailbox URL has an '@' after the host: {_ENCODE_HINT}")
        if parts.fragment:
            raise ValueError(f"bounce mailbox URL must not have a '#' part: {_ENCODE_HINT}")
        try:
            port = parts.port
        except ValueError:
            # urllib's own message quotes the text, which may be a piece of the password.
            raise ValueError(
                f"bounce mailbox URL: the port is not a number from 1 to 65535; {_ENCODE_HINT}"
            ) from None
        if port == 0:
            raise ValueError("bounce mailbox URL: the port must be a number from 1 to 65535")
        if not parts.hostname:
            raise ValueError("bounce mailbox URL names no host")
        if not parts.username or parts.password is None:
            raise ValueError(
                "bounce mailbox URL needs a user name and password: "
                "imaps://USER:PASSWORD@host/FOLDER"
            )
        query: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key not in URL_PARAMETERS:
                known = ", ".join(sorted(URL_PARAMETERS))
                raise ValueError(f"bounce mailbox URL: unknown option {key!r} (known: {known})")
            query[key] = value  # the last one wins, as for the SMTP URL
        implicit_tls = scheme == "imaps"
        starttls = _flag(query.get("starttls", "false"), "starttls")
        if starttls and implicit_tls:
            raise ValueError(
                "bounce mailbox URL: starttls=true is for imap://; imaps:// is TLS already"
            )
        folder = _folder(unquote(parts.path).strip("/") or DEFAULT_FOLDER, "folder")
        processed = query.get("processed")
        if processed is not None:
            processed = _folder(processed.strip("/"), "processed")
            if processed.casefold() == folder.casefold():
                raise ValueError("bounce mailbox URL: processed= must name another folder")
        cafile = query.get("cafile")
        if cafile is not None and not cafile:
            raise ValueError("bounce mailbox URL: cafile= needs the path of a CA bundle")
        return cls(
            host=parts.hostname,
            port=port or (993 if implicit_tls else 143),
            implicit_tls=implicit_tls,
            starttls=starttls,
            username=unquote(parts.username),
            password=unquote(parts.password),
            folder=folder,
            processed_folder=processed,
            timeout=_timeout(query.get("timeout")),
            cafile=cafile,
        )


def _flag(value: str, name: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"bounce mailbox URL: {name}= must be true or false, not {value!r}")


def _folder(name: str, what: str) -> str:
    if not name:
        raise ValueError(f"bounce mailbox URL: the {what} folder name is empty")
    if _CONTROL.search(name):
        raise ValueError(f"bounce mailbox URL: the {what} folder name has control characters")
    return name


def _timeout(value: str | None) -> float:
    if value is None:
        return IMAP_TIMEOUT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"bounce mailbox URL: timeout= must be seconds above 0, not {value!r}")
    return seconds
