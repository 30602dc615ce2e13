"""Recording files written as the audio comes: WAV or MP3, encoded off the reactor thread.

A :class:`FileSink` takes 16-bit frames on the reactor thread and hands them, a
second at a time, to ``run_blocking`` (the reactor's thread pool in production),
one job after the other, so the file (a ``soundfile.SoundFile``: libsndfile, with
LAME for MP3) is only ever touched by one thread at a time and the encoding of a
four-hour call is spread over the call instead of waiting at its end.  Closing
hands over the last partial second and fires once the file is complete.

If the pool falls behind by more than :data:`MAX_BACKLOG_SECONDS` (a stuck disk),
:meth:`FileSink.write` says so and the recording is stopped rather than let its
memory grow; a write error (disk full) is kept and reported by :meth:`FileSink.close`.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from media.audio import RATE
from media.errors import MediaArgumentError, MediaError
from media.player import RunBlocking

__all__ = (
    "ENCODE_CHUNK_SECONDS",
    "MAX_BACKLOG_SECONDS",
    "MP3_COMPRESSION_LEVEL",
    "AudioFileFormat",
    "FileSink",
    "open_audio_file",
)

#: Audio handed to the pool per job, in seconds.
ENCODE_CHUNK_SECONDS = 1.0
#: Audio a file may have waiting for the pool before its recording is stopped, in
#: seconds [ours]: 60 s of 8 kHz stereo is 1.9 MB per recording.
MAX_BACKLOG_SECONDS = 60.0
#: libsndfile's MP3 compression level (0 best quality to 1 smallest), at a constant
#: bit rate: 0.5 is 32 kbit/s at 8 kHz, 240 kB per minute, mono or stereo.
MP3_COMPRESSION_LEVEL = 0.5

Int16Array = npt.NDArray[np.int16]


class AudioFileFormat(enum.Enum):
    """What a recording is written as; the value is the file extension."""

    WAV = "wav"
    MP3 = "mp3"

    @classmethod
    def parse(cls, name: str) -> AudioFileFormat:
        """``wav`` or ``mp3``; anything else raises :class:`MediaArgumentError`."""
        try:
            return cls(name)
        except ValueError:
            raise MediaArgumentError(f"file_format: must be wav or mp3, got {name!r}") from None

    @property
    def content_type(self) -> str:
        """The MIME type files of this format are served with."""
        return "audio/mpeg" if self is AudioFileFormat.MP3 else "audio/wav"


def open_audio_file(path: Path, fmt: AudioFileFormat, channels: int) -> Any:
    """Create ``path`` as an 8 kHz 16-bit WAV, or a constant-rate MP3 (blocking)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt is AudioFileFormat.MP3:
        return soundfile.SoundFile(
            str(path), "w", samplerate=RATE, channels=channels, format="MP3",
            subtype="MPEG_LAYER_III", compression_level=MP3_COMPRESSION_LEVEL,
            bitrate_mode="CONSTANT",
        )  # fmt: skip
    return soundfile.SoundFile(
        str(path), "w", samplerate=RATE, channels=channels, format="WAV", subtype="PCM_16"
    )


