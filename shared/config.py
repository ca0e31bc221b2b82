"""Configuration, read from the environment in this one place.

Every setting has a documented default that suits the embedded development system
(`kgi run`): data in ``./var``, a private Redis on a Unix socket there, SQLite files,
and the development mail catcher. Production sets ``KGI_ENV=production`` and must then
name a secret key explicitly.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

#: The project's folder (where ``node_modules`` lies beside ``shared``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: ``KGI_<OWNER>_DATABASE_URL`` names the database of each owner (a service, or
#: ``accounts``); unset, it is ``<KGI_DATA_DIR>/<owner>.db`` (SQLite).
DATABASE_URL_VARIABLE = re.compile(r"KGI_([A-Z0-9]+)_DATABASE_URL")

#: The members' map's tiles: OpenStreetMap's own server, whose usage policy allows a
#: site's occasional visitors (a busier site sets its own provider), and the
#: attribution the OpenStreetMap licence (ODbL) asks for (HTML: the operator's setting,
#: shown by Leaflet as it is).
DEFAULT_MAP_TILES_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
DEFAULT_MAP_ATTRIBUTION = (
    '© <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
)

#: Default lifetime of a confirmation link and of an unconfirmed sign-up (72 hours):
#: long enough for a weekend, short enough that stale sign-ups do not pile up.
DEFAULT_PENDING_TTL_SECONDS = 72 * 3600

#: Default days an event's registrations are kept after it ended: time enough for
#: certificates and the organisers' statistics, then the names and addresses go.
DEFAULT_EVENT_RETENTION_DAYS = 30

#: Default sign-up limit per client IP address and hour; stops the form being
#: used to mail-bomb third parties from one address.
DEFAULT_SIGNUPS_PER_IP_PER_HOUR = 20

#: Minimum gap between two confirmation mails to the same address (10 minutes).
DEFAULT_CONFIRMATION_RESEND_SECONDS = 600

#: Port of the development mail catcher that ``kgi run`` starts when KGI_SMTP_URL is unset.
DEFAULT_MAIL_CATCHER_PORT = 8025

#: Failed logins per client IP and account within 15 minutes before login is refused.
DEFAULT_LOGIN_FAILURES_ALLOWED = 5

#: Soft bounces (mailbox full, greylisting given up, ...) within the window that make an
#: address count as bounced: one full mailbox is no reason to stop, a month of them is.
DEFAULT_SOFT_BOUNCE_LIMIT = 3
DEFAULT_SOFT_BOUNCE_WINDOW_DAYS = 30

#: Port of ``kgi inbound``, the SMTP/LMTP receiver for bounces, complaints and mailto
#: unsubscribes (the development mail catcher has 8025).
DEFAULT_INBOUND_PORT = 8026

#: Shown in every mail footer until KGI_POSTAL_ADDRESS is set; production refuses to
#: start without the real one (German senders must name themselves, §5 DDG / §7 UWG).
POSTAL_ADDRESS_PLACEHOLDER = "Postal address not configured (KGI_POSTAL_ADDRESS)"


class ConfigurationError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """All settings of one process. Build it with :func:`load_settings`."""

    env: str
    base_url: str
    port: int
    data_dir: Path
    secret_key: str
    redis_url: str
    #: True when ``KGI_REDIS_URL`` was unset and ``kgi run`` owns a private redis-server.
    private_redis: bool
    smtp_url: str | None
    mail_catcher_port: int
    mail_from: str
    database_urls: dict[str, str] = field(default_factory=dict)
    pending_ttl_seconds: int = DEFAULT_PENDING_TTL_SECONDS
    event_retention_days: int = DEFAULT_EVENT_RETENTION_DAYS
    signups_per_ip_per_hour: int = DEFAULT_SIGNUPS_PER_IP_PER_HOUR
    confirmation_resend_seconds: int = DEFAULT_CONFIRMATION_RESEND_SECONDS
    login_failures_allowed: int = DEFAULT_LOGIN_FAILURES_ALLOWED
    #: Hosts, IPs or networks the aggregator may fetch although they are internal.
    fetch_allow_hosts: tuple[str, ...] = ()
    #: Where the newsletter service reaches the other services' HTTP endpoints.
    subscribers_url: str = ""
    feeds_url: str = ""
    #: Where the feeds service asks the events service for the series' dates.
    events_url: str = ""
    #: Issue dispatch: messages per second and per hour for all workers together (0: no
    #: limit), and how many senders (SMTP connections) work on one issue at once.
    newsletter_rate_per_second: int = 0
    newsletter_rate_per_hour: int = 0
    newsletter_senders: int = 4
    #: Worker processes ``kgi worker`` runs on this machine (it sets KGI_WORKER_PROCESSES
    #: for them): an issue's senders are spread over them (see
    #: :mod:`services.newsletter.process_share`).
    worker_processes: int = 1
    #: Seconds a dead sender's seat and claimed rows wait before other senders take them
    #: over (0: the built-in services.newsletter.seats.LEASE_SECONDS); tests shorten it.
    newsletter_lease_seconds: int = 0
    #: PostgreSQL connections each process keeps per database, and how many more it may
    #: open under load (SQLAlchemy's pool); see the README for max_connections.
    database_pool_size: int = 5
    database_max_overflow: int = 10
    #: A schedule missed by more than this (system down) waits for an editor's confirmation.
    schedule_grace_seconds: int = 900
    reply_to: str | None = None
    #: VERP: bounces go to ``local+<recipient>@domain`` of this address when set.
    bounce_address: str | None = None
    list_id: str = ""
    #: The organisation that sends, and its postal address: in every mail footer.
    organisation: str = "Kommune goes International"
    postal_address: str = POSTAL_ADDRESS_PLACEHOLDER
    #: Link to the site's imprint (Impressum) in mail footers; unset: not linked.
    imprint_url: str | None = None
    #: Bounce policy: this many soft bounces within the window count as a hard bounce.
    soft_bounce_limit: int = DEFAULT_SOFT_BOUNCE_LIMIT
    soft_bounce_window_days: int = DEFAULT_SOFT_BOUNCE_WINDOW_DAYS
    #: ``kgi inbound`` listens here (loopback by default: it sits behind the site's MTA).
    inbound_host: str = "127.0.0.1"
    inbound_port: int = DEFAULT_INBOUND_PORT
    #: A hosted mailbox that receives bounces (``imaps://user:pass@host/INBOX``), polled
    #: by ``kgi inbound``; unset: none.
    bounce_mailbox_url: str | None = None
    #: Relay webhooks: Mailgun's HTTP webhook signing key, SendGrid's event webhook
    #: verification key (PEM or base64 DER of the ECDSA public key). Unset: refused.
    mailgun_webhook_key: str | None = None
    sendgrid_webhook_key: str | None = None
    dkim_key_file: str | None = None
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    #: The one reverse proxy whose X-Forwarded-For / X-Forwarded-Proto are believed
    #: (an IP address); None: no proxy, the TCP peer is the client.
    trusted_proxy: str | None = None
    #: Where the front-end packages the site serves itself lie (the rich-text editor):
    #: ``node_modules`` of the project, filled by scripts/install-editor.sh.
    front_end_dir: Path = PROJECT_ROOT / "node_modules"
    #: The members' map: the tile server's URL template (``{z}/{x}/{y}``, Leaflet's
    #: ``{s}`` too) and the attribution its licence asks for, shown on the map.
    map_tiles_url: str = DEFAULT_MAP_TILES_URL
    map_attribution: str = DEFAULT_MAP_ATTRIBUTION

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def private_redis_dir(self) -> Path:
        """Data and socket of the private redis-server (only used when ``private_redis``)."""
        return self.data_dir / "redis"

    @property
    def mail_catcher_dir(self) -> Path:
        """Where the development mail catcher keeps the mails it captured."""
        return self.data_dir / "mail"

    @property
    def effective_smtp_url(self) -> str:
        """KGI_SMTP_URL, or the development mail catcher when it is unset."""
        return self.smtp_url or f"smtp://127.0.0.1:{self.mail_catcher_port}"

    def database_url(self, owner: str) -> str:
        """The database of ``owner`` (see DATABASE_URL_VARIABLE)."""
        return self.database_urls.get(owner) or f"sqlite:///{self.data_dir / (owner + '.db')}"

    def absolute_url(self, path: str) -> str:
        """``path`` (starting with ``/``) under the public base URL."""
        return self.base_url.rstrip("/") + path

    @property
    def mail_domain(self) -> str:
        """Domain for Message-IDs: the sender's, so they are globally unique."""
        return _mail_domain(self.mail_from)


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {raw!r}") from None


