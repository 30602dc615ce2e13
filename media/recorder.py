"""Recording both directions of a session: what its peer says and what it hears.

:class:`CallRecording` is the operation behind ``recordSession``,
``startOnDialAnswer`` and the REST ``Record`` of a live call.  It gets the
session's received audio (channel 0: the peer, e.g. the caller) and the audio
the session sends (channel 1: prompts, or the other leg of a bridge) and writes
them to one file, as two channels (stereo) or summed into one (mono).

The two streams have unrelated RTP clocks, so both are laid on one timeline,
the recording's own (8 kHz samples since it started, on the session's clock): a
source is anchored where its first packet arrived (minus its length), and its
later packets are placed by RTP timestamp from there, so network jitter does not
move them.  A source that drifts more than :data:`REANCHOR_SECONDS` from where
its packets arrive (a new SSRC, a timestamp jump, clock drift over hours) is
anchored again.  The timeline is written :data:`JITTER_SECONDS` behind the
present on every 20 ms tick; what was not heard is silence.  Ending (stop, the
limit, the session closing) writes what is held and keeps the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from twisted.internet.interfaces import IReactorTime

from media.audio import RATE
from media.encoder import AudioFileFormat, FileSink
from media.interfaces import RecordEnd, RecordingResult
from media.ops import Operation, deliver_recording
from media.player import RunBlocking

__all__ = ("JITTER_SECONDS", "REANCHOR_SECONDS", "CallRecording")

#: How far behind the present the timeline is written, in seconds: packets later
#: than this are dropped (a jitter buffer of 200 ms).
JITTER_SECONDS = 0.2
#: A source whose packets land this far from where they arrive is re-anchored.
REANCHOR_SECONDS = 0.5

Int16Array = npt.NDArray[np.int16]

_JITTER = int(JITTER_SECONDS * RATE)
_REANCHOR = int(REANCHOR_SECONDS * RATE)


class _Channel:
    """One direction's pieces of audio waiting to be written, by timeline position."""

    def __init__(self) -> None:
        self.anchor: tuple[int, int, int] | None = None  # ssrc, timestamp, position
        self.pieces: list[tuple[int, Int16Array]] = []
        self.late = 0

    def place(self, samples: Int16Array, timestamp: int, ssrc: int, arrived: int) -> int:
        """Where ``samples`` start on the timeline (``arrived``: where they ended)."""
        expected = arrived - len(samples)
        anchor = self.anchor
        if anchor is not None and anchor[0] == ssrc:
            delta = ((timestamp - anchor[1] + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            position = anchor[2] + delta
            if abs(position - expected) <= _REANCHOR:
                return position
        self.anchor = (ssrc, timestamp, expected)
        return expected

    def take(self, start: int, stop: int) -> Int16Array:
        """The samples of ``[start, stop)`` (silence where nothing was heard)."""
        out = np.zeros(stop - start, dtype=np.int16)
        kept: list[tuple[int, Int16Array]] = []
        for position, samples in self.pieces:
            end = position + len(samples)
            lo, hi = max(position, start), min(end, stop)
            if lo < hi:
                out[lo - start : hi - start] = samples[lo - position : hi - position]
            if end > stop:
                kept.append((position, samples))
        self.pieces = kept
        return out

    @property
    def end(self) -> int:
        """One past the last position held."""
        return max((p + len(s) for p, s in self.pieces), default=0)


class CallRecording(Operation[RecordingResult]):
    """Both directions of one session into one file.

    :param detach: removes the operation from its session when it ends.
    :param path: the file to write.
    :param file_format: WAV or MP3.
    :param stereo: two channels (left: the peer; right: what the peer hears), else
        both summed into one.
    :param max_length: seconds after which it ends by itself.
    :param clock: the session's clock; the recording starts now.
    :param run_blocking: where file work runs (the reactor's thread pool).
    """

    def __init__(
        self,
        detach: Callable[[Operation[Any]], None],
        *,
        path: Path,
        file_format: AudioFileFormat,
        stereo: bool,
        max_length: float,
        clock: IReactorTime,
        run_blocking: RunBlocking,
    ) -> None:
        super().__init__(detach)
        self.path = path
        self.stereo = stereo
        self.clock = clock
        self.started_at = clock.seconds()
        self._max = int(max_length * RATE)
        self._channels = (_Channel(), _Channel())
        self._written = 0
        self._sink: FileSink | None = FileSink(
            path, file_format, 2 if stereo else 1, run_blocking=run_blocking
        )

    def _position(self, now: float) -> int:
        return round((now - self.started_at) * RATE)

    def feed(
        self, channel: int, samples: Int16Array, timestamp: int, ssrc: int, now: float
    ) -> None:
        """Audio of one packet: received (channel 0) or sent (channel 1)."""
        if self._sink is None:
            return
        lane = self._channels[channel]
        position = lane.place(samples, timestamp, ssrc, self._position(now))
        if position < self._written:  # later than the jitter allowance
            cut = self._written - position
            if cut >= len(samples):
                lane.late += 1
                return
            samples, position = samples[cut:], self._written
        lane.pieces.append((position, samples))

    def on_tick(self, now: float) -> None:
        """Write the timeline up to :data:`JITTER_SECONDS` ago; end at the limit."""
        target = min(self._position(now) - _JITTER, self._max)
        if target - self._written >= 160 and not self._write_to(target):
            self._finish(RecordEnd.STOPPED)  # the disk cannot keep up: keep what we have
        elif self._written >= self._max:
            self._finish(RecordEnd.MAX_LENGTH)

    def stop(self, reason: RecordEnd = RecordEnd.STOPPED) -> None:
        """End now, writing everything heard so far."""
        self._finish(reason)

    def _write_to(self, target: int) -> bool:
        """Hand the timeline up to ``target`` to the file; ``False`` if it refused."""
        sink = self._sink
        if sink is None or target <= self._written:
            return True
        left, right = (lane.take(self._written, target) for lane in self._channels)
        if self.stereo:
            block = np.stack([left, right], axis=1)
        else:
            mixed = left.astype(np.int32) + right.astype(np.int32)
            block = np.clip(mixed, -32768, 32767).astype(np.int16)
        self._written = target
        return sink.write(block)

    def _finish(self, reason: RecordEnd) -> None:
        if self.ended or self._sink is None:
            return
        # Everything held, up to the present: the file is as long as the recording ran.
        held = max(lane.end for lane in self._channels)
        end = max(held, self._position(self.clock.seconds()), self._written)
        self._write_to(min(end, self._max))  # a refusal changes nothing now
        sink, self._sink = self._sink, None
        result = RecordingResult(
            self.path,
            self._written / RATE,
            reason,
            started_at=self.started_at,
            channels=2 if self.stereo else 1,
        )
        self._finish_cleanup(cancelled=False)
        deliver_recording(self, sink, result)

    def cleanup(self, *, cancelled: bool) -> None:
        """A cancelled recording's file is removed."""
        if self._sink is not None:
            sink, self._sink = self._sink, None
            sink.abort()
