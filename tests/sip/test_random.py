"""The random pool: OS randomness in blocks, never the same bytes twice.

``os.urandom`` is replaced by a counter in most tests, so that "never the same bytes
twice" and "read again from the OS" are checked exactly rather than by hoping two
random slices differ (they would even if the pool handed out one byte twice).
"""

from __future__ import annotations

import itertools
import os
import re
import uuid

import pytest

from telephony import randompool
from telephony.randompool import RandomPool, token_hex, uuid4


class CountingUrandom:
    """``os.urandom`` stand-in: every byte it ever returns is the next of a counter
    (mod 251, a prime, so slices of any block size do not repeat in step)."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self._counter = itertools.count()

    def __call__(self, n: int) -> bytes:
        self.calls.append(n)
        return bytes(next(self._counter) % 251 for _ in range(n))

    def expected(self, start: int, n: int) -> bytes:
        return bytes(i % 251 for i in range(start, start + n))


@pytest.fixture
def urandom(monkeypatch: pytest.MonkeyPatch) -> CountingUrandom:
    fake = CountingUrandom()
    monkeypatch.setattr(randompool.os, "urandom", fake)
    return fake


def test_slices_are_consecutive_and_never_overlap(urandom: CountingUrandom) -> None:
    pool = RandomPool(block=64)
    chunks = [pool.token_bytes(8) for _ in range(40)]  # 320 bytes: 5 blocks of 64
    assert b"".join(chunks) == urandom.expected(0, 320)
    assert urandom.calls == [64] * 5


def test_a_slice_that_does_not_fit_starts_a_new_block(urandom: CountingUrandom) -> None:
    """The rest of a block too small for a request is dropped, never reused."""
    pool = RandomPool(block=16)
    assert pool.token_bytes(10) == urandom.expected(0, 10)
    assert pool.token_bytes(10) == urandom.expected(16, 10)  # 6 bytes of block 1 dropped
    assert urandom.calls == [16, 16]


def test_a_request_larger_than_the_block_is_served_from_its_own_read(
    urandom: CountingUrandom,
) -> None:
    pool = RandomPool(block=16)
    assert pool.token_bytes(100) == urandom.expected(0, 100)
    assert urandom.calls == [100]
    assert pool.token_bytes(4) == urandom.expected(100, 4)  # nothing left over: a new read


def test_discard_drops_what_was_read(urandom: CountingUrandom) -> None:
    pool = RandomPool(block=64)
    pool.token_bytes(8)
    pool.discard()
    # Without the discard this would be bytes 8..15 of the first block.
    assert pool.token_bytes(8) == urandom.expected(64, 8)
    assert urandom.calls == [64, 64]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_never_hands_out_its_parents_bytes() -> None:
    """The module's pool is discarded in a child (``os.register_at_fork``): parent and
    child, reading from the same position of the same block, must still differ."""
    randompool.token_bytes(1)  # the pool holds a block now
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next 16 bytes, exit at once
        try:
            os.write(write_end, randompool.token_bytes(16))
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        child = os.read(read_end, 16)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert len(child) == 16
    assert randompool.token_bytes(16) != child


def test_token_hex_is_lower_case_hex_of_fresh_bytes() -> None:
    value = token_hex(8)
    assert re.fullmatch(r"[0-9a-f]{16}", value), value
    assert token_hex(8) != value


def test_uuid4_is_a_version_4_uuid_text() -> None:
    made = [uuid4() for _ in range(100)]
    assert len(set(made)) == 100
    for text in made:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
