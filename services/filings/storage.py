"""Where attachment bytes live: outside the database, behind a small interface (put, get), so an
object store can replace the filesystem without touching the filing code.

Invariant: a key names one content for ever: `put` writes to a temporary file in the same
directory and renames it into place, so a reader never sees half a file and a crash leaves only a
temporary file behind. Keys are made here (random, no caller text), so no path can escape the
root.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Protocol


class AttachmentStorage(Protocol):
    async def put(self, data: bytes) -> str:
        """Store `data`; the key to read it back."""

    async def get(self, key: str) -> bytes: ...


class FilesystemStorage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not key.isalnum():
            raise ValueError("not a storage key")
        return self.root / key[:2] / key

    async def put(self, data: bytes) -> str:
        key = secrets.token_hex(20)
        await asyncio.to_thread(self._write, self._path(key), data)
        return key

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".part")
        with open(temporary, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
