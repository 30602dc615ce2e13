"""The disk cache under concurrent writers of one key.

Found by the calls interop test (issue 6): two calls answered at once by
``<Speak>`` with the same text synthesise it twice, and both writers (threads of
the pool) used the same temporary file: the second ``os.replace`` found it gone,
the executor failed and the call ended with "Internal Error".
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

import media.cache
from media.cache import DiskCache


def test_a_second_writer_of_the_same_key_between_write_and_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = DiskCache(tmp_path / "tts", max_bytes=1 << 20, suffix=".wav")
    real_replace = os.replace
    interleaved = []

    def replace(src: Any, dst: Any) -> None:
        # The first writer has written its temporary file; another one runs
        # through the whole write before the first renames its file.
        if not interleaved:
            interleaved.append(True)
            cache.write("k", b"second", {"n": 2})
        real_replace(src, dst)

    monkeypatch.setattr(media.cache.os, "replace", replace)
    cache.write("k", b"first", {"n": 1})
    assert interleaved
    assert cache.read("k") in (b"first", b"second")
    assert cache.meta("k") in ({"n": 1}, {"n": 2})
    assert sorted(p.name for p in cache.directory.iterdir()) == ["k.json", "k.wav"]


def test_threads_writing_one_key(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "tts", max_bytes=1 << 20, suffix=".wav")
    errors: list[Exception] = []

    def writer(n: int) -> None:
        try:
            for _ in range(50):
                cache.write("k", bytes([n]) * 1000, {"n": n})
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(set(cache.read("k"))) == 1
    assert sorted(p.name for p in cache.directory.iterdir()) == ["k.json", "k.wav"]
