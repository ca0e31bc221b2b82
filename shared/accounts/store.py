"""The accounts table and its queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from shared.database import UTCDateTime, engine, read_connection, utcnow

#: Roles, weakest first: editors write and submit content, admins also publish and send.
ROLES = ("editor", "admin")

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_login_at", UTCDateTime),
)

#: Live login sessions (see shared.accounts.login): one row per logged-in browser.
sessions = sa.Table(
    "sessions",
    metadata,
    # SHA-256 of the token: a leaked database dump gives nobody a usable session.
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column(
        "user_id",
        sa.Integer,
        sa.ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True)
class User:
    id: int
    email: str
    password_hash: str
    role: str
    created_at: datetime
    last_login_at: datetime | None


def find_user(email: str) -> User | None:
    """The account with this address (case-insensitive), if any."""
    if "\x00" in email:
        return None  # no address holds NUL, and PostgreSQL text cannot even be asked for one
    with read_connection("accounts") as conn:
        row = conn.execute(
            sa.select(users).where(sa.func.lower(users.c.email) == email.strip().lower())
        ).first()
    return User(**row._mapping) if row else None


def save_user(email: str, password_hash: str, role: str) -> User:
    """Create the account, or replace its password and role when it exists.

    Replacing them ends every session of the account: whoever logged in with the old
    password, or holds the old role, must log in again."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    existing = find_user(email)
    with engine("accounts").begin() as conn:
        if existing:
            conn.execute(
                users.update()
                .where(users.c.id == existing.id)
                .values(password_hash=password_hash, role=role)
            )
            conn.execute(sessions.delete().where(sessions.c.user_id == existing.id))
        else:
            conn.execute(
                users.insert().values(
                    email=email.strip().lower(),
                    password_hash=password_hash,
                    role=role,
                    created_at=utcnow(),
                )
            )
    user = find_user(email)
    assert user is not None
    return user


def record_login(user_id: int, password_hash: str | None = None) -> None:
    """Note a successful login; store a re-hashed password when parameters changed."""
    values: dict[str, object] = {"last_login_at": utcnow()}
    if password_hash:
        values["password_hash"] = password_hash
    with engine("accounts").begin() as conn:
        conn.execute(users.update().where(users.c.id == user_id).values(**values))


def remove_user(email: str) -> bool:
    """Delete the account and end its sessions; False when there was none."""
    existing = find_user(email)
    if existing is None:
        return False
    with engine("accounts").begin() as conn:
        conn.execute(sessions.delete().where(sessions.c.user_id == existing.id))
        conn.execute(users.delete().where(users.c.id == existing.id))
    return True
