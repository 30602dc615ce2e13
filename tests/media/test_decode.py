"""Decoding files to play: WAV and MP3 to 8 kHz, by content; block resampling; limits.

MP3 fixtures are made here with soundfile (libsndfile's LAME), never committed.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import pytest_twisted
import soundfile
from treq.testing import StubTreq
from twisted.internet import reactor, task
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

from media.audio import Resampler, resample, wav_bytes
from media.decode import decode_audio_8k, sniff
from media.errors import AudioFormatError
from media.player import AudioLoader

_SYNC = SynchronousTestCase()


def mp3_bytes(hz: float, seconds: float, rate: int = 44100, channels: int = 2) -> bytes:
    """A real MP3 file of a sine tone (LAME through soundfile)."""
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    data = np.stack([mono] * channels, axis=1)
    out = io.BytesIO()
    soundfile.write(out, data, rate, format="MP3")
    return out.getvalue()


def strongest_hz(samples: npt.NDArray[np.int16]) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.argmax(spectrum)) * 8000 / len(samples)


@pytest.mark.parametrize("src", [4000, 11025, 16000, 44100, 48000])
def test_block_resampling_is_exactly_whole_resampling(src: int) -> None:
    rng = np.random.default_rng(src)
    x = rng.normal(0, 3000, size=20_011)
    resampler = Resampler(src)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 5000))
        parts.append(resampler.feed(x[i : i + n]))
        i += n
    parts.append(resampler.flush())
    assert np.array_equal(np.concatenate(parts), resample(x, src))


def test_mp3_stereo_44k_becomes_the_same_tone_at_8k() -> None:
    data = mp3_bytes(1000, 3.0)
    assert sniff(data) == "mp3"
    samples = decode_audio_8k(data)
    assert samples.dtype == np.int16
    assert len(samples) == pytest.approx(24_000, abs=80)  # 3 s, LAME's padding trimmed
    assert strongest_hz(samples[4000:12000]) == pytest.approx(1000, abs=2)
    level = float(np.sqrt(np.mean(samples[4000:12000].astype(np.float64) ** 2)))
    assert level == pytest.approx(0.5 * 32768 / np.sqrt(2), rel=0.1)


def test_mp3_at_8k_mono_and_wav_at_48k_stereo() -> None:
    assert strongest_hz(decode_audio_8k(mp3_bytes(440, 2.0, rate=8000, channels=1))[:8000]) == (
        pytest.approx(440, abs=2)
    )
    t = np.arange(48000 * 2) / 48000
    stereo = np.stack([np.sin(2 * np.pi * 700 * t)] * 2, axis=1)
    out = io.BytesIO()
    soundfile.write(out, stereo, 48000, format="WAV", subtype="PCM_24")
    samples = decode_audio_8k(out.getvalue())
    assert len(samples) == 16000
    assert strongest_hz(samples[:8000]) == pytest.approx(700, abs=2)


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b"<html>not found</html>", "must be WAV (RIFF/WAVE) or MP3"),
        (b"", "must be WAV (RIFF/WAVE) or MP3"),
        (b"ID3" + bytes(3000), "mp3: cannot be decoded"),
        (b"\xff\xfb\x90d" + bytes(range(256)) * 20, "mp3: "),
    ],
)
def test_what_is_not_audio_is_refused_naming_the_rule(data: bytes, rule: str) -> None:
    with pytest.raises(AudioFormatError, match=rule.replace("(", r"\(").replace(")", r"\)")):
        decode_audio_8k(data)


def test_a_corrupt_mp3_is_refused() -> None:
    good = mp3_bytes(1000, 2.0)
    with pytest.raises(AudioFormatError, match="mp3: cannot be decoded"):
        decode_audio_8k(good[:2000] + bytes(5000) + good[7000:])


def test_longer_than_the_limit_is_refused() -> None:
    with pytest.raises(AudioFormatError, match="mp3: at most 2 s of audio"):
        decode_audio_8k(mp3_bytes(1000, 3.0), max_seconds=2)
    with pytest.raises(AudioFormatError, match="wav: at most 2 s of audio, got 3 s"):
        decode_audio_8k(wav_bytes(np.zeros(24000, np.int16)), max_seconds=2)


class _Files(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.files = {b"/tone.mp3": mp3_bytes(1000, 1.0), b"/bad.mp3": b"\xff\xfb" + bytes(4000)}

    def render_GET(self, request: Request) -> bytes:
        return self.files[request.path]


def test_the_loader_plays_mp3_urls_and_names_the_url_of_a_bad_one(
    clock: Clock, tmp_path: Path
) -> None:
    loader = AudioLoader(clock=clock, cache_dir=tmp_path / "cache", http=StubTreq(_Files()))
    clip = _SYNC.successResultOf(loader.load("http://example.test/tone.mp3"))
    assert strongest_hz(clip[:4000]) == pytest.approx(1000, abs=2)
    bad = loader.load("http://example.test/bad.mp3")
    failure = _SYNC.failureResultOf(bad, AudioFormatError)
    assert failure.getErrorMessage().startswith("play http://example.test/bad.mp3: ")
    # Only what decodes is cached.
    assert len(list((tmp_path / "cache").glob("*.body"))) == 1


@pytest_twisted.ensureDeferred
async def test_decoding_in_the_thread_pool_leaves_the_reactor_ticking() -> None:
    """A one-minute MP3 decodes in a pool thread while a 10 ms LoopingCall keeps running."""
    data = await deferToThread(mp3_bytes, 1000, 60.0, 44100, 1)
    ticks: list[float] = []
    loop = task.LoopingCall(lambda: ticks.append(reactor.seconds()))  # type: ignore[attr-defined]
    loop.start(0.01)
    try:
        started = reactor.seconds()  # type: ignore[attr-defined]
        samples = await deferToThread(decode_audio_8k, data)
        took = reactor.seconds() - started  # type: ignore[attr-defined]
    finally:
        loop.stop()
    assert len(samples) == pytest.approx(60 * 8000, abs=100)
    assert took > 0.1  # long enough for the check below to mean something
    gaps = np.diff(ticks)
    # The reactor kept turning: no gap near the decode's length (the GIL is shared,
    # so a few tens of ms between ticks are expected on a busy machine).
    assert gaps.max() < max(0.25, took / 4), (gaps.max(), took)
    assert len(ticks) >= took / 0.01 / 4