class FileSink:
    """Appends 8 kHz 16-bit frames to an audio file through a thread pool, in order.

    :param path: the file to create.
    :param fmt: WAV or MP3.
    :param channels: 1 (mono) or 2 (stereo: frames are ``(n, 2)`` arrays).
    :param run_blocking: runs ``f(*args)`` off the reactor thread, returning a Deferred.
    :param chunk_seconds: audio per job.
    :param max_backlog_seconds: audio allowed to wait for the pool.
    """

    def __init__(
        self,
        path: Path,
        fmt: AudioFileFormat,
        channels: int,
        *,
        run_blocking: RunBlocking,
        chunk_seconds: float = ENCODE_CHUNK_SECONDS,
        max_backlog_seconds: float = MAX_BACKLOG_SECONDS,
    ) -> None:
        if channels not in (1, 2):
            raise ValueError(f"channels: must be 1 or 2, got {channels}")
        self.path = path
        self.format = fmt
        self.channels = channels
        self._run = run_blocking
        self._chunk = int(chunk_seconds * RATE)
        self._max_backlog = int(max_backlog_seconds * RATE)
        self._pending: list[Int16Array] = []
        self._pending_frames = 0
        #: Frames handed to the pool and not yet written.
        self._in_flight = 0
        #: Frames accepted so far (the recording's length).
        self.frames = 0
        self.failure: Failure | None = None
        self.closed = False
        self._file: Any = None
        self._tail: Deferred[None] = succeed(None)
        self._enqueue(self._open)

    # -- the reactor's side ------------------------------------------------------------

    def write(self, frames: Int16Array) -> bool:
        """Queue frames; ``False`` if the sink failed or the pool is too far behind."""
        if self.closed or self.failure is not None:
            return False
        if self._in_flight + self._pending_frames + len(frames) > self._max_backlog:
            return False
        if len(frames):
            self._pending.append(frames)
            self._pending_frames += len(frames)
            self.frames += len(frames)
        if self._pending_frames >= self._chunk:
            self._submit()
        return True

    def close(self) -> Deferred[int]:
        """Write what is queued and close the file; fires with the frames written,
        or fails (the file removed) if any write failed."""
        if self.closed:
            raise RuntimeError("sink: already closed")
        self.closed = True
        self._submit()
        self._enqueue(self._close)
        done: Deferred[int] = Deferred()

        def over(_: object) -> None:
            if self.failure is None:
                done.callback(self.frames)
                return
            self._enqueue(self._remove)
            self._tail.addCallback(lambda _: done.errback(self.failure))

        self._tail.addCallback(over)
        return done

    def abort(self) -> Deferred[None]:
        """Close and remove the file (a cancelled recording)."""
        self.closed = True
        self._pending, self._pending_frames = [], 0
        self._enqueue(self._close)
        self._enqueue(self._remove)
        done: Deferred[None] = Deferred()
        self._tail.addCallback(lambda _: done.callback(None))
        return done

    def _submit(self) -> None:
        if not self._pending:
            return
        block = np.concatenate(self._pending)
        self._pending, self._pending_frames = [], 0
        self._in_flight += len(block)

        def written(_: object) -> None:
            self._in_flight -= len(block)

        self._enqueue(self._write, block).addCallback(written)

    def _enqueue(self, fn: Any, *args: Any) -> Deferred[None]:
        """Run ``fn(*args)`` in the pool after every job queued before it."""
        step: Deferred[None] = Deferred()

        def run(_: object) -> Deferred[None]:
            if self.failure is not None and fn not in (self._close, self._remove):
                step.callback(None)
                return step
            d: Deferred[None] = self._run(fn, *args)
            d.addErrback(self._failed)
            d.addBoth(lambda _: step.callback(None))
            return d

        self._tail.addCallback(run)
        return step

    def _failed(self, failure: Failure) -> None:
        if self.failure is None:
            self.failure = Failure(MediaError(f"recording {self.path.name}: {failure.value}"))

    # -- the pool's side (blocking) ----------------------------------------------------

    def _open(self) -> None:
        self._file = open_audio_file(self.path, self.format, self.channels)

    def _write(self, block: Int16Array) -> None:
        if self._file is None:
            return
        if self.format is AudioFileFormat.MP3:
            # libsndfile 1.2's 16-bit path into LAME garbles blocks written one after
            # another (levels off, one channel leaking into the other); its float
            # path is exact.  docs/audio.md has the measurement.
            self._file.write(block.astype(np.float32) / np.float32(32768.0))
        else:
            self._file.write(block)

    def _close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            file.close()

    def _remove(self) -> None:
        self.path.unlink(missing_ok=True)
