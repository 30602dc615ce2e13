"""G.711 against an independent scalar port of the ITU-T G.191 reference (g711.c)."""

from __future__ import annotations

import numpy as np
import pytest

from media import g711
from media.g711 import Codec


def ref_ulaw_compress(x: int) -> int:
    """G.191 ulaw_compress, one sample, line by line."""
    absno = ((~x) >> 2) + 33 if x < 0 else (x >> 2) + 33
    if absno > 0x1FFF:
        absno = 0x1FFF
    i = absno >> 6
    segno = 1
    while i != 0:
        segno += 1
        i >>= 1
    high_nibble = 0x0008 - segno
    low_nibble = 0x000F - ((absno >> segno) & 0x000F)
    out = (high_nibble << 4) | low_nibble
    if x >= 0:
        out |= 0x0080
    return out


def ref_ulaw_expand(code: int) -> int:
    """G.191 ulaw_expand."""
    sign = -1 if code < 0x0080 else 1
    mantissa = ~code
    exponent = (mantissa >> 4) & 0x0007
    segment = exponent + 1
    mantissa &= 0x000F
    step = 4 << segment
    return sign * ((0x0080 << exponent) + step * mantissa + step // 2 - 4 * 33)


def ref_alaw_compress(x: int) -> int:
    """G.191 alaw_compress."""
    ix = (~x) >> 4 if x < 0 else x >> 4
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix >>= 1
            iexp += 1
        ix -= 16
        ix += iexp << 4
    if x >= 0:
        ix |= 0x0080
    return ix ^ 0x0055


def ref_alaw_expand(code: int) -> int:
    """G.191 alaw_expand."""
    ix = (code ^ 0x0055) & 0x007F
    iexp = ix >> 4
    mant = ix & 0x000F
    if iexp > 0:
        mant += 16
    mant = (mant << 4) + 0x0008
    if iexp > 1:
        mant <<= iexp - 1
    return mant if code > 127 else -mant


ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)


def test_ulaw_encode_full_table_matches_reference() -> None:
    expected = bytes(ref_ulaw_compress(int(x)) for x in ALL_SAMPLES)
    assert g711.ulaw_encode(ALL_SAMPLES) == expected


def test_alaw_encode_full_table_matches_reference() -> None:
    expected = bytes(ref_alaw_compress(int(x)) for x in ALL_SAMPLES)
    assert g711.alaw_encode(ALL_SAMPLES) == expected


def test_decoders_match_reference_for_every_code() -> None:
    codes = bytes(range(256))
    assert g711.ulaw_decode(codes).tolist() == [ref_ulaw_expand(c) for c in range(256)]
    assert g711.alaw_decode(codes).tolist() == [ref_alaw_expand(c) for c in range(256)]


@pytest.mark.parametrize(
    ("sample", "ulaw", "alaw"),
    [
        (0, 0xFF, 0xD5),
        (-1, 0x7F, 0x55),
        (32767, 0x80, 0xAA),
        (-32768, 0x00, 0x2A),
        (1000, 0xCE, 0xFA),
        (-1000, 0x4E, 0x7A),
    ],
)
def test_literal_known_values(sample: int, ulaw: int, alaw: int) -> None:
    assert g711.ulaw_encode(np.array([sample], dtype=np.int16)) == bytes((ulaw,))
    assert g711.alaw_encode(np.array([sample], dtype=np.int16)) == bytes((alaw,))


def test_literal_decoded_values() -> None:
    # Extremes of each law and its smallest step: μ-law ±8031 (x4 = 32124), A-law ±4032 (x8).
    assert g711.ulaw_decode(b"\x80\x00\xff\x7f").tolist() == [32124, -32124, 0, 0]
    assert g711.alaw_decode(b"\xaa\x2a\xd5\x55").tolist() == [32256, -32256, 8, -8]


def test_decode_then_encode_is_identity_on_codes() -> None:
    codes = bytes(range(256))
    # μ-law has two codes for zero (0x7F and 0xFF); both decode to 0, which encodes to 0xFF.
    reencoded = g711.ulaw_encode(g711.ulaw_decode(codes))
    assert [c for c in range(256) if reencoded[c] != c] == [0x7F]
    assert g711.alaw_encode(g711.alaw_decode(codes)) == codes


def test_transcoding_tables_round_trip_through_linear() -> None:
    for code in range(256):
        linear = ref_ulaw_expand(code)
        assert g711.ULAW_TO_ALAW[code] == ref_alaw_compress(linear)
        assert g711.ALAW_TO_ULAW[code] == ref_ulaw_compress(ref_alaw_expand(code))


def test_codec_enum() -> None:
    assert Codec.PCMU.payload_type == 0
    assert Codec.PCMA.payload_type == 8
    assert Codec.for_payload_type(8) is Codec.PCMA
    assert Codec.for_payload_type(3) is None
    assert Codec.PCMU.encode(np.zeros(160, dtype=np.int16)) == bytes([Codec.PCMU.silence]) * 160
    assert Codec.PCMA.encode(np.zeros(160, dtype=np.int16)) == bytes([Codec.PCMA.silence]) * 160
    assert Codec.PCMU.transcode_table(Codec.PCMU) is None
    assert b"\xff".translate(Codec.PCMU.transcode_table(Codec.PCMA) or b"") == b"\xd5"
