"""The members service's table: the network's member municipalities, and the queries
on it. A municipality is one per name and federal state (there are several Neustadts)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.members.fields import MAX_CONTACT, MAX_NAME, MAX_WEBSITE, MemberFields
from shared.database import UTCDateTime, engine, read_connection, utcnow
from shared.errors import NotFound

metadata = sa.MetaData()

members = sa.Table(
    "members",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(MAX_NAME), nullable=False),
    sa.Column("federal_state", sa.String(2), nullable=False),
    sa.Column("latitude", sa.Float, nullable=False),
    sa.Column("longitude", sa.Float, nullable=False),
    sa.Column("contact", sa.String(MAX_CONTACT)),
    sa.Column("email", sa.String(320)),
    sa.Column("website", sa.String(MAX_WEBSITE)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("name", "federal_state", name="uq_members_name_state"),
)


class NoSuchMember(NotFound):
    """No member has this id."""

    def __init__(self) -> None:
        super().__init__("There is no such member.")


class DuplicateMember(ValueError):
    """Another member has this name in this federal state."""

    def __init__(self) -> None:
        super().__init__("A member of this name in this federal state exists already.")


@dataclass(frozen=True)
class Member(MemberFields):
    """A stored member municipality."""

    id: int = 0
    updated_at: datetime | None = None

    @property
    def fields(self) -> MemberFields:
        """What an editor can change."""
        return MemberFields(**{name: getattr(self, name) for name in MEMBER_FIELDS})


#: The fields of :class:`MemberFields`, in their order.
MEMBER_FIELDS = tuple(MemberFields.__dataclass_fields__)

_COLUMNS = [members.c[name] for name in (*MEMBER_FIELDS, "id", "updated_at")]


def _member(row: Any) -> Member:
    return Member(**row._mapping)


def all_members(state: str | None = None) -> list[Member]:
    """Every member (of ``state`` when given), by federal state and name."""
    query = sa.select(*_COLUMNS).order_by(members.c.federal_state, members.c.name, members.c.id)
    if state is not None:
        query = query.where(members.c.federal_state == state)
    with read_connection("members") as conn:
        return [_member(row) for row in conn.execute(query)]


def get_member(member_id: int) -> Member:
    """The member ``member_id``; NoSuchMember (404) otherwise."""
    with read_connection("members") as conn:
        row = conn.execute(sa.select(*_COLUMNS).where(members.c.id == member_id)).first()
    if row is None:
        raise NoSuchMember()
    return _member(row)


def find(conn: Connection, name: str, state: str) -> Member | None:
    """The member called ``name`` in ``state``, if there is one."""
    row = conn.execute(
        sa.select(*_COLUMNS).where(members.c.name == name, members.c.federal_state == state)
    ).first()
    return _member(row) if row is not None else None


def insert(conn: Connection, fields: MemberFields) -> int:
    """Store a new member (the caller checked that none has its name and state)."""
    now = utcnow()
    result = conn.execute(members.insert().values(**asdict(fields), created_at=now, updated_at=now))
    return int(result.inserted_primary_key[0])


def update(conn: Connection, member_id: int, fields: MemberFields) -> None:
    """Change member ``member_id`` to ``fields``."""
    result = conn.execute(
        members.update()
        .where(members.c.id == member_id)
        .values(**asdict(fields), updated_at=utcnow())
    )
    if result.rowcount == 0:
        raise NoSuchMember()


def save(fields: MemberFields, member_id: int | None = None) -> int:
    """Add a member (``member_id`` None) or change one; DuplicateMember when another
    member has the same name and federal state. Returns the member's id."""
    with engine("members").begin() as conn:
        other = find(conn, fields.name, fields.federal_state)
        if other is not None and other.id != member_id:
            raise DuplicateMember()
        if member_id is None:
            return insert(conn, fields)
        update(conn, member_id, fields)
        return member_id


def delete(member_id: int) -> None:
    """Remove member ``member_id``."""
    with engine("members").begin() as conn:
        if conn.execute(members.delete().where(members.c.id == member_id)).rowcount == 0:
            raise NoSuchMember()


def counts() -> tuple[int, int]:
    """How many members there are, and in how many federal states."""
    with read_connection("members") as conn:
        row = conn.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(members.c.federal_state)))
        ).one()
    return int(row[0]), int(row[1])
