"""Recording files: the thread-pool sink, both directions of a session, Wait's detectors.

Timing runs on a ``task.Clock``; files are real WAV and MP3 files read back with
soundfile and checked by content (a tone's frequency, its length).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock

from media.bridge import MediaBridge
from media.detect import BeepDetector
from media.encoder import AudioFileFormat, FileSink
from media.errors import MediaError
from media.g711 import Codec
from media.inband import tone
from media.interfaces import RecordEnd
from media.ticker import SharedTicker

from .helpers import REMOTE, advance_to, make_session, rtp


class Pool:
    """A ``run_blocking`` that runs jobs only when told: the pool's queue, in the open."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]] = []

    def __call__(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.jobs.append((f, args, d))
        return d

    def run_all(self) -> None:
        for _ in range(1000):
            if not self.jobs:
                return
            f, args, d = self.jobs.pop(0)
            maybeDeferred(f, *args).chainDeferred(d)


def strongest_hz(samples: npt.NDArray[Any]) -> float:
    spectrum = np.abs(np.fft.rfft(np.asarray(samples, dtype=np.float64)))
    spectrum[0] = 0
    return float(np.argmax(spectrum)) * 8000 / len(samples)


def test_sink_writes_in_order_one_job_at_a_time_and_bounds_its_backlog(tmp_path: Path) -> None:
    pool = Pool()
    sink = FileSink(
        tmp_path / "a.wav", AudioFileFormat.WAV, 1, run_blocking=pool, max_backlog_seconds=3
    )
    second = np.full(8000, 1000, np.int16)
    assert sink.write(second)  # a whole second: handed to the pool
    assert sink.write(second * 2)
    assert len(pool.jobs) == 1  # only the open runs; the writes wait their turn
    assert sink.write(second * 3)
    assert not sink.write(second)  # 3 s waiting: refused
    pool.run_all()
    assert sink.write(second[:10])  # the pool caught up
    closed = sink.close()
    pool.run_all()
    assert closed.result == 3 * 8000 + 10
    data, rate = soundfile.read(tmp_path / "a.wav", dtype="int16")
    assert (rate, len(data)) == (8000, 3 * 8000 + 10)
    assert [int(data[i * 8000]) for i in range(4)] == [1000, 2000, 3000, 1000]


def test_a_write_error_fails_the_close_and_leaves_no_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    sink = FileSink(blocker / "a.mp3", AudioFileFormat.MP3, 2, run_blocking=maybeDeferred)
    assert not sink.write(np.zeros((8000, 2), np.int16))
    failure = []
    sink.close().addErrback(failure.append)
    assert failure[0].check(MediaError)
    assert "a.mp3" in failure[0].getErrorMessage()


class Far:
    """The peer of a session: sends 20 ms PCMU packets of a tone, timestamped."""

    def __init__(self, session: Any, hz: float, ssrc: int = 0x1234) -> None:
        self.session, self.ssrc, self.seq, self.ts = session, ssrc, 1, 90000
        self.frames = Codec.PCMU.encode(tone((hz,), 8000, amplitude=8000))

    def send(self, count: int = 1, *, ts: int | None = None) -> None:
        for _ in range(count):
            k = (self.seq - 1) % 50
            payload = self.frames[k * 160 : k * 160 + 160]
            packet = rtp(0, self.seq, self.ts if ts is None else ts, payload, ssrc=self.ssrc)
            self.session.datagramReceived(packet, REMOTE)
            self.seq += 1
            self.ts += 160


def talk(clock: Clock, far: Far, seconds: float) -> None:
    """The far end talks for ``seconds``, one packet every 20 ms on the clock."""
    for _ in range(round(seconds / 0.02)):
        far.send()
        advance_to(clock, clock.seconds() + 0.02)


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_both_directions_stereo_until_stopped(clock: Clock, tmp_path: Path, fmt: str) -> None:
    session, _ = make_session(clock)
    path = tmp_path / f"call.{fmt}"
    recording = session.record_call(path=path, file_format=fmt, stereo=True)
    session.play_audio(tone((1000.0,), 8000, amplitude=8000))  # what the peer hears: 1 s
    talk(clock, Far(session, 440.0), 2.0)  # what the peer says: 2 s of 440 Hz
    session.stop_recording()
    session.close()
    result = recording.result
    assert result.reason is RecordEnd.STOPPED
    assert result.channels == 2
    assert result.duration == pytest.approx(2.0, abs=0.03)
    data, rate = soundfile.read(path, dtype="int16", always_2d=True)
    assert (rate, data.shape[1]) == (8000, 2)
    assert len(data) / 8000 == pytest.approx(2.0, abs=0.03)
    left, right = data[:, 0], data[:, 1]
    assert strongest_hz(left[2000:14000]) == pytest.approx(440, abs=2)
    assert strongest_hz(right[1000:7000]) == pytest.approx(1000, abs=2)
    # The played second is over at 1 s: silence after it on the right.
    assert np.sqrt(np.mean(right[9000:15000].astype(float) ** 2)) < 100


def test_mono_mixes_both_and_ends_at_its_limit_exactly(clock: Clock, tmp_path: Path) -> None:
    session, _ = make_session(clock)
    path = tmp_path / "call.wav"
    recording = session.record_call(path=path, stereo=False, max_length=1.5)
    session.play_audio(tone((1000.0,), 16000, amplitude=6000))
    far = Far(session, 440.0)
    while not recording.called and clock.seconds() < 3:
        far.send()
        advance_to(clock, clock.seconds() + 0.02)
    assert recording.result.reason is RecordEnd.MAX_LENGTH
    # Written 200 ms behind the present: the limit is reached 1.7 s in.
    assert clock.seconds() == pytest.approx(1.5 + 0.2, abs=0.021)
    data, _ = soundfile.read(path, dtype="int16")
    assert len(data) == 12000
    spectrum = np.abs(np.fft.rfft(data[2000:10000].astype(float)))
    peaks = sorted(int(i) for i in np.argsort(spectrum)[-2:])
    assert peaks == [440, 1000]  # 8,000 samples: 1 Hz per bin
    session.close()


def test_closing_the_session_keeps_the_recording(clock: Clock, tmp_path: Path) -> None:
    session, _ = make_session(clock)
    recording = session.record_call(path=tmp_path / "call.wav")
    talk(clock, Far(session, 440.0), 1.0)
    session.close()
    assert recording.result.reason is RecordEnd.CLOSED
    assert recording.result.duration == pytest.approx(1.0, abs=0.03)


def test_jitter_is_absorbed_and_timestamps_rule_over_arrival(clock: Clock, tmp_path: Path) -> None:
    session, _ = make_session(clock)
    path = tmp_path / "call.wav"
    recording = session.record_call(path=path, stereo=True)
    far = Far(session, 440.0)
    # A burst: 10 packets (200 ms) arrive together after 200 ms of nothing.
    advance_to(clock, 0.2)
    far.send(10)
    advance_to(clock, 0.4)
    # One packet 100 ms late: placed by its timestamp, before the next ones.
    late_ts = far.ts
    far.ts += 160
    far.send(4)
    far.send(1, ts=late_ts)
    advance_to(clock, 1.0)
    session.stop_recording()
    left = soundfile.read(path, dtype="int16", always_2d=True)[0][:, 0]
    loud = np.abs(left.astype(int)) > 2000
    heard = [bool(loud[i : i + 160].any()) for i in range(0, len(left) - 160, 160)]
    # The burst is anchored where its first packet arrived (0.2 s, less its 20 ms)
    # and laid out by timestamp from there; the late packet fills its place.
    assert heard[:9] == [False] * 9
    assert heard[9:24] == [True] * 15
    assert not any(heard[24:])
    assert recording.result.duration == pytest.approx(1.0, abs=1e-9)
    session.close()


def test_a_bridged_call_records_both_parties(clock: Clock, tmp_path: Path) -> None:
    ticker = SharedTicker(clock=clock)
    a, _ = make_session(clock, ticker=ticker)
    b, _ = make_session(clock, ticker=ticker)
    MediaBridge(a, b).start()
    path = tmp_path / "bridge.wav"
    recording = a.record_call(path=path, stereo=True)
    caller, callee = Far(a, 440.0), Far(b, 700.0, ssrc=0x9999)
    for _ in range(50):
        caller.send()
        callee.send()  # relayed to the caller: what the caller hears
        advance_to(clock, clock.seconds() + 0.02)
    a.stop_recording()
    data, _ = soundfile.read(path, dtype="int16", always_2d=True)
    assert strongest_hz(data[1000:7000, 0]) == pytest.approx(440, abs=2)
    assert strongest_hz(data[1000:7000, 1]) == pytest.approx(700, abs=2)
    assert recording.result.duration == pytest.approx(1.0, abs=0.03)
    a.close()
    b.close()


# -- Wait's detectors --------------------------------------------------------------------


def test_silence_fires_exactly_min_silence_after_the_last_voice(clock: Clock) -> None:
    session, _ = make_session(clock)
    advance_to(clock, 0.1)
    watching = session.watch(silence_ms=1500)
    far = Far(session, 440.0)
    talk(clock, far, 0.5)  # voice until 0.58 s (the last packet arrives at 0.58)
    last_voice = clock.seconds() - 0.02
    while not watching.called and clock.seconds() < 5:
        advance_to(clock, clock.seconds() + 0.02)  # nothing arrives: silence all the same
    assert watching.result == "silence"
    assert clock.seconds() == pytest.approx(last_voice + 1.5, abs=1e-9)
    session.close()


def test_silence_from_the_start_counts(clock: Clock) -> None:
    session, _ = make_session(clock)
    watching = session.watch(silence_ms=300)
    advance_to(clock, 0.299)
    assert not watching.called
    advance_to(clock, 0.30)
    assert watching.result == "silence"
    session.close()


def test_a_beep_ends_the_watch_after_160_ms_and_speech_does_not(clock: Clock) -> None:
    session, _ = make_session(clock)
    watching = session.watch(beep=True)
    rng = np.random.default_rng(7)
    t = np.arange(160 * 50) / 8000
    speech = sum(
        3000 / k * np.sin(2 * np.pi * 140 * k * t + rng.uniform(0, 6)) for k in range(1, 20)
    )
    far = Far(session, 440.0)
    far.frames = Codec.PCMU.encode(np.asarray(speech, dtype=np.int16))
    talk(clock, far, 1.0)
    assert not watching.called
    far.frames = Codec.PCMU.encode(tone((1000.0,), 8000, amplitude=8000))
    far.seq = 1
    sent = 0
    while not watching.called and sent < 20:
        far.send()
        sent += 1
    assert (watching.result, sent) == ("beep", 8)
    session.close()


def test_beep_detector_wants_a_steady_tone() -> None:
    detector = BeepDetector()
    wobbly = [tone((hz,), 160, amplitude=8000) for hz in (800, 1000, 800, 1000) * 3]
    assert not any(detector.feed(frame) for frame in wobbly)
    quiet = tone((1000.0,), 160, amplitude=300)
    assert detector.tone_of(quiet) is None
    assert detector.tone_of(tone((4000.0 - 100,), 160, amplitude=8000)) is None
