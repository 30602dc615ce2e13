"""WAV files in and out, mixing down to mono, and resampling to 8 kHz.

Sans-IO: :func:`decode_wav` takes bytes; :class:`WavWriter` takes a binary file
object.  Accepted input (all little-endian RIFF/WAVE):

* PCM (format 1) with 8-bit unsigned, 16-, 24- or 32-bit signed samples;
* IEEE float (format 3), 32 or 64 bits; G.711 A-law (6) and μ-law (7);
* ``WAVE_FORMAT_EXTENSIBLE`` wrapping any of these;
* 1-8 channels (averaged to mono), 4,000-192,000 Hz;
* a data chunk whose size is 0 or ``0xFFFFFFFF`` (written to a pipe, as
  ``espeak-ng --stdout`` does) or overruns the file: the rest of the file is read.

:func:`resample` is a band-limited (windowed-sinc) interpolator for any ratio:
the kernel's cutoff is 95 % of the lower Nyquist frequency, Blackman-windowed
over 8 zero crossings each side, so a tone above 4 kHz in a 48 kHz file is
attenuated instead of folding into the telephone band.
"""

from __future__ import annotations

import math
import struct
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from media.errors import AudioFormatError
from media.g711 import alaw_decode, ulaw_decode

__all__ = (
    "MAX_WAV_BYTES",
    "RATE",
    "Resampler",
    "WavWriter",
    "decode_wav",
    "load_wav_8k",
    "resample",
    "to_int16",
    "wav_bytes",
)

#: The telephone sample rate, in Hz.
RATE = 8000
#: Largest WAV file (or fetched body) we decode, in bytes: 50 MiB is about
#: 5 minutes of 44.1 kHz 16-bit stereo, or 55 minutes of 8 kHz 16-bit mono.
MAX_WAV_BYTES = 50 * 1024 * 1024
MIN_RATE, MAX_RATE = 4000, 192000
MAX_CHANNELS = 8

_PCM, _FLOAT, _ALAW, _ULAW, _EXTENSIBLE = 1, 3, 6, 7, 0xFFFE

Float64Array = npt.NDArray[np.float64]
Int16Array = npt.NDArray[np.int16]


def _chunks(data: bytes) -> dict[bytes, bytes]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFormatError("wav: must start with a RIFF/WAVE header")
    found: dict[bytes, bytes] = {}
    offset = 12
    while offset + 8 <= len(data):
        cid, size = struct.unpack_from("<4sI", data, offset)
        body = offset + 8
        if cid == b"data" and (size in (0, 0xFFFFFFFF) or body + size > len(data)):
            size = len(data) - body  # streamed or truncated: read what is there
        found.setdefault(cid, data[body : body + size])
        offset = body + size + (size & 1)
        if cid == b"data":
            break
    for needed in (b"fmt ", b"data"):
        if needed not in found:
            raise AudioFormatError(f"wav: missing the {needed.decode().strip()!r} chunk")
    return found


def decode_wav(data: bytes) -> tuple[Float64Array, int]:
    """Decode a WAV file to mono samples on the 16-bit scale.

    :param data: the whole file.
    :returns: ``(samples, rate)``: float64 samples in -32768..32767, rate in Hz.
    :raises AudioFormatError: naming the field and rule, for a non-RIFF file,
        a missing chunk, an unsupported format or sample size, a rate or channel
        count out of range, or a file over :data:`MAX_WAV_BYTES`.
    """
    if len(data) > MAX_WAV_BYTES:
        raise AudioFormatError(f"wav: at most {MAX_WAV_BYTES} bytes, got {len(data)}")
    chunks = _chunks(data)
    fmt = chunks[b"fmt "]
    if len(fmt) < 16:
        raise AudioFormatError(f"wav fmt: must be at least 16 bytes, got {len(fmt)}")
    tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _EXTENSIBLE:
        if len(fmt) < 26:
            raise AudioFormatError("wav fmt: WAVE_FORMAT_EXTENSIBLE needs a 40-byte fmt chunk")
        (tag,) = struct.unpack_from("<H", fmt, 24)  # first two bytes of the subformat GUID
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioFormatError(f"wav channels: must be 1-{MAX_CHANNELS}, got {channels}")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioFormatError(f"wav sample rate: must be {MIN_RATE}-{MAX_RATE} Hz, got {rate}")
    body = chunks[b"data"]
    samples = _samples(tag, bits, body)
    usable = len(samples) - len(samples) % channels
    mono = samples[:usable].reshape(-1, channels).mean(axis=1)
    return mono, rate


