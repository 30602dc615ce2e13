"""A small playout buffer: decoded packets in, one 20 ms frame per mixer tick out.

A conference mixer takes one frame from each member every 20 ms on the shared
tick, while packets arrive on the network's schedule: a little early or late,
now and then two at once, sometimes lost, duplicated or out of order, and not
always 20 ms long (``a=ptime:30`` phones).  :class:`JitterBuffer` keeps the
samples in RTP timestamp order so each tick can take exactly 160 of them:

* a packet older than what was already played (late, or a duplicate) is dropped;
* a gap of up to :data:`MAX_GAP_FILL` samples (lost packets) is filled with
  silence so the stream stays aligned; a larger jump is a new talkspurt or a new
  source and is not filled;
* after an underrun the buffer waits for :data:`PRIME_SAMPLES` before playing
  again, so a stream whose packets land right at the tick does not alternate
  between a frame and a gap;
* it never holds more than :data:`MAX_SAMPLES`: the oldest samples are dropped
  (a burst after a network stall must not add lasting delay).

Sans-IO: no clock, no sockets; the mixer calls :meth:`push` and :meth:`pop`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ("FRAME_SAMPLES", "MAX_GAP_FILL", "MAX_SAMPLES", "PRIME_SAMPLES", "JitterBuffer")

#: Samples in one 20 ms frame at 8 kHz.
FRAME_SAMPLES = 160
#: Samples waited for after an underrun before playing again: 2 frames, 40 ms.
PRIME_SAMPLES = 2 * FRAME_SAMPLES
#: Most samples held: 8 frames, 160 ms; older ones are dropped.
MAX_SAMPLES = 8 * FRAME_SAMPLES
#: Longest timestamp gap filled with silence: 5 frames, 100 ms of lost packets.
MAX_GAP_FILL = 5 * FRAME_SAMPLES

Int16Array = npt.NDArray[np.int16]
_EMPTY = np.zeros(0, dtype=np.int16)


def _signed_gap(a: int, b: int) -> int:
    """``a - b`` in 32-bit RTP timestamp arithmetic, as a signed number."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


class JitterBuffer:
    """Decoded samples of one member, in timestamp order, taken a frame at a time.

    :ivar dropped_late: packets dropped as late or duplicate.
    :ivar dropped_overflow: samples dropped because the buffer was full.
    :ivar underruns: ticks that found less than a frame.
    """

    def __init__(self) -> None:
        self._samples: Int16Array = _EMPTY
        self._next_ts: int | None = None
        self._ssrc: int | None = None
        self._primed = False
        self.dropped_late = 0
        self.dropped_overflow = 0
        self.underruns = 0

    @property
    def level(self) -> int:
        """Samples buffered."""
        return len(self._samples)

    def push(self, samples: Int16Array, timestamp: int, ssrc: int) -> None:
        """Add one packet's samples, placed by its RTP ``timestamp`` (8 kHz units)."""
        if ssrc != self._ssrc:  # a new source: its timeline starts here
            self._ssrc = ssrc
            self._next_ts = None
        next_ts = (timestamp + len(samples)) & 0xFFFFFFFF
        if self._next_ts is not None:
            gap = _signed_gap(timestamp, self._next_ts)
            if gap < 0:
                if gap > -MAX_SAMPLES:  # late or a duplicate of what we have or played
                    self.dropped_late += 1
                    return
                # Far behind: the source restarted its timeline; follow it.
            elif 0 < gap <= MAX_GAP_FILL:
                samples = np.concatenate((np.zeros(gap, dtype=np.int16), samples))
        self._next_ts = next_ts
        buffered = np.concatenate((self._samples, samples)) if len(self._samples) else samples
        excess = len(buffered) - MAX_SAMPLES
        if excess > 0:
            self.dropped_overflow += excess
            buffered = buffered[excess:]
        self._samples = buffered

    def pop(self) -> Int16Array | None:
        """The next 160 samples, or ``None`` while priming or after an underrun."""
        level = len(self._samples)
        if not self._primed:
            if level < PRIME_SAMPLES:
                return None
            self._primed = True
        if level < FRAME_SAMPLES:
            self._primed = False
            self.underruns += 1
            return None
        frame = self._samples[:FRAME_SAMPLES]
        self._samples = self._samples[FRAME_SAMPLES:]
        return frame

    def clear(self) -> None:
        """Forget everything buffered (the member was held, its audio is stale)."""
        self._samples = _EMPTY
        self._primed = False
