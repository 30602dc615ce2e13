"""The operations a session runs: output (play/speak/tone), digits out, collect, record.

Each operation owns a cancellable Deferred.  Its end (finished, stopped,
cancelled, session closed) goes through one method, :meth:`Operation.end`,
which runs the operation's cleanup, detaches it from the session and then fires
or fails the Deferred, so nothing is released in two places.  Time comes from
the session's 20 ms tick (``on_tick(now)``), never from timers of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import attrs
import numpy as np
import numpy.typing as npt
from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from media.audio import RATE
from media.dtmf import DtmfSender
from media.encoder import AudioFileFormat, FileSink
from media.errors import MediaArgumentError
from media.g711 import Codec
from media.inband import dtmf_tone
from media.interfaces import (
    DigitsEnd,
    DigitsResult,
    PlayOutcome,
    RecordEnd,
    RecordingResult,
)
from media.player import RunBlocking, run_synchronously
from media.sources import SAMPLES_PER_FRAME, FrameSource

__all__ = (
    "MAX_GAP_FILL",
    "SILENCE_RMS",
    "Collector",
    "DigitsOut",
    "Emit",
    "Operation",
    "Output",
    "Recording",
    "SessionCounters",
    "deliver_recording",
)

T = TypeVar("T")


class SessionCounters:
    """Packet counters of one session (plain ints, read by stats pages and tests)."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.malformed = 0
        self.foreign = 0
        self.unknown_pt = 0
        self.unexpected = 0
        self.relayed_in = 0
        self.send_errors = 0
        self.dropped_relay = 0


#: A recording treats audio below this RMS (16-bit scale, about -40 dBFS) as silence.
SILENCE_RMS = 300.0
#: Longest timestamp gap a recording fills with silence, in samples (1 s);
#: a larger jump is a discontinuity (new source, re-INVITE) and is not filled.
MAX_GAP_FILL = RATE
#: Longest recording accepted, in seconds (4 hours; 230 MB of 16-bit 8 kHz WAV).
MAX_RECORD_SECONDS = 4 * 3600.0


class Operation(Generic[T]):
    """An operation with a cancellable Deferred and one place to end it.

    :param detach: called once when the operation ends, to remove it from the session.
    """

    def __init__(self, detach: Callable[[Operation[Any]], None]) -> None:
        self._detach = detach
        self.ended = False
        self.deferred: Deferred[T] = Deferred(self._cancelled)

    def _cancelled(self, _d: Deferred[T]) -> None:
        # Deferred.cancel errbacks with CancelledError after this returns.
        self._finish_cleanup(cancelled=True)

    def _finish_cleanup(self, *, cancelled: bool) -> None:
        if self.ended:
            return
        self.ended = True
        self.cleanup(cancelled=cancelled)
        self._detach(self)

    def cleanup(self, *, cancelled: bool) -> None:
        """Release what the operation holds (overridden)."""

    def end(self, result: T) -> None:
        """Finish with ``result`` (idempotent)."""
        if self.ended:
            return
        self._finish_cleanup(cancelled=False)
        self.deferred.callback(result)

    def fail(self, failure: Failure | Exception) -> None:
        """Finish with an error (idempotent)."""
        if self.ended:
            return
        self._finish_cleanup(cancelled=True)
        self.deferred.errback(failure if isinstance(failure, Failure) else Failure(failure))


class Output(Operation[PlayOutcome]):
    """Play, speak or tone: frames from a source, which may still be loading.

    :param loading: a Deferred for the source (a file or URL being fetched, text
        being synthesised), or ``None`` when ``source`` is given.
    """

    def __init__(
        self,
        detach: Callable[[Operation[Any]], None],
        *,
        source: FrameSource | None = None,
        loading: Deferred[FrameSource] | None = None,
    ) -> None:
        super().__init__(detach)
        self.source = source
        self._loading = loading
        if loading is not None:
            loading.addCallbacks(self._loaded, self._load_failed)

    def _loaded(self, source: FrameSource) -> None:
        self._loading = None
        self.source = source

    def _load_failed(self, failure: Failure) -> None:
        self._loading = None
        if not failure.check(CancelledError):
            self.fail(failure)

    def cleanup(self, *, cancelled: bool) -> None:
        """Cancel a load still in progress."""
        if self._loading is not None:
            loading, self._loading = self._loading, None
            loading.cancel()


@attrs.frozen
class Emit:
    """A DTMF payload to send at a tick.

    :ivar payload: an RFC 4733 event payload, or an encoded in-band tone frame.
    :ivar event_frame: for an event, the tick frame whose timestamp it carries
        (the event's start); ``None`` for an in-band audio frame.
    :ivar marker: the M bit (first packet of an event).
    """

    payload: bytes
    event_frame: int | None
    marker: bool = False