def _samples(tag: int, bits: int, body: bytes) -> Float64Array:
    width = bits // 8
    if width:
        body = body[: len(body) - len(body) % width]
    if tag == _PCM and bits == 8:
        return np.frombuffer(body, dtype=np.uint8).astype(np.float64) * 256.0 - 32768.0
    if tag == _PCM and bits == 16:
        return np.frombuffer(body, dtype="<i2").astype(np.float64)
    if tag == _PCM and bits == 24:
        raw = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        value = np.where(value & 0x800000, value - 0x1000000, value)
        return value.astype(np.float64) / 256.0
    if tag == _PCM and bits == 32:
        return np.frombuffer(body, dtype="<i4").astype(np.float64) / 65536.0
    if tag == _FLOAT and bits in (32, 64):
        dtype = "<f4" if bits == 32 else "<f8"
        values = np.frombuffer(body, dtype=dtype).astype(np.float64)
        return np.nan_to_num(values) * 32767.0
    if tag in (_ALAW, _ULAW) and bits == 8:
        decode = alaw_decode if tag == _ALAW else ulaw_decode
        return decode(body).astype(np.float64)
    raise AudioFormatError(
        f"wav format: supported are PCM 8/16/24/32-bit, float 32/64, A-law and μ-law;"
        f" got format {tag} with {bits} bits"
    )


#: Resampler kernel: zero crossings each side, and cutoff as a share of Nyquist.
_ZEROS = 8
_CUTOFF = 0.95
_CHUNK = 4096


