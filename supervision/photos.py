"""Rectification and report photos on disk under `[supervision] photo_dir`, named by their content hash.

Only JPEG, PNG and WebP are kept, recognised by their first bytes (a name or a
content type is the sender's word); a file over `max_photo_bytes` is refused before
anything is written.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

NAME_RE = re.compile(r"^[0-9a-f]{32}\.(jpg|png|webp)$")


class PhotoError(ValueError):
    """The file is not a photo we keep; the message says why (413 for size, 422 otherwise)."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def image_type(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


class PhotoStore:
    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes

    def check(self, data: bytes) -> str:
        """The file's type, or PhotoError."""
        if len(data) > self.max_bytes:
            raise PhotoError(
                f"photo is {len(data) / 1048576:.1f} MiB; the limit is {self.max_bytes / 1048576:.1f} MiB",
                too_large=True,
            )
        kind = image_type(data[:16])
        if kind is None:
            raise PhotoError("only JPEG, PNG or WebP photos are accepted")
        return kind

    def save(self, data: bytes) -> str:
        kind = self.check(data)
        name = f"{hashlib.sha256(data).hexdigest()[:32]}.{kind}"
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        if not path.exists():
            tmp = path.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(path)
        return name

    def path(self, name: str) -> Path | None:
        if not NAME_RE.match(name):
            return None
        p = self.folder / name
        return p if p.exists() else None