class DigitsOut(Operation[None]):
    """A queued or running :class:`~media.dtmf.DtmfSender`.

    :ivar start_frame: the tick frame of the plan's frame 0, once running.
    :ivar anchor: the tick frame nearest the moment the digits were asked for, when
        nothing was queued before them: leading pauses count from it rather than
        from the next tick, so ``wwww1`` starts 2.0 s after the request to within
        half a frame instead of up to a whole frame late.
    """

    def __init__(
        self,
        detach: Callable[[Operation[Any]], None],
        sender: DtmfSender,
        anchor: int | None = None,
    ) -> None:
        super().__init__(detach)
        self.sender = sender
        self.anchor = anchor
        self.start_frame: int | None = None

    def emit(self, frame: int, telephone_event: int | None, codec: Codec) -> Emit | None:
        """What to send at tick ``frame``: an event packet (when the peer
        negotiated telephone-event), else a frame of the digit's dual tone."""
        if self.start_frame is None:
            self.start_frame = frame
            if self.anchor is not None:
                # Never so early that the first digit's first packet is already due.
                digits = self.sender.plan.digits
                lead = digits[0].start_frame if digits else 0
                self.start_frame = max(frame - lead, min(self.anchor, frame))
        k = frame - self.start_frame
        if telephone_event is not None:
            packet = self.sender.packet_at(k)
            if packet is None:
                return None
            return Emit(packet.payload, self.start_frame + packet.start_frame, packet.marker)
        digit = self.sender.digit_at(k)
        if digit is None:
            return None
        samples = dtmf_tone(digit, SAMPLES_PER_FRAME, offset=k * SAMPLES_PER_FRAME)
        return Emit(codec.encode(samples), None)

    def after(self, frame: int) -> None:
        """Finish once the plan's last frame has been sent."""
        if self.start_frame is not None and frame - self.start_frame + 1 >= self.sender.done_frame:
            self.end(None)


class Collector(Operation[DigitsResult]):
    """Plivo GetDigits: digits until max, finish key, or timeout.

    The first-digit ``timeout`` starts once no output is playing (the prompt
    has ended); each digit then allows ``digit_timeout`` for the next.
    """

    def __init__(
        self,
        detach: Callable[[Operation[Any]], None],
        *,
        max_digits: int,
        timeout: float,
        digit_timeout: float,
        finish_on_key: str,
        valid_digits: str,
        barge_in: bool,
    ) -> None:
        if not 1 <= max_digits <= 128:
            raise MediaArgumentError(f"max_digits: must be 1-128, got {max_digits}")
        if timeout <= 0 or digit_timeout <= 0:
            raise MediaArgumentError(
                f"timeout: must be over 0 s, got {timeout} and digit_timeout {digit_timeout}"
            )
        super().__init__(detach)
        self.max_digits = max_digits
        self.timeout = timeout
        self.digit_timeout = digit_timeout
        self.finish_on_key = finish_on_key
        self.valid_digits = valid_digits
        self.barge_in = barge_in
        self.digits = ""
        self.deadline: float | None = None

    def on_tick(self, now: float, output_playing: bool) -> None:
        """Start the first-digit timer when the prompt is over; time out."""
        if self.deadline is None:
            if not output_playing:
                self.deadline = now + self.timeout
            return
        if now >= self.deadline - 1e-9:
            self.end(DigitsResult(self.digits, DigitsEnd.TIMEOUT))

    def on_digit(self, digit: str, now: float) -> None:
        """Account for a key press."""
        if digit in self.finish_on_key:
            self.end(DigitsResult(self.digits, DigitsEnd.FINISH_KEY, digit))
            return
        if digit not in self.valid_digits:
            return
        self.digits += digit
        if len(self.digits) >= self.max_digits:
            self.end(DigitsResult(self.digits, DigitsEnd.MAX_DIGITS))
        else:
            self.deadline = now + self.digit_timeout

    def stop(self) -> None:
        """End now with what was collected."""
        self.end(DigitsResult(self.digits, DigitsEnd.STOPPED))


