"""Tone detection for the conference tests: which test tones a stretch of audio holds.

Each conference member sends a sine at its own frequency; what a member hears is
checked with the Goertzel algorithm (the power of one DFT bin, computed directly),
normalised so that a sine of peak amplitude ``A`` reads ``A`` whatever the length.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ("RATE", "goertzel_amplitude", "tone", "tones_heard")

RATE = 8000


def tone(
    frequency: float, samples: int, amplitude: float = 6000.0, offset: int = 0
) -> npt.NDArray[np.int16]:
    """``samples`` of a sine at 8 kHz, starting at sample ``offset`` (phase-continuous)."""
    t = np.arange(offset, offset + samples) / RATE
    return np.round(amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def goertzel_amplitude(samples: npt.NDArray[np.int16], frequency: float) -> float:
    """The peak amplitude of the ``frequency`` component of ``samples`` (Goertzel, Hann window)."""
    n = len(samples)
    if n == 0:
        return 0.0
    x = samples.astype(np.float64) * np.hanning(n)
    coefficient = 2.0 * np.cos(2.0 * np.pi * frequency / RATE)
    s1 = s2 = 0.0
    for value in x:
        s1, s2 = value + coefficient * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coefficient * s1 * s2
    # A Hann window keeps half of a sine's amplitude: |X| = A * n / 4.
    return float(4.0 * np.sqrt(max(power, 0.0)) / n)


def tones_heard(
    samples: npt.NDArray[np.int16], frequencies: list[float], threshold: float = 500.0
) -> set[float]:
    """Which of ``frequencies`` are present at a peak amplitude of at least ``threshold``."""
    return {f for f in frequencies if goertzel_amplitude(samples, f) >= threshold}
