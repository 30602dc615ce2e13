"""Bounded caches for prepared audio: decoded clips in memory, files on disk.

Both are plain, synchronous and bounded, with the bounds named by their
callers (:class:`~media.config.MediaConfig`).  Disk work is blocking; callers
run it through their ``run_blocking`` (a thread pool in production).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ("ClipMemo", "DiskCache", "cache_key")

Int16Array = npt.NDArray[np.int16]


def cache_key(*parts: str) -> str:
    """A file-name-safe key for a tuple of strings (SHA-256, hex)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


class ClipMemo:
    """An LRU of decoded 8 kHz clips, bounded by entries and by bytes.

    :param max_entries: most clips kept.
    :param max_bytes: most sample bytes kept (2 bytes per sample).
    """

    def __init__(self, *, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Int16Array] = OrderedDict()
        self._bytes = 0

    def get(self, key: str) -> Int16Array | None:
        """The clip, marked as recently used, or ``None``."""
        clip = self._items.get(key)
        if clip is not None:
            self._items.move_to_end(key)
        return clip

    def put(self, key: str, clip: Int16Array) -> None:
        """Keep a clip (read-only), evicting the least recently used beyond the bounds."""
        if clip.nbytes > self.max_bytes:
            return
        clip.setflags(write=False)
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes
        self._items[key] = clip
        self._bytes += clip.nbytes
        while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
            _, evicted = self._items.popitem(last=False)
            self._bytes -= evicted.nbytes

    def __len__(self) -> int:
        return len(self._items)


class DiskCache:
    """Files plus a JSON metadata record per key, bounded in total bytes.

    Eviction removes the least recently *used* entries (by the data file's
    modification time, which :meth:`touch` refreshes) until the total is
    under ``max_bytes``.

    :param directory: the cache directory (created on first write).
    :param max_bytes: the most bytes of data files kept.
    :param suffix: the data files' suffix.
    """

    def __init__(self, directory: Path, *, max_bytes: int, suffix: str = ".bin") -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.suffix = suffix

    def data_path(self, key: str) -> Path:
        """Where the data of ``key`` lives."""
        return self.directory / f"{key}{self.suffix}"

    def meta(self, key: str) -> dict[str, Any] | None:
        """The metadata of ``key`` if both its files exist."""
        meta_path = self.directory / f"{key}.json"
        if not self.data_path(key).exists():
            return None
        try:
            value = json.loads(meta_path.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def read(self, key: str) -> bytes:
        """The data of ``key`` (raises ``OSError`` if gone)."""
        path = self.data_path(key)
        data = path.read_bytes()
        self.touch(key)
        return data

    def touch(self, key: str) -> None:
        """Mark ``key`` as just used."""
        with contextlib.suppress(OSError):
            os.utime(self.data_path(key))

    def write(self, key: str, data: bytes, meta: dict[str, Any]) -> None:
        """Store ``data`` and ``meta`` atomically, then evict beyond the bound.

        Writers of the same key may run at once (threads of the pool, e.g. two calls
        speaking the same text): each writes its own temporary file and the last
        rename wins.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.data_path(key)
        unique = f".{secrets.token_hex(6)}.tmp"
        tmp = path.with_name(path.name + unique)
        meta_path = self.directory / f"{key}.json"
        meta_tmp = meta_path.with_name(meta_path.name + unique)
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
            meta_tmp.write_text(json.dumps(meta), "utf-8")
            os.replace(meta_tmp, meta_path)
        finally:
            tmp.unlink(missing_ok=True)
            meta_tmp.unlink(missing_ok=True)
        self.evict()

    def remove(self, key: str) -> None:
        """Forget ``key``."""
        for path in (self.data_path(key), self.directory / f"{key}.json"):
            path.unlink(missing_ok=True)

    def evict(self) -> None:
        """Remove least recently used entries until the total is within ``max_bytes``."""
        entries = []
        for path in self.directory.glob(f"*{self.suffix}"):
            with contextlib.suppress(OSError):
                st = path.stat()
                entries.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            self.remove(path.name[: -len(self.suffix)])
            total -= size
