"""In-band audio: DTMF tone pairs, call-progress tones, and a DTMF detector.

For peers that did not negotiate ``telephone-event`` we send digits as dual
tones and detect them in the decoded audio.  The detector evaluates the eight
DTMF frequencies on each 20 ms block (160 samples) with the Goertzel single-bin
DFT, written as one numpy dot product (the same value Goertzel's recurrence
computes, without a per-sample Python loop), and accepts a digit when

* one row and one column tone stand out of the other tones of their group by
  8 dB, each at least :data:`MIN_TONE_AMPLITUDE`,
* the twist is within ITU-T Q.24 limits (high group at most 8 dB below the low
  group, at most 4 dB above it),
* the two tones carry at least :data:`MIN_TONE_FRACTION` of the block's energy
  (speech rarely does),
* and two consecutive blocks (40 ms) agree; two digit-free blocks re-arm it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from media.dtmf import DIGIT_EVENTS

__all__ = (
    "BEEP_HZ",
    "DTMF_FREQUENCIES",
    "MIN_TONE_AMPLITUDE",
    "MIN_TONE_FRACTION",
    "RINGBACK_CADENCE",
    "InbandDtmfDetector",
    "dtmf_tone",
    "tone",
)

SAMPLE_RATE = 8000
BLOCK = 160
_ROWS = (697.0, 770.0, 852.0, 941.0)
_COLS = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")
#: digit -> (row Hz, column Hz), ITU-T Q.23.
DTMF_FREQUENCIES = {_KEYPAD[r][c]: (_ROWS[r], _COLS[c]) for r in range(4) for c in range(4)}
assert set(DTMF_FREQUENCIES) == set(DIGIT_EVENTS)  # noqa: S101 -- import-time sanity check

#: Peak amplitude of each DTMF tone we send (about -12 dBFS per tone).
DTMF_AMPLITUDE = 8000
#: Weakest tone the detector accepts, as a peak amplitude (about -41 dBFS).
MIN_TONE_AMPLITUDE = 300
#: Least share of a block's energy the two tones must carry.
MIN_TONE_FRACTION = 0.6
#: The beep (before a recording): frequency in Hz, length in ms.
BEEP_HZ = 1000.0
BEEP_MS = 250
#: North American ringback: 440 + 480 Hz, 2 s on, 4 s off (in ms).
RINGBACK_HZ = (440.0, 480.0)
RINGBACK_CADENCE = (2000, 4000)

Int16Array = npt.NDArray[np.int16]


def tone(
    frequencies: tuple[float, ...],
    samples: int,
    *,
    amplitude: float = DTMF_AMPLITUDE,
    offset: int = 0,
) -> Int16Array:
    """A sum of sines at 8 kHz.

    :param frequencies: the frequencies in Hz.
    :param samples: how many samples.
    :param amplitude: the peak amplitude of *each* sine (16-bit scale).
    :param offset: the index of the first sample, so consecutive frames join
        without a phase jump.
    """
    t = np.arange(offset, offset + samples, dtype=np.float64) / SAMPLE_RATE
    wave = np.zeros(samples)
    for f in frequencies:
        wave += amplitude * np.sin(2 * np.pi * f * t)
    return np.clip(np.round(wave), -32768, 32767).astype(np.int16)


def dtmf_tone(digit: str, samples: int, *, offset: int = 0) -> Int16Array:
    """The dual tone of a DTMF digit (``0-9 * # A-D``)."""
    return tone(DTMF_FREQUENCIES[digit], samples, offset=offset)


_FREQS = np.array(_ROWS + _COLS)
_N = np.arange(BLOCK)
_BASIS = np.exp(-2j * np.pi * np.outer(_FREQS, _N) / SAMPLE_RATE)
# A sine of peak amplitude A gives |X|^2 = (A * N / 2)^2 at its own frequency.
_MIN_POWER = (MIN_TONE_AMPLITUDE * BLOCK / 2) ** 2
_PEAK_RATIO = 10 ** (8 / 10)  # other tones of a group at least 8 dB down
_NORMAL_TWIST = 10 ** (8 / 10)
_REVERSE_TWIST = 10 ** (4 / 10)


def _classify(block: npt.NDArray[np.float64]) -> str | None:
    power = np.abs(_BASIS @ block) ** 2
    rows, cols = power[:4], power[4:]
    r, c = int(np.argmax(rows)), int(np.argmax(cols))
    row_p, col_p = rows[r], cols[c]
    if row_p < _MIN_POWER or col_p < _MIN_POWER:
        return None
    if np.sort(rows)[-2] * _PEAK_RATIO > row_p or np.sort(cols)[-2] * _PEAK_RATIO > col_p:
        return None
    if col_p * _NORMAL_TWIST < row_p or row_p * _REVERSE_TWIST < col_p:
        return None
    energy = float(np.dot(block, block))
    if energy <= 0 or 2 * (row_p + col_p) / BLOCK < MIN_TONE_FRACTION * energy:
        return None
    return _KEYPAD[r][c]


class InbandDtmfDetector:
    """Detect DTMF digits in 8 kHz linear audio; each key press reported once."""

    def __init__(self) -> None:
        self._pending = np.zeros(0, dtype=np.float64)
        self._current: str | None = None
        self._candidate: str | None = None
        self._misses = 0

    def feed(self, samples: npt.ArrayLike) -> list[str]:
        """Add decoded samples (any length).

        :returns: the digits that began in them.
        """
        data = np.concatenate([self._pending, np.asarray(samples, dtype=np.float64)])
        out = []
        whole = len(data) - len(data) % BLOCK
        for start in range(0, whole, BLOCK):
            digit = _classify(data[start : start + BLOCK])
            if digit is None:
                self._candidate = None
                self._misses += 1
                if self._misses >= 2:
                    self._current = None
                continue
            self._misses = 0
            if digit == self._current:
                continue
            if digit == self._candidate:
                self._current = digit
                self._candidate = None
                out.append(digit)
            else:
                self._candidate = digit
        self._pending = data[whole:]
        return out