class Recording(Operation[RecordingResult]):
    """Plivo Record: the peer's audio into a mono WAV or MP3 file.

    Audio is placed by RTP timestamp: gaps up to :data:`MAX_GAP_FILL` samples
    are filled with silence, late and duplicate frames dropped.  Limits are
    checked on the 20 ms tick, so they hold even when no packet arrives.  The
    file is written through a :class:`~media.encoder.FileSink` (encoded in the
    thread pool as it comes); the Deferred fires once the file is complete.

    :param directory: where the file goes (created if missing) when no ``path``.
    :param max_length: seconds, 1 to :data:`MAX_RECORD_SECONDS`.
    :param finish_on_key: keys that end the recording.
    :param silence_timeout: seconds of silence (RMS under :data:`SILENCE_RMS`)
        that end it.
    :param path: the file to write.
    :param file_format: WAV or MP3.
    :param run_blocking: where file work runs (the reactor's thread pool).
    """

    def __init__(
        self,
        detach: Callable[[Operation[Any]], None],
        *,
        directory: Path,
        max_length: float,
        finish_on_key: str,
        silence_timeout: float,
        path: Path | None = None,
        file_format: AudioFileFormat = AudioFileFormat.WAV,
        run_blocking: RunBlocking = run_synchronously,
    ) -> None:
        if not 1 <= max_length <= MAX_RECORD_SECONDS:
            raise MediaArgumentError(
                f"max_length: must be 1-{MAX_RECORD_SECONDS:.0f} s, got {max_length}"
            )
        if silence_timeout <= 0:
            raise MediaArgumentError(f"silence_timeout: must be over 0 s, got {silence_timeout}")
        super().__init__(detach)
        self.directory = directory
        self.format = file_format
        self.path = path or directory / f"{uuid.uuid4().hex}.{file_format.value}"
        self.max_length = max_length
        self.finish_on_key = finish_on_key
        self.silence_timeout = silence_timeout
        self.started_at: float | None = None
        self._run = run_blocking
        self._last_voice = 0.0
        self._sink: FileSink | None = None
        self._next_ts: int | None = None
        self._max_samples = int(max_length * RATE)
        #: The beep played before recording starts, if any.
        self.beep: Deferred[Any] | None = None

    @property
    def recording(self) -> bool:
        """Whether audio is being written (after the beep)."""
        return self._sink is not None

    def _open(self) -> FileSink:
        return FileSink(self.path, self.format, 1, run_blocking=self._run)

    def start(self, now: float) -> None:
        """Open the file and start taking audio."""
        self._sink = self._open()
        self.started_at = now
        self._last_voice = now

    def feed(self, samples: npt.NDArray[np.int16], timestamp: int, now: float) -> None:
        """Add decoded audio of one packet."""
        sink = self._sink
        if sink is None or self.ended:
            return
        if self._next_ts is not None:
            gap = ((timestamp - self._next_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            if gap < 0:
                return  # late or duplicate
            if gap <= MAX_GAP_FILL:
                samples = np.concatenate([np.zeros(gap, dtype=np.int16), samples])
        self._next_ts = (timestamp + len(samples)) & 0xFFFFFFFF
        room = self._max_samples - sink.frames
        if not sink.write(samples[:room]):
            self._finish(RecordEnd.STOPPED)  # the disk cannot keep up: keep what we have
            return
        if float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) >= SILENCE_RMS:
            self._last_voice = now
        if sink.frames >= self._max_samples:
            self._finish(RecordEnd.MAX_LENGTH)

    def on_tick(self, now: float) -> None:
        """End on maximum length or silence."""
        if self.started_at is None:
            return
        if now - self.started_at >= self.max_length - 1e-9:
            self._finish(RecordEnd.MAX_LENGTH)
        elif now - self._last_voice >= self.silence_timeout - 1e-9:
            self._finish(RecordEnd.SILENCE)

    def on_digit(self, digit: str) -> None:
        """End on a finish key (once recording has started)."""
        if self.started_at is not None and digit in self.finish_on_key:
            self._finish(RecordEnd.FINISH_KEY, digit)

    def stop(self, reason: RecordEnd = RecordEnd.STOPPED) -> None:
        """End now, keeping what was recorded."""
        self._finish(reason)

    def _finish(self, reason: RecordEnd, digits: str = "") -> None:
        if self.ended:
            return
        # Stopped during the beep: an empty, valid file.
        sink = self._sink or self._open()
        self._sink = None
        result = RecordingResult(
            self.path, sink.frames / RATE, reason, digits, started_at=self.started_at or 0.0
        )
        self._finish_cleanup(cancelled=False)  # detached: no more audio
        deliver_recording(self, sink, result)

    def cleanup(self, *, cancelled: bool) -> None:
        """Stop the beep; a cancelled recording's file is removed."""
        if self.beep is not None and not self.beep.called:
            self.beep.cancel()
        if self._sink is not None:
            sink, self._sink = self._sink, None
            sink.abort()


def deliver_recording(
    op: Operation[RecordingResult], sink: FileSink, result: RecordingResult
) -> None:
    """Close ``sink``, then fire ``op``'s Deferred with ``result`` (or the write error).

    Cancelled meanwhile: the Deferred has failed already; the file is removed.
    """

    def closed(_: int) -> None:
        if op.deferred.called:
            result.path.unlink(missing_ok=True)
        else:
            op.deferred.callback(result)

    def failed(failure: Failure) -> None:
        if not op.deferred.called:
            op.deferred.errback(failure)

    sink.close().addCallbacks(closed, failed)
