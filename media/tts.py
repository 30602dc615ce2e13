"""Text to speech with eSpeak NG, cached, at 8 kHz.

:class:`Speaker` runs the ``espeak-ng`` binary as a child process (the text
on its stdin, a WAV on its stdout), so synthesis never blocks the reactor;
the result is resampled to 8 kHz and cached on disk and in memory by
(text, voice, language).  Plivo's ``voice`` is ``WOMAN`` or ``MAN``; it maps
to eSpeak's ``f3`` / ``m3`` variants; ``language`` is a BCP 47 tag such as
``en-US`` and becomes the eSpeak voice ``en-us``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from twisted.internet.defer import Deferred, succeed
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IReactorProcess, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from media.audio import MAX_WAV_BYTES, load_wav_8k, wav_bytes
from media.cache import ClipMemo, DiskCache, cache_key
from media.errors import MediaArgumentError, TTSError
from media.player import RunBlocking, run_synchronously

__all__ = ("MAX_TEXT_CHARS", "VOICES", "Speaker")

#: Longest text we synthesise, in characters (Plivo's Speak allows 3,000 per element).
MAX_TEXT_CHARS = 5000
#: Plivo voice names to eSpeak NG variants.
VOICES = {"WOMAN": "f3", "MAN": "m3"}
#: Largest stderr kept for an error message, in bytes.
_MAX_STDERR = 4096
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,3}$")

Int16Array = npt.NDArray[np.int16]


class _Synthesis(ProcessProtocol):
    def __init__(self, text: bytes, max_bytes: int) -> None:
        self.text = text
        self.max_bytes = max_bytes
        self.stdout: list[bytes] = []
        self.size = 0
        self.stderr = b""
        self.too_large = False
        self.done: Deferred[bytes] = Deferred(self._cancel)

    def connectionMade(self) -> None:
        assert self.transport is not None  # noqa: S101 -- set by spawnProcess
        self.transport.write(self.text)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            self.too_large = True
            self._kill()
            return
        self.stdout.append(data)

    def errReceived(self, data: bytes) -> None:
        self.stderr = (self.stderr + data)[:_MAX_STDERR]

    def _kill(self) -> None:
        try:
            if self.transport is not None:
                self.transport.signalProcess("KILL")
        except Exception:  # noqa: S110 -- already gone
            pass

    def _cancel(self, _: Deferred[bytes]) -> None:
        self._kill()

    def processEnded(self, reason: Failure) -> None:
        if self.done.called:
            return
        if self.too_large:
            self.done.errback(TTSError(f"speak: eSpeak NG output over {self.max_bytes} bytes"))
        elif reason.check(ProcessDone):
            self.done.callback(b"".join(self.stdout))
        else:
            code = reason.value.exitCode if reason.check(ProcessTerminated) else None
            message = self.stderr.decode("utf-8", "replace").strip()
            self.done.errback(TTSError(f"speak: eSpeak NG exited with {code}: {message}"))


class Speaker:
    """Synthesises speech with the ``espeak-ng`` binary, with bounded caches.

    :param reactor: spawns the process.
    :param clock: for the synthesis timeout.
    :param cache_dir: where synthesised 8 kHz WAVs are kept.
    :param binary: the eSpeak NG executable (looked up on ``PATH``).
    :param timeout: seconds a synthesis may take before it is killed.
    :param run_blocking: runs decoding and disk I/O off the reactor thread.
    :param cache_bytes: disk cache bound, in bytes.
    :param memory_entries: synthesised clips kept in memory.
    """

    def __init__(
        self,
        *,
        reactor: IReactorProcess,
        clock: IReactorTime,
        cache_dir: Path,
        binary: str = "espeak-ng",
        timeout: float = 30.0,
        run_blocking: RunBlocking = run_synchronously,
        cache_bytes: int = 256 * 1024 * 1024,
        memory_entries: int = 64,
    ) -> None:
        self.reactor = reactor
        self.clock = clock
        self.binary = binary
        self.timeout = timeout
        self._run = run_blocking
        self.disk = DiskCache(cache_dir, max_bytes=cache_bytes, suffix=".wav")
        self.memo = ClipMemo(max_entries=memory_entries, max_bytes=64 * 1024 * 1024)
        #: Processes started (cache misses).
        self.syntheses = 0

    def voice_for(self, voice: str, language: str) -> str:
        """The eSpeak voice argument, e.g. ``en-us+f3``.

        :raises MediaArgumentError: for an unknown voice or a malformed language.
        """
        variant = VOICES.get(voice.upper())
        if variant is None:
            raise MediaArgumentError(f"voice: must be WOMAN or MAN, got {voice!r}")
        if not _LANGUAGE.match(language):
            raise MediaArgumentError(f"language: must be a tag like en-US, got {language!r}")
        return f"{language.lower()}+{variant}"

    def synthesize(
        self, text: str, *, voice: str = "WOMAN", language: str = "en-US"
    ) -> Deferred[Int16Array]:
        """8 kHz samples of ``text`` spoken.

        :raises MediaArgumentError: (synchronously) for empty or too long text,
            or a bad voice or language.
        :returns: a cancellable Deferred (cancelling kills the process); it
            fails with :class:`TTSError`.
        """
        if not text.strip():
            raise MediaArgumentError("text: must not be empty")
        if len(text) > MAX_TEXT_CHARS:
            raise MediaArgumentError(f"text: at most {MAX_TEXT_CHARS} characters, got {len(text)}")
        espeak_voice = self.voice_for(voice, language)
        key = cache_key(text, voice.upper(), language.lower())
        clip = self.memo.get(key)
        if clip is not None:
            return succeed(clip)
        if self.disk.meta(key) is not None:
            d: Deferred[bytes] = self._run(self.disk.read, key)
            return d.addCallback(lambda data: self._decoded(key, data))
        return self._spawn(text, espeak_voice).addCallback(self._decoded_new, key, text)

    def _spawn(self, text: str, espeak_voice: str) -> Deferred[bytes]:
        executable = shutil.which(self.binary)
        if executable is None:
            return _failed(TTSError(f"speak: eSpeak NG binary {self.binary!r} not found"))
        self.syntheses += 1
        protocol = _Synthesis(text.encode("utf-8"), MAX_WAV_BYTES)
        args = [executable, "-v", espeak_voice, "-b", "1", "--stdin", "--stdout"]
        self.reactor.spawnProcess(protocol, executable, args, env={})
        d = protocol.done
        d.addTimeout(self.timeout, self.clock)

        def timed_out(failure: Failure) -> Failure:
            if failure.check(DeferredTimeoutError):
                return Failure(TTSError(f"speak: eSpeak NG took over {self.timeout} s"))
            return failure

        return d.addErrback(timed_out)

    def _decoded_new(self, wav: bytes, key: str, text: str) -> Deferred[Int16Array]:
        d: Deferred[Int16Array] = self._run(load_wav_8k, wav)

        def store(samples: Int16Array) -> Deferred[Int16Array]:
            if len(samples) == 0:
                raise TTSError(f"speak: eSpeak NG produced no audio for {text[:40]!r}")
            self.memo.put(key, samples)
            meta = {"text": text[:200], "samples": len(samples)}
            stored: Deferred[None] = self._run(self.disk.write, key, wav_bytes(samples), meta)
            return stored.addCallback(lambda _: samples)

        return d.addCallback(store)

    def _decoded(self, key: str, data: bytes) -> Deferred[Int16Array]:
        d: Deferred[Int16Array] = self._run(load_wav_8k, data)

        def keep(samples: Int16Array) -> Int16Array:
            self.memo.put(key, samples)
            return samples

        return d.addCallback(keep)


def _failed(error: Exception) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.errback(error)
    return d