def _secret_key(env: str, data_dir: Path) -> str:
    key = os.environ.get("KGI_SECRET_KEY", "")
    if key:
        return key
    if env == "production":
        raise ConfigurationError("KGI_SECRET_KEY must be set in production")
    # Development: generate once and keep it, so sessions and mailed links survive restarts.
    key_file = data_dir / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def _trusted_proxy() -> str | None:
    raw = os.environ.get("KGI_TRUSTED_PROXY", "").strip()
    if not raw:
        return None
    try:
        # One address, not a list or a network: every address trusted here can make up
        # client IPs for rate limits and the consent log.
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise ConfigurationError(
            f"KGI_TRUSTED_PROXY must be the IP address of the one reverse proxy, not {raw!r}"
        ) from None


def _postal_address(env: str) -> str:
    raw = " ".join(os.environ.get("KGI_POSTAL_ADDRESS", "").split())
    if raw:
        return raw
    if env == "production":
        raise ConfigurationError(
            "KGI_POSTAL_ADDRESS must be set in production: every mail names its sender's address"
        )
    return POSTAL_ADDRESS_PLACEHOLDER


def _mail_domain(mail_from: str) -> str:
    return mail_from.rpartition("@")[2].strip(">").strip() or "localhost"


def _map_tiles_url() -> str:
    url = os.environ.get("KGI_MAP_TILES_URL", "").strip() or DEFAULT_MAP_TILES_URL
    if urlsplit(url).scheme not in ("http", "https") or "{z}" not in url:
        raise ConfigurationError(
            f"KGI_MAP_TILES_URL must be an http(s) URL template with {{z}}/{{x}}/{{y}}, not {url!r}"
        )
    return url


