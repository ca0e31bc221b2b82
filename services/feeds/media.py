"""Uploaded images (lead images, and images in item bodies): checked by content, stored
under the data directory by hash."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from shared.config import get_settings
from shared.errors import Invalid
from shared.web.paths import path_for

#: Largest image accepted (5 MiB).
MAX_IMAGE_BYTES = 5 * 1024 * 1024

#: File signatures of the accepted formats: the upload's name and type are not trusted.
SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)

#: Media types per stored extension: sent explicitly, never guessed from the file.
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}

#: A stored file's name: the content hash and the extension of its checked type.
MEDIA_NAME = re.compile(r"^[0-9a-f]{32}\.(png|jpg|gif|webp)$")


class InvalidImage(Invalid, ValueError):
    """The upload is not an image we accept; the message says why."""


def media_dir() -> Path:
    """The directory uploaded images are stored in."""
    return get_settings().data_dir / "media"


def image_type(data: bytes) -> str | None:
    """The extension of the image format ``data`` starts with, or None."""
    for signature, extension in SIGNATURES:
        if data.startswith(signature):
            return extension
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def save_image(data: bytes) -> str:
    """Store the image; returns its public path (:func:`media_url` of ``<hash>.<ext>``)."""
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidImage("The image is larger than 5 MB.")
    extension = image_type(data)
    if extension is None:
        raise InvalidImage("Please upload a PNG, JPEG, GIF or WebP image.")
    return media_url(store_by_hash(media_dir(), data, extension))


def store_by_hash(directory: Path, data: bytes, extension: str) -> str:
    """Store ``data`` in ``directory`` under the hash of its content (the same content
    is stored once) and return the file's name. Written whole or not at all: another
    reader never sees half a file."""
    name = f"{hashlib.sha256(data).hexdigest()[:32]}.{extension}"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if not path.exists():
        temporary = directory / f".{name}.tmp"
        temporary.write_bytes(data)
        temporary.rename(path)
    return name


def media_url(name: str) -> str:
    """The public path of the stored file ``name`` (the ``feeds:media`` route)."""
    return path_for("feeds:media", name=name)


def media_path(name: str) -> Path | None:
    """The stored file for ``name``, or None (names are checked, so no path tricks)."""
    if not MEDIA_NAME.match(name):
        return None
    path = media_dir() / name
    return path if path.exists() else None


def is_media_url(url: str) -> bool:
    """True for the public path of a stored image (no other path, no ``..``): lead images
    may point only there or to http(s) URLs."""
    name = url.rpartition("/")[2]
    return MEDIA_NAME.match(name) is not None and url == media_url(name)


def media_type(name: str) -> str:
    """The media type of a stored file named ``name`` (checked by :data:`MEDIA_NAME`)."""
    return MEDIA_TYPES[name.rsplit(".", 1)[1]]


#: Most uploaded images the editor's image list offers (the newest).
IMAGE_LIST_LENGTH = 200


def uploaded_images(limit: int = IMAGE_LIST_LENGTH) -> list[str]:
    """Names of the stored images, the newest first (for the editor's image list)."""
    directory = media_dir()
    if not directory.is_dir():
        return []
    files = [path for path in directory.iterdir() if MEDIA_NAME.match(path.name)]
    files.sort(key=lambda path: path.stat().st_mtime, reverse=True)
    return [path.name for path in files[:limit]]
