"""Where segments, playlists and thumbnails live: a local directory, or S3 (media/s3.py).

Keys are relative, `/`-separated paths such as `live/<stream_id>/720p/seg_12.m4s`. Writes are
atomic: a reader sees the old object or the new one, never a half-written file, which is what
lets players fetch playlists while the packager rewrites them.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from pathlib import Path
from typing import Protocol

_KEY_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
MAX_KEY_LENGTH = 512


class MediaStoreError(Exception):
    """A media store operation failed."""


class InvalidMediaKey(MediaStoreError, ValueError):
    """The key is not a safe relative path (empty, absolute, `..`, odd characters)."""


class MediaNotFound(MediaStoreError, LookupError):
    """No object is stored under the key."""


def validate_key(key: str) -> str:
    """Return the key if every part is a plain name; refuse anything that could escape."""
    parts = key.split("/")
    if not key or len(key) > MAX_KEY_LENGTH or not all(_KEY_PART.fullmatch(p) for p in parts):
        raise InvalidMediaKey(f"invalid media key {key!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """Return the prefix if it is empty or a valid key, optionally ending with `/`."""
    if prefix:
        validate_key(prefix.removesuffix("/"))
    return prefix


class MediaStore(Protocol):
    """The operations the packager and the HTTP layer need from a media store."""

    async def open(self) -> None:
        """Connect (the app's lifespan calls it before any other operation)."""
        ...

    async def close(self) -> None:
        """Let go of connections (the lifespan calls it last)."""
        ...

    async def write(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing any previous object atomically."""
        ...

    async def playback_url(self, key: str) -> str | None:
        """Where a player may fetch the object itself (a bucket or CDN), None to be served."""
        ...

    async def read(self, key: str) -> bytes:
        """Return the whole object; raise `MediaNotFound` if absent."""
        ...

    async def read_range(self, key: str, start: int, end: int | None = None) -> bytes:
        """Return bytes [start, end) of the object (to its end when `end` is None)."""
        ...

    async def size(self, key: str) -> int:
        """Return the object's size in bytes; raise `MediaNotFound` if absent."""
        ...

    async def exists(self, key: str) -> bool:
        """Tell whether an object is stored under `key`."""
        ...

    async def list_keys(self, prefix: str = "") -> list[str]:
        """Return the sorted keys that start with `prefix`."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object if present."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with `prefix`; return how many."""
        ...


class LocalMediaStore:
    """A media store over a local directory; blocking file work runs in a thread."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    async def open(self) -> None:
        """Nothing to connect: a directory."""

    async def close(self) -> None:
        """Nothing to let go of."""

    async def playback_url(self, key: str) -> str | None:
        """Always served by the app."""
        return None

    def path_for(self, key: str) -> Path:
        """Return the file that holds `key` (validated, always inside the root)."""
        path = self.root.joinpath(*validate_key(key).split("/"))
        if not path.is_relative_to(self.root):  # defence in depth: validate_key forbids it
            raise InvalidMediaKey(f"invalid media key {key!r}")
        return path

    async def write(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing any previous object atomically."""
        await asyncio.to_thread(self._write, self.path_for(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A dot-name temp file in the same directory: os.replace is atomic only within one
        # filesystem, and listing skips dot-names (no key may start with a dot).
        temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            temp.write_bytes(data)
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    async def read(self, key: str) -> bytes:
        """Return the whole object; raise `MediaNotFound` if absent."""
        return await self.read_range(key, 0)

    async def read_range(self, key: str, start: int, end: int | None = None) -> bytes:
        """Return bytes [start, end) of the object (to its end when `end` is None)."""
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"invalid range {start}-{end}")
        return await asyncio.to_thread(self._read, self.path_for(key), key, start, end)

    @staticmethod
    def _read(path: Path, key: str, start: int, end: int | None) -> bytes:
        try:
            with path.open("rb") as file:
                file.seek(start)
                return file.read() if end is None else file.read(end - start)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise MediaNotFound(key) from exc

    async def size(self, key: str) -> int:
        """Return the object's size in bytes; raise `MediaNotFound` if absent."""
        path = self.path_for(key)
        try:
            stat = await asyncio.to_thread(path.stat)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise MediaNotFound(key) from exc
        if not path.is_file():
            raise MediaNotFound(key)
        return stat.st_size

    async def exists(self, key: str) -> bool:
        """Tell whether an object is stored under `key`."""
        return await asyncio.to_thread(self.path_for(key).is_file)

    async def list_keys(self, prefix: str = "") -> list[str]:
        """Return the sorted keys that start with `prefix`."""
        return await asyncio.to_thread(self._list, validate_prefix(prefix))

    def _list(self, prefix: str) -> list[str]:
        # Walk only the deepest directory the prefix names, then filter by the string prefix
        # (the S3 meaning of a prefix: "seg_1" matches "seg_1.m4s" and "seg_10.m4s").
        directory = self.root.joinpath(*prefix.split("/")[:-1])
        if not directory.is_dir():
            return []
        keys = []
        for dirpath, dirnames, filenames in os.walk(directory):
            dirnames[:] = [name for name in dirnames if not name.startswith(".")]
            base = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith("."):
                    continue
                key = name if base == "." else f"{base}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    async def delete(self, key: str) -> None:
        """Remove the object if present."""
        await asyncio.to_thread(self.path_for(key).unlink, missing_ok=True)

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with `prefix`; return how many."""
        keys = await self.list_keys(prefix)
        await asyncio.to_thread(self._delete_all, keys)
        return len(keys)

    def _delete_all(self, keys: list[str]) -> None:
        directories = set()
        for key in keys:
            path = self.path_for(key)
            path.unlink(missing_ok=True)
            directories.add(path.parent)
        # Remove directories left empty, deepest first, never the root itself.
        for directory in sorted(directories, key=lambda path: len(path.parts), reverse=True):
            current = directory
            while current != self.root and current.is_relative_to(self.root):
                try:
                    current.rmdir()
                except OSError:
                    break
                current = current.parent
