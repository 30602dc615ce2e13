"""Frame sources for the outgoing stream: clips, tones and silence.

A source hands out one 20 ms payload (160 samples, encoded) per tick and
``None`` when it is exhausted.  Audio is kept as 8 kHz 16-bit samples and
encoded once per codec on first use, so a stream that changes codec after a
re-INVITE keeps playing from the same place.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from media.g711 import Codec
from media.inband import BEEP_HZ, BEEP_MS, RINGBACK_CADENCE, RINGBACK_HZ, tone

__all__ = ("SAMPLES_PER_FRAME", "TONES", "ClipSource", "FrameSource", "tone_source")

#: Samples in one 20 ms frame at 8 kHz.
SAMPLES_PER_FRAME = 160

Int16Array = npt.NDArray[np.int16]


class FrameSource:
    """Base class: a sequence of encoded 20 ms payloads."""

    def next_payload(self, codec: Codec) -> bytes | None:
        """The next payload in ``codec``, or ``None`` when finished."""
        raise NotImplementedError


class ClipSource(FrameSource):
    """Play 8 kHz samples ``loops`` times (0 = forever).

    The last frame of each pass is padded with silence to 160 samples.

    :param samples: 8 kHz mono 16-bit samples.
    :param loops: how many passes; 0 repeats until stopped.
    """

    def __init__(self, samples: Int16Array, loops: int = 1) -> None:
        if loops < 0:
            raise ValueError(f"loop: must be 0 (forever) or more, got {loops}")
        pad = -len(samples) % SAMPLES_PER_FRAME
        self._samples = np.concatenate([samples, np.zeros(pad, dtype=np.int16)])
        self._frames = len(self._samples) // SAMPLES_PER_FRAME
        self._loops = loops
        self._encoded: dict[Codec, bytes] = {}
        self.position = 0  # frames handed out so far

    @property
    def frames_per_pass(self) -> int:
        """Frames in one pass of the clip."""
        return self._frames

    def next_payload(self, codec: Codec) -> bytes | None:
        """The next 160-byte payload, or ``None`` after the last loop."""
        if self._frames == 0:
            return None
        if self._loops and self.position >= self._frames * self._loops:
            return None
        encoded = self._encoded.get(codec)
        if encoded is None:
            encoded = self._encoded[codec] = codec.encode(self._samples)
        start = (self.position % self._frames) * SAMPLES_PER_FRAME
        self.position += 1
        return encoded[start : start + SAMPLES_PER_FRAME]

    def next_samples(self) -> Int16Array | None:
        """The next 160 samples, unencoded (for a mixer), or ``None`` after the last loop."""
        if self._frames == 0 or (self._loops and self.position >= self._frames * self._loops):
            return None
        start = (self.position % self._frames) * SAMPLES_PER_FRAME
        self.position += 1
        return self._samples[start : start + SAMPLES_PER_FRAME]


@functools.cache
def _beep() -> Int16Array:
    return tone((BEEP_HZ,), BEEP_MS * 8, amplitude=10000)


@functools.cache
def _ringback_cycle() -> Int16Array:
    on, off = RINGBACK_CADENCE
    return np.concatenate([tone(RINGBACK_HZ, on * 8, amplitude=6000), np.zeros(off * 8, np.int16)])


#: Named tones: (one cycle of samples, loops forever?).
TONES = ("beep", "ringback", "silence")


def tone_source(name: str, duration: float | None = None) -> ClipSource:
    """A source for a named tone.

    :param name: ``beep`` (1 kHz, 250 ms, once), ``ringback`` (440+480 Hz,
        2 s on / 4 s off, repeating) or ``silence``.
    :param duration: seconds to play, rounded up to 20 ms; ``None`` plays a
        beep once and ringback or silence until stopped.
    :raises ValueError: for an unknown name or a negative duration.
    """
    if name == "beep":
        cycle = _beep()
    elif name == "ringback":
        cycle = _ringback_cycle()
    elif name == "silence":
        cycle = np.zeros(SAMPLES_PER_FRAME, dtype=np.int16)
    else:
        raise ValueError(f"tone: must be one of {', '.join(TONES)}, got {name!r}")
    if duration is None:
        return ClipSource(cycle, loops=1 if name == "beep" else 0)
    if duration < 0:
        raise ValueError(f"duration: must be at least 0 s, got {duration}")
    samples = int(np.ceil(duration * 50 - 1e-9)) * SAMPLES_PER_FRAME
    reps = -(-samples // len(cycle)) if samples else 0
    return ClipSource(np.tile(cycle, reps)[:samples], loops=1)