def load_settings() -> Settings:
    """Read every ``KGI_*`` variable; see the README for the list and defaults."""
    env = os.environ.get("KGI_ENV", "development")
    port = _int("KGI_PORT", 8000)
    data_dir = Path(os.environ.get("KGI_DATA_DIR", "./var")).resolve()
    base_url = os.environ.get("KGI_BASE_URL", f"http://localhost:{port}").rstrip("/")
    if urlsplit(base_url).scheme not in ("http", "https"):
        raise ConfigurationError(f"KGI_BASE_URL must be an http(s) URL, not {base_url!r}")
    redis_url = os.environ.get("KGI_REDIS_URL", "")
    private_redis = not redis_url
    if private_redis:
        redis_url = f"unix://{data_dir / 'redis' / 'redis.sock'}"
    database_urls = {
        match[1].lower(): value
        for name, value in os.environ.items()
        if value and (match := DATABASE_URL_VARIABLE.fullmatch(name))
    }
    mail_from = os.environ.get("KGI_MAIL_FROM", "KGI-Infobrief <infobrief@localhost>")
    return Settings(
        env=env,
        base_url=base_url,
        port=port,
        data_dir=data_dir,
        secret_key=_secret_key(env, data_dir),
        redis_url=redis_url,
        private_redis=private_redis,
        smtp_url=os.environ.get("KGI_SMTP_URL") or None,
        mail_catcher_port=_int("KGI_MAIL_CATCHER_PORT", DEFAULT_MAIL_CATCHER_PORT),
        mail_from=mail_from,
        database_urls=database_urls,
        pending_ttl_seconds=_int("KGI_PENDING_TTL_SECONDS", DEFAULT_PENDING_TTL_SECONDS),
        event_retention_days=_int("KGI_EVENT_RETENTION_DAYS", DEFAULT_EVENT_RETENTION_DAYS),
        signups_per_ip_per_hour=_int(
            "KGI_SIGNUPS_PER_IP_PER_HOUR", DEFAULT_SIGNUPS_PER_IP_PER_HOUR
        ),
        confirmation_resend_seconds=_int(
            "KGI_CONFIRMATION_RESEND_SECONDS", DEFAULT_CONFIRMATION_RESEND_SECONDS
        ),
        login_failures_allowed=_int("KGI_LOGIN_FAILURES_ALLOWED", DEFAULT_LOGIN_FAILURES_ALLOWED),
        subscribers_url=os.environ.get("KGI_SUBSCRIBERS_URL", base_url).rstrip("/"),
        feeds_url=os.environ.get("KGI_FEEDS_URL", base_url).rstrip("/"),
        events_url=os.environ.get("KGI_EVENTS_URL", base_url).rstrip("/"),
        newsletter_rate_per_second=_int("KGI_NEWSLETTER_RATE_PER_SECOND", 0),
        newsletter_rate_per_hour=_int("KGI_NEWSLETTER_RATE_PER_HOUR", 0),
        newsletter_senders=max(1, _int("KGI_NEWSLETTER_SENDERS", 4)),
        worker_processes=max(1, _int("KGI_WORKER_PROCESSES", 1)),
        newsletter_lease_seconds=_int("KGI_NEWSLETTER_LEASE_SECONDS", 0),
        database_pool_size=max(1, _int("KGI_DATABASE_POOL_SIZE", 5)),
        database_max_overflow=max(0, _int("KGI_DATABASE_MAX_OVERFLOW", 10)),
        schedule_grace_seconds=_int("KGI_SCHEDULE_GRACE_SECONDS", 900),
        reply_to=os.environ.get("KGI_REPLY_TO") or None,
        bounce_address=os.environ.get("KGI_BOUNCE_ADDRESS") or None,
        # RFC 2919: the identifier lives in a domain the sender controls: the From domain,
        # not the web host (which may be an IP address).
        list_id=os.environ.get("KGI_LIST_ID")
        or f"KGI-Infobrief <infobrief.{_mail_domain(mail_from)}>",
        organisation=os.environ.get("KGI_ORGANISATION", "").strip() or "Kommune goes International",
        postal_address=_postal_address(env),
        imprint_url=os.environ.get("KGI_IMPRINT_URL") or None,
        soft_bounce_limit=max(1, _int("KGI_SOFT_BOUNCE_LIMIT", DEFAULT_SOFT_BOUNCE_LIMIT)),
        soft_bounce_window_days=max(
            1, _int("KGI_SOFT_BOUNCE_WINDOW_DAYS", DEFAULT_SOFT_BOUNCE_WINDOW_DAYS)
        ),
        inbound_host=os.environ.get("KGI_INBOUND_HOST", "127.0.0.1"),
        inbound_port=_int("KGI_INBOUND_PORT", DEFAULT_INBOUND_PORT),
        bounce_mailbox_url=os.environ.get("KGI_BOUNCE_MAILBOX_URL") or None,
        mailgun_webhook_key=os.environ.get("KGI_MAILGUN_WEBHOOK_KEY") or None,
        sendgrid_webhook_key=os.environ.get("KGI_SENDGRID_WEBHOOK_KEY") or None,
        dkim_key_file=os.environ.get("KGI_DKIM_KEY_FILE") or None,
        dkim_selector=os.environ.get("KGI_DKIM_SELECTOR") or None,
        dkim_domain=os.environ.get("KGI_DKIM_DOMAIN") or None,
        trusted_proxy=_trusted_proxy(),
        map_tiles_url=_map_tiles_url(),
        map_attribution=os.environ.get("KGI_MAP_ATTRIBUTION", "").strip()
        or DEFAULT_MAP_ATTRIBUTION,
        front_end_dir=Path(
            os.environ.get("KGI_FRONT_END_DIR", PROJECT_ROOT / "node_modules")
        ).resolve(),
        fetch_allow_hosts=tuple(
            h.strip() for h in os.environ.get("KGI_FETCH_ALLOW_HOSTS", "").split(",") if h.strip()
        ),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return load_settings()
