"""The random pool: OS randomness in blocks, never the same bytes twice."""

from __future__ import annotations

from telephony.randompool import RandomPool, token_hex


def test_slices_are_fresh_and_sized() -> None:
    pool = RandomPool(block=64)
    chunks = [pool.token_bytes(8) for _ in range(40)]  # several blocks
    assert all(len(c) == 8 for c in chunks)
    assert len(set(chunks)) == len(chunks)


def test_a_request_larger_than_the_block_is_served() -> None:
    pool = RandomPool(block=16)
    assert len(pool.token_bytes(100)) == 100


def test_discard_drops_what_was_read() -> None:
    pool = RandomPool(block=64)
    first = pool.token_bytes(8)
    pool.discard()
    assert pool.token_bytes(8) != first


def test_token_hex() -> None:
    value = token_hex(8)
    assert len(value) == 16
    assert int(value, 16) >= 0
    assert token_hex(8) != value


def test_uuid4_is_a_version_4_uuid_text() -> None:
    import uuid

    from telephony.randompool import uuid4

    made = [uuid4() for _ in range(100)]
    assert len(set(made)) == 100
    for text in made:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
