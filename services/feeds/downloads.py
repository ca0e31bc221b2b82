"""Downloads attached to items, as Plone's File type: PDF factsheets and good-practice
reports.

A file is checked by its signature (the name and the type the browser sends are not
trusted), stored under the data directory by the hash of its content, and served with
the type its signature proved and a ``Content-Disposition`` that no file name can break
out of (RFC 6266: an ASCII fallback and the UTF-8 name, percent-encoded). What the public
sees changes with a file, so attaching and removing one moves the content version: the
item page and the feeds (as enclosures) show it at once.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.feeds import store
from services.feeds.media import store_by_hash
from services.feeds.store import PUBLISHED, Item, item_files
from shared.config import get_settings
from shared.database import engine, read_connection, utcnow
from shared.errors import Forbidden, Invalid, NotFound
from shared.sanitize import writable

#: Largest file accepted (20 MiB: a report with pictures).
MAX_FILE_BYTES = 20 * 1024 * 1024

#: Most files one item carries.
MAX_FILES_PER_ITEM = 10

#: Accepted formats, by the signature a file starts with: its extension and media type.
FORMATS = ((b"%PDF-", "pdf", "application/pdf"),)

#: A stored file's name: the content hash and the extension of its checked format.
STORED_NAME = re.compile(r"^[0-9a-f]{32}\.pdf$")

#: Longest name kept of an uploaded file.
MAX_NAME_LENGTH = 200


class InvalidFile(Invalid, ValueError):
    """The upload is not a file we attach; the message says why."""


@dataclass(frozen=True)
class ItemFile:
    """A file attached to an item, as the item page and the feeds list it."""

    id: int
    item_id: int
    name: str
    stored_name: str
    media_type: str
    size: int
    created_at: datetime


def files_on(conn: Connection, item_ids: list[int]) -> dict[int, list[ItemFile]]:
    """The files of each of ``item_ids``, in the order they were attached."""
    found: dict[int, list[ItemFile]] = {item_id: [] for item_id in item_ids}
    if not item_ids:
        return found
    rows = conn.execute(
        sa.select(item_files)
        .where(item_files.c.item_id.in_(item_ids))
        .order_by(item_files.c.item_id, item_files.c.id)
    )
    for row in rows:
        found[row.item_id].append(ItemFile(**row._mapping))
    return found


def files_dir() -> Path:
    """The directory attached files are stored in."""
    return get_settings().data_dir / "files"


def file_format(data: bytes) -> tuple[str, str] | None:
    """(extension, media type) of the format ``data`` starts with, or None."""
    for signature, extension, media_type in FORMATS:
        if data.startswith(signature):
            return extension, media_type
    return None


def clean_name(raw: str, extension: str) -> str:
    """The name a download is offered under: the uploaded name without folders or
    unwritable characters, at most :data:`MAX_NAME_LENGTH` long, with the extension of
    its checked format."""
    name = unicodedata.normalize("NFC", writable(raw)).replace("\\", "/").rsplit("/", 1)[-1]
    name = " ".join(name.split()).strip(" .")
    stem = name[: -len(extension) - 1] if name.lower().endswith(f".{extension}") else name
    return f"{stem[: MAX_NAME_LENGTH - len(extension) - 1] or 'download'}.{extension}"


def may_change(item: Item, role: str) -> bool:
    """Whether ``role`` attaches and removes files of ``item`` directly: as for its text,
    an editor's change of a published item would need review, so only admins do that."""
    return role == "admin" or item.state != PUBLISHED


def attach(item: Item, role: str, filename: str, data: bytes) -> ItemFile:
    """Attach ``data`` to ``item``; raises InvalidFile or Forbidden."""
    if not may_change(item, role):
        raise Forbidden("Only an administrator attaches files to a published item.")
    if len(data) > MAX_FILE_BYTES:
        raise InvalidFile(f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB.", "file")
    checked = file_format(data)
    if checked is None:
        raise InvalidFile("Please attach a PDF file.", "file")
    extension, media_type = checked
    now = utcnow()
    with engine("feeds").begin() as conn:
        count = conn.execute(
            sa.select(sa.func.count()).where(item_files.c.item_id == item.id)
        ).scalar_one()
        if count >= MAX_FILES_PER_ITEM:
            raise InvalidFile(f"An item carries at most {MAX_FILES_PER_ITEM} files.", "file")
        # Stored only once it is known to be taken: a refused file leaves nothing behind.
        stored_name = store_by_hash(files_dir(), data, extension)
        values = {
            "item_id": item.id,
            "name": clean_name(filename, extension),
            "stored_name": stored_name,
            "media_type": media_type,
            "size": len(data),
            "created_at": now,
        }
        file_id = conn.execute(item_files.insert(), values).inserted_primary_key[0]
        store.mark_content_changed(conn, now)
    return ItemFile(id=file_id, **values)


def remove(item: Item, role: str, file_id: int) -> None:
    """Take a file off ``item``; raises NotFound or Forbidden. The stored content goes
    too unless another item carries the same file."""
    if not may_change(item, role):
        raise Forbidden("Only an administrator removes files of a published item.")
    with engine("feeds").begin() as conn:
        row = conn.execute(
            sa.select(item_files).where(item_files.c.id == file_id, item_files.c.item_id == item.id)
        ).first()
        if row is None:
            raise NotFound("There is no such file.")
        conn.execute(item_files.delete().where(item_files.c.id == file_id))
        still_used = conn.execute(
            sa.select(item_files.c.id).where(item_files.c.stored_name == row.stored_name)
        ).first()
        store.mark_content_changed(conn, utcnow())
    if still_used is None:
        (files_dir() / row.stored_name).unlink(missing_ok=True)


def files_of(item_ids: list[int]) -> dict[int, list[ItemFile]]:
    """The files of each item, in the order they were attached."""
    with read_connection("feeds") as conn:
        return files_on(conn, item_ids)


def get_file(file_id: int) -> tuple[ItemFile, Item]:
    """A file with the item it belongs to; raises NotFound."""
    with read_connection("feeds") as conn:
        row = conn.execute(sa.select(item_files).where(item_files.c.id == file_id)).first()
        item = store.get_item(conn, row.item_id) if row is not None else None
    if row is None or item is None:
        raise NotFound("There is no such file.")
    return ItemFile(**row._mapping), item


def stored_path(file: ItemFile) -> Path:
    """Where the file's content lies (its stored name is checked: no path tricks)."""
    if not STORED_NAME.match(file.stored_name):
        raise NotFound("There is no such file.")
    path = files_dir() / file.stored_name
    if not path.exists():
        raise NotFound("There is no such file.")
    return path


def content_disposition(name: str) -> str:
    """``attachment`` with ``name`` twice (RFC 6266): quoted ASCII for old clients, with
    every character that could end or bend the header replaced, and the exact name as
    UTF-8 ``filename*``."""
    fallback = "".join(
        ch if " " <= ch <= "~" and ch not in '"\\%;' else "_"
        for ch in unicodedata.normalize("NFKD", name)
        if not unicodedata.combining(ch)
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def size_label(size: int, language: str) -> str:
    """A file size as people read it: ``340 KB``, ``1.2 MB`` (``1,2 MB`` in German)."""
    if size < 1000 * 1000:
        label = f"{max(1, round(size / 1000))} KB"
    else:
        label = f"{size / 1000 / 1000:.1f} MB"
    return label.replace(".", ",") if language == "de" else label
