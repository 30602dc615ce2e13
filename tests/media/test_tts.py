"""Text to speech with eSpeak NG: argument checks, the real binary, caching, timeouts."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock

from media.errors import MediaArgumentError, TTSError
from media.tts import Speaker


def speaker(tmp_path: Path, **kw: object) -> Speaker:
    return Speaker(reactor=reactor, clock=reactor, cache_dir=tmp_path / "tts", **kw)  # type: ignore[arg-type]


def test_voice_and_language_mapping(tmp_path: Path) -> None:
    s = speaker(tmp_path)
    assert s.voice_for("WOMAN", "en-US") == "en-us+f3"
    assert s.voice_for("man", "fr-FR") == "fr-fr+m3"
    with pytest.raises(MediaArgumentError, match="voice: must be WOMAN or MAN, got 'ROBOT'"):
        s.voice_for("ROBOT", "en-US")
    with pytest.raises(MediaArgumentError, match="language: must be a tag like en-US"):
        s.voice_for("MAN", "en US; rm -rf")


def test_text_limits(tmp_path: Path) -> None:
    s = speaker(tmp_path)
    with pytest.raises(MediaArgumentError, match="text: must not be empty"):
        s.synthesize("   ")
    with pytest.raises(MediaArgumentError, match="text: at most 5000 characters"):
        s.synthesize("a" * 5001)


def test_missing_binary_is_a_tts_error(tmp_path: Path, clock: Clock) -> None:
    s = Speaker(reactor=reactor, clock=clock, cache_dir=tmp_path, binary="no-such-espeak-binary")  # type: ignore[arg-type]
    failure = s.synthesize("hello").result
    assert failure.check(TTSError)
    assert "not found" in str(failure.value)


@pytest.mark.interop
@pytest_twisted.ensureDeferred
async def test_espeak_speaks_at_8khz_and_is_cached(tmp_path: Path) -> None:
    s = speaker(tmp_path)
    samples = await s.synthesize("Press one for sales.", voice="WOMAN", language="en-US")
    assert samples.dtype == np.int16
    assert 0.8 < len(samples) / 8000 < 4.0  # a short sentence
    assert float(np.sqrt(np.mean(samples.astype(float) ** 2))) > 300  # not silence
    spectrum = np.abs(np.fft.rfft(samples.astype(float)))
    freqs = np.fft.rfftfreq(len(samples), 1 / 8000)
    assert spectrum[(freqs > 200) & (freqs < 3400)].sum() > 0.8 * spectrum.sum()
    again = await s.synthesize("Press one for sales.", voice="WOMAN", language="en-US")
    assert again is samples or np.array_equal(again, samples)
    assert s.syntheses == 1
    # A new process (restart) finds it on disk; another voice is synthesised anew.
    s2 = speaker(tmp_path)
    assert np.array_equal(await s2.synthesize("Press one for sales."), samples)
    assert s2.syntheses == 0
    man = await s2.synthesize("Press one for sales.", voice="MAN")
    assert s2.syntheses == 1
    assert not np.array_equal(man[: len(samples)], samples[: len(man)])


def fake_binary(tmp_path: Path, script: str) -> str:
    path = tmp_path / "fake-espeak"
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.interop
@pytest_twisted.ensureDeferred
async def test_failing_and_hanging_synthesis(tmp_path: Path) -> None:
    failing = speaker(tmp_path, binary=fake_binary(tmp_path, "echo broken voice >&2; exit 3"))
    with pytest.raises(TTSError, match="exited with 3: broken voice"):
        await failing.synthesize("x")
    hanging = speaker(tmp_path, binary=fake_binary(tmp_path, "exec sleep 30"), timeout=0.3)
    with pytest.raises(TTSError, match=r"took over 0.3 s"):
        await hanging.synthesize("x")
    d = speaker(tmp_path, binary=fake_binary(tmp_path, "exec sleep 30")).synthesize("y")
    d.cancel()
    with pytest.raises(CancelledError):
        await d
    assert os.path.exists(tmp_path)
