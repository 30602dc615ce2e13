"""G.711 μ-law and A-law, bit-exact with the ITU-T G.191 reference (``g711.c``).

The encoders take 16-bit linear PCM as the reference does: μ-law uses the 14
most significant bits, A-law the 13 most significant.  The companding rules are
written once, vectorised with numpy, to fill lookup tables at import (65,536
entries to encode, 256 to decode); encoding and decoding a frame is then one
indexed gather.  μ-law <-> A-law transcoding (for a bridge between a PCMU and a
PCMA leg) decodes and re-encodes through the same tables, also a 256-byte
``bytes.translate`` table.
"""

from __future__ import annotations

import enum

import numpy as np
import numpy.typing as npt

__all__ = (
    "ALAW_TO_ULAW",
    "ULAW_TO_ALAW",
    "Codec",
    "alaw_decode",
    "alaw_encode",
    "ulaw_decode",
    "ulaw_encode",
)

Int16Array = npt.NDArray[np.int16]


def _bit_length(values: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """``int.bit_length`` for non-negative values below 2**15, vectorised."""
    thresholds = 1 << np.arange(15, dtype=np.int32)  # 1, 2, 4, ... 16384
    return np.searchsorted(thresholds, values, side="right").astype(np.int32)


def _ulaw_compress(linear: npt.NDArray[np.int32]) -> npt.NDArray[np.uint8]:
    # G.191 ulaw_compress: one's complement of negatives, 14 bits, bias 33.
    absno = np.where(linear < 0, (~linear) >> 2, linear >> 2) + 33
    absno = np.minimum(absno, 0x1FFF)
    segno = 1 + _bit_length(absno >> 6)
    high = 8 - segno
    low = 15 - ((absno >> segno) & 0x0F)
    code = (high << 4) | low | np.where(linear >= 0, 0x80, 0)
    return code.astype(np.uint8)


def _ulaw_expand(code: npt.NDArray[np.int32]) -> npt.NDArray[np.int16]:
    sign = np.where(code < 0x80, -1, 1)
    inverted = ~code
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    step = 4 << (exponent + 1)
    value = (0x80 << exponent) + step * mantissa + step // 2 - 4 * 33
    return (sign * value).astype(np.int16)


def _alaw_compress(linear: npt.NDArray[np.int32]) -> npt.NDArray[np.uint8]:
    # G.191 alaw_compress: one's complement of negatives, 12 magnitude bits.
    ix = np.where(linear < 0, (~linear) >> 4, linear >> 4)
    iexp = np.maximum(_bit_length(ix) - 4, 1)
    segmented = ((ix >> (iexp - 1)) - 16) + (iexp << 4)
    ix = np.where(ix > 15, segmented, ix)
    ix = ix | np.where(linear >= 0, 0x80, 0)
    return (ix ^ 0x55).astype(np.uint8)


def _alaw_expand(code: npt.NDArray[np.int32]) -> npt.NDArray[np.int16]:
    ix = (code ^ 0x55) & 0x7F
    iexp = ix >> 4
    mant = (ix & 0x0F) + np.where(iexp > 0, 16, 0)
    mant = (mant << 4) + 8
    mant = np.where(iexp > 1, mant << np.maximum(iexp - 1, 0), mant)
    return np.where(code > 127, mant, -mant).astype(np.int16)


# Index the encoder tables by the int16 sample's bit pattern read as uint16.
_ALL_SAMPLES = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)
_ALL_CODES = np.arange(256, dtype=np.int32)
_ULAW_ENCODE = _ulaw_compress(_ALL_SAMPLES)
_ALAW_ENCODE = _alaw_compress(_ALL_SAMPLES)
_ULAW_DECODE = _ulaw_expand(_ALL_CODES)
_ALAW_DECODE = _alaw_expand(_ALL_CODES)

#: ``payload.translate(ULAW_TO_ALAW)`` converts a PCMU payload to PCMA.
ULAW_TO_ALAW: bytes = _ALAW_ENCODE[_ULAW_DECODE.view(np.uint16)].tobytes()
#: ``payload.translate(ALAW_TO_ULAW)`` converts a PCMA payload to PCMU.
ALAW_TO_ULAW: bytes = _ULAW_ENCODE[_ALAW_DECODE.view(np.uint16)].tobytes()


def _as_int16(samples: npt.ArrayLike) -> Int16Array:
    array = np.asarray(samples)
    if array.dtype != np.int16:
        array = array.astype(np.int16)
    return array


def ulaw_encode(samples: npt.ArrayLike) -> bytes:
    """Encode 16-bit linear samples to μ-law, one byte per sample."""
    return _ULAW_ENCODE[_as_int16(samples).view(np.uint16)].tobytes()


def alaw_encode(samples: npt.ArrayLike) -> bytes:
    """Encode 16-bit linear samples to A-law, one byte per sample."""
    return _ALAW_ENCODE[_as_int16(samples).view(np.uint16)].tobytes()


def ulaw_decode(data: bytes) -> Int16Array:
    """Decode μ-law bytes to 16-bit linear samples (14-bit values, left-justified)."""
    return _ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> Int16Array:
    """Decode A-law bytes to 16-bit linear samples (13-bit values, left-justified)."""
    return _ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


class Codec(enum.Enum):
    """The G.711 codecs we negotiate, with their static RTP payload types (RFC 3551 §6)."""

    PCMU = "PCMU"
    PCMA = "PCMA"

    @property
    def payload_type(self) -> int:
        """The static payload type: 0 for PCMU, 8 for PCMA."""
        return 0 if self is Codec.PCMU else 8

    @property
    def silence(self) -> int:
        """The code for a zero sample: 0xFF in μ-law, 0xD5 in A-law."""
        return 0xFF if self is Codec.PCMU else 0xD5

    @classmethod
    def for_payload_type(cls, payload_type: int) -> Codec | None:
        """The codec with this static payload type, or ``None``."""
        return {0: cls.PCMU, 8: cls.PCMA}.get(payload_type)

    def encode(self, samples: npt.ArrayLike) -> bytes:
        """Encode 16-bit linear samples with this codec."""
        return ulaw_encode(samples) if self is Codec.PCMU else alaw_encode(samples)

    def decode(self, data: bytes) -> Int16Array:
        """Decode a payload of this codec to 16-bit linear samples."""
        return ulaw_decode(data) if self is Codec.PCMU else alaw_decode(data)

    def transcode_table(self, target: Codec) -> bytes | None:
        """The ``bytes.translate`` table from this codec to ``target``, or ``None`` if equal."""
        if self is target:
            return None
        return ULAW_TO_ALAW if self is Codec.PCMU else ALAW_TO_ULAW
