"""Listening for conditions in what a peer says: silence, an answering machine's beep.

``<Wait silence="true" minSilence="…">`` ends once the peer has been quiet long
enough; ``<Wait beep="true">`` ends on the beep of a voicemail greeting.  The
detectors are sans-IO (:class:`SilenceDetector`, :class:`BeepDetector`: samples
and times in, a verdict out); :class:`AudioWatch` is the thin edge that listens to
a session's received audio and asks the shared 20 ms tick for the time, so that
silence is noticed even when no packet arrives, exactly on the clock.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from twisted.internet.defer import Deferred
from zope.interface import implementer

from media.audio import RATE
from media.interfaces import AudioFrame, EventFrame, IMediaListener, IMediaSession
from media.ops import SILENCE_RMS
from media.ticker import SharedTicker

__all__ = (
    "BEEP_MAX_HZ",
    "BEEP_MIN_HZ",
    "BEEP_MIN_MS",
    "BEEP_MIN_RMS",
    "BEEP_PURITY",
    "AudioWatch",
    "BeepDetector",
    "SilenceDetector",
)

#: A beep is one steady tone between these frequencies, in Hz (answering machines
#: use about 400-2,000 Hz; the telephone band ends near 3,400 Hz).
BEEP_MIN_HZ, BEEP_MAX_HZ = 300.0, 3400.0
#: ... held this long, in ms (8 frames; machine beeps last 0.2-1.5 s) ...
BEEP_MIN_MS = 160
#: ... at least this loud (RMS on the 16-bit scale, about -36 dBFS) ...
BEEP_MIN_RMS = 500.0
#: ... with this share of a frame's power within ``BEEP_BAND_HZ`` of its peak,
#: which speech (a spread of harmonics) does not reach.
BEEP_PURITY = 0.8
BEEP_BAND_HZ = 100.0
#: How far the tone may wander between frames of one beep, in Hz.
_BEEP_STEADY_HZ = 60.0
_FFT = 512

Int16Array = npt.NDArray[np.int16]


class SilenceDetector:
    """Says when the peer has been quiet (RMS under ``SILENCE_RMS``) for ``min_silence`` s.

    :param min_silence: seconds.
    :param now: when listening starts: silence from the start counts.
    """

    def __init__(self, min_silence: float, now: float) -> None:
        self.min_silence = min_silence
        self.last_voice = now

    def feed(self, samples: Int16Array, now: float) -> None:
        """Audio heard at ``now``."""
        if len(samples) and float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) >= SILENCE_RMS:
            self.last_voice = now

    def silent(self, now: float) -> bool:
        """Whether ``min_silence`` has passed since the last voice."""
        return now - self.last_voice >= self.min_silence - 1e-9


class BeepDetector:
    """Says when a steady tone (an answering machine's beep) has been heard."""

    def __init__(self) -> None:
        self._run: list[float] = []  # the peak frequency of each tonal frame in a row
        self._window = np.hanning(160)

    def tone_of(self, samples: Int16Array) -> float | None:
        """The frame's tone in Hz if it is a loud, pure tone in the beep band."""
        x = samples.astype(np.float64)
        if len(x) != len(self._window) or np.sqrt(np.mean(x**2)) < BEEP_MIN_RMS:
            return None
        power = np.abs(np.fft.rfft(x * self._window, _FFT)) ** 2
        power[0] = 0.0
        peak = int(np.argmax(power))
        hz = peak * RATE / _FFT
        band = int(BEEP_BAND_HZ * _FFT / RATE)
        share = power[max(0, peak - band) : peak + band + 1].sum() / power.sum()
        if share < BEEP_PURITY or not BEEP_MIN_HZ <= hz <= BEEP_MAX_HZ:
            return None
        return hz

    def feed(self, samples: Int16Array) -> bool:
        """Add a 20 ms frame; ``True`` once a beep has lasted :data:`BEEP_MIN_MS`."""
        hz = self.tone_of(samples)
        if hz is None or (self._run and abs(hz - self._run[0]) > _BEEP_STEADY_HZ):
            self._run = [] if hz is None else [hz]
            return False
        self._run.append(hz)
        return len(self._run) * 20 >= BEEP_MIN_MS


@implementer(IMediaListener)
class AudioWatch:
    """Listens to a session until silence or a beep; fires with ``"silence"`` or ``"beep"``.

    Cancelling (or firing) stops listening and leaves the tick.

    :param session: whose received audio to listen to.
    :param ticker: the shared tick, for the time.
    :param silence_ms: quiet time that ends the watch, or ``None``.
    :param beep: whether a beep ends it.
    """

    def __init__(
        self,
        session: IMediaSession,
        ticker: SharedTicker,
        *,
        silence_ms: int | None,
        beep: bool,
    ) -> None:
        self.session = session
        self.ticker = ticker
        now = ticker.clock.seconds()
        self.silence = SilenceDetector(silence_ms / 1000, now) if silence_ms else None
        self.beep = BeepDetector() if beep else None
        self.deferred: Deferred[str] = Deferred(lambda _: self._leave())
        session.add_listener(self)
        ticker.subscribe(self._tick)

    def _leave(self) -> None:
        self.session.remove_listener(self)
        self.ticker.unsubscribe(self._tick)

    def _end(self, what: str) -> None:
        if not self.deferred.called:
            self._leave()
            self.deferred.callback(what)

    def _tick(self, frame: int, due: float) -> None:
        if self.silence is not None and self.silence.silent(due):
            self._end("silence")

    def audio_received(self, session: IMediaSession, frame: AudioFrame) -> None:
        samples = frame.codec.decode(frame.payload)
        if self.silence is not None:
            self.silence.feed(samples, self.ticker.clock.seconds())
        if self.beep is not None and self.beep.feed(samples):
            self._end("beep")

    def event_received(self, session: IMediaSession, frame: EventFrame) -> None:
        pass

    def digit_received(self, session: IMediaSession, digit: str) -> None:
        pass