def resample(samples: npt.ArrayLike, src_rate: int, dst_rate: int = RATE) -> Float64Array:
    """Band-limited resampling between any two rates.

    :param samples: mono samples.
    :param src_rate: their rate in Hz.
    :param dst_rate: the wanted rate in Hz (8000 by default).
    :returns: ``floor(len * dst / src)`` float64 samples.
    """
    x = np.asarray(samples, dtype=np.float64)
    if src_rate == dst_rate or len(x) == 0:
        return x.copy()
    step = src_rate / dst_rate  # input samples per output sample
    scale = min(1.0, dst_rate / src_rate)  # kernel stretch when decimating
    fc = 0.5 * _CUTOFF * scale  # cutoff in cycles per input sample
    half = math.ceil(_ZEROS / scale)
    offsets = np.arange(-half + 1, half + 1)
    padded = np.concatenate([np.zeros(half), x, np.zeros(half + 1)])
    n_out = int(len(x) * dst_rate // src_rate)
    out = np.empty(n_out)
    for start in range(0, n_out, _CHUNK):
        t = np.arange(start, min(n_out, start + _CHUNK)) * step
        base = np.floor(t).astype(np.int64)
        idx = base[:, None] + offsets[None, :]
        d = t[:, None] - idx
        w = d / half
        window = 0.42 + 0.5 * np.cos(np.pi * w) + 0.08 * np.cos(2 * np.pi * w)
        kernel = 2 * fc * np.sinc(2 * fc * d) * np.where(np.abs(w) < 1, window, 0.0)
        out[start : start + len(t)] = np.einsum("ij,ij->i", padded[idx + half], kernel)
    return out


class Resampler:
    """:func:`resample` a block at a time, for audio too long to hold whole.

    Feeding blocks and then flushing gives exactly what :func:`resample` gives for
    their concatenation; only the input the next outputs still need (one kernel
    width) is kept between blocks.

    :param src_rate: the input rate in Hz.
    :param dst_rate: the output rate in Hz.
    """

    def __init__(self, src_rate: int, dst_rate: int = RATE) -> None:
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._same = src_rate == dst_rate
        self._step = src_rate / dst_rate
        scale = min(1.0, dst_rate / src_rate)
        self._fc = 0.5 * _CUTOFF * scale
        self._half = math.ceil(_ZEROS / scale)
        self._offsets = np.arange(-self._half + 1, self._half + 1)
        # Input kept from absolute index ``_base`` on; the half-kernel of zeros
        # before the first sample is :func:`resample`'s left padding.
        self._buf = np.zeros(self._half)
        self._base = -self._half
        self._fed = 0
        self._next = 0  # the next output sample's index

    def feed(self, samples: npt.ArrayLike) -> Float64Array:
        """Add input samples; returns every output sample they complete."""
        x = np.asarray(samples, dtype=np.float64)
        if self._same:
            self._fed += len(x)
            return x.copy()
        self._fed += len(x)
        self._buf = np.concatenate([self._buf, x])
        end = self._base + len(self._buf)  # one past the last input sample held
        # Output n needs inputs up to floor(n * step) + half.
        last = math.floor((end - 1 - self._half) / self._step)
        while last >= 0 and math.floor(last * self._step) + self._half > end - 1:
            last -= 1
        return self._emit(last + 1)

    def flush(self) -> Float64Array:
        """The last output samples (the input is over; zeros after it)."""
        if self._same:
            return np.zeros(0)
        total = int(self._fed * self.dst_rate // self.src_rate)
        self._buf = np.concatenate([self._buf, np.zeros(self._half + 1)])
        return self._emit(total)

    def _emit(self, stop: int) -> Float64Array:
        start = self._next
        if stop <= start:
            return np.zeros(0)
        out = np.empty(stop - start)
        for first in range(start, stop, _CHUNK):
            t = np.arange(first, min(stop, first + _CHUNK)) * self._step
            base = np.floor(t).astype(np.int64)
            idx = base[:, None] + self._offsets[None, :]
            d = t[:, None] - idx
            w = d / self._half
            window = 0.42 + 0.5 * np.cos(np.pi * w) + 0.08 * np.cos(2 * np.pi * w)
            kernel = 2 * self._fc * np.sinc(2 * self._fc * d) * np.where(np.abs(w) < 1, window, 0.0)
            taps = self._buf[idx - self._base]
            out[first - start : first - start + len(t)] = np.einsum("ij,ij->i", taps, kernel)
        self._next = stop
        keep_from = math.floor(stop * self._step) - self._half + 1
        if keep_from > self._base:
            self._buf = self._buf[keep_from - self._base :]
            self._base = keep_from
        return out


def to_int16(samples: Float64Array) -> Int16Array:
    """Round and clip samples on the 16-bit scale to ``int16``."""
    return _to_int16(samples)


def _to_int16(samples: Float64Array) -> Int16Array:
    return np.clip(np.round(samples), -32768, 32767).astype(np.int16)


def load_wav_8k(data: bytes) -> Int16Array:
    """Decode a WAV file of any supported format to 8 kHz mono 16-bit samples."""
    mono, rate = decode_wav(data)
    return _to_int16(resample(mono, rate, RATE))


def _header(data_bytes: int, rate: int) -> bytes:
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        _PCM,
        1,
        rate,
        rate * 2,
        2,
        16,
        b"data",
        data_bytes,
    )


def wav_bytes(samples: npt.ArrayLike, rate: int = RATE) -> bytes:
    """A whole 16-bit mono PCM WAV file."""
    pcm = np.asarray(samples, dtype=np.int16).astype("<i2").tobytes()
    return _header(len(pcm), rate) + pcm


class WavWriter:
    """Write 16-bit mono PCM to an open file as it arrives; :meth:`close` fixes the sizes.

    :param file: a binary file open for writing, positioned at 0, seekable.
    :param rate: the sample rate in Hz.
    """

    def __init__(self, file: BinaryIO, rate: int = RATE) -> None:
        self._file = file
        self._rate = rate
        self.samples_written = 0
        file.write(_header(0, rate))

    def write(self, samples: npt.ArrayLike) -> None:
        """Append samples."""
        pcm = np.asarray(samples, dtype=np.int16).astype("<i2").tobytes()
        self._file.write(pcm)
        self.samples_written += len(pcm) // 2

    def close(self) -> None:
        """Rewrite the header with the final sizes and close the file."""
        self._file.seek(0)
        self._file.write(_header(self.samples_written * 2, self._rate))
        self._file.close()
