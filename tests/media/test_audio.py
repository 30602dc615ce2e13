"""WAV decoding (any PCM rate, width, channel count) and resampling to 8 kHz."""

from __future__ import annotations

import io
import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from media.audio import WavWriter, decode_wav, load_wav_8k, resample, wav_bytes
from media.errors import AudioFormatError
from media.g711 import alaw_encode, ulaw_encode


def sine(freq: float, rate: int, seconds: float = 1.0, amp: float = 10000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def wav_file(samples: np.ndarray, rate: int, width: int = 2, channels: int = 1) -> bytes:
    """A WAV written by the standard library's ``wave`` module (an independent writer)."""
    ints = np.round(samples).astype(np.int64)
    if channels > 1:
        ints = np.repeat(ints, channels)
    if width == 1:
        raw = (ints // 256 + 128).astype(np.uint8).tobytes()
    elif width == 2:
        raw = ints.astype("<i2").tobytes()
    elif width == 3:
        v = (ints * 256).astype("<i4")
        raw = b"".join(int(x).to_bytes(4, "little", signed=True)[:3] for x in v)
    else:
        raw = (ints * 65536).astype("<i4").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(raw)
    return buf.getvalue()


def dominant_hz(samples: np.ndarray, rate: int = 8000) -> float:
    seg = samples[len(samples) // 4 : 3 * len(samples) // 4].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    return float(np.argmax(spectrum) * rate / len(seg))


def peak(samples: np.ndarray) -> float:
    seg = samples[len(samples) // 4 : 3 * len(samples) // 4].astype(np.float64)
    return float(np.sqrt(2 * np.mean(seg**2)))


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000])
@pytest.mark.parametrize(("width", "channels"), [(1, 1), (2, 1), (2, 2), (3, 1), (4, 2)])
def test_any_pcm_wav_becomes_8k_mono(rate: int, width: int, channels: int) -> None:
    out = load_wav_8k(wav_file(sine(1000.0, rate), rate, width, channels))
    assert out.dtype == np.int16
    assert len(out) == 8000
    assert dominant_hz(out) == pytest.approx(1000.0, abs=2.0)
    tolerance = 0.05 if width == 1 else 0.01  # 8-bit samples are coarse
    assert peak(out) == pytest.approx(10000.0, rel=tolerance)


@pytest.mark.parametrize("rate", [16000, 22050, 44100, 48000])
def test_tones_above_4khz_do_not_fold_into_the_band(rate: int) -> None:
    high = resample(sine(5000.0, rate), rate)
    assert 20 * np.log10(peak(high) / 10000.0) < -40  # 5 kHz would alias to 3 kHz


def test_upsampling_from_6khz() -> None:
    out = resample(sine(500.0, 6000), 6000)
    assert len(out) == 8000
    assert dominant_hz(out) == pytest.approx(500.0, abs=2.0)


def test_float_alaw_mulaw_and_extensible_formats() -> None:
    x = sine(440.0, 8000, 0.5)
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 32000, 4, 32)
    body = (x / 32767.0).astype("<f4").tobytes()
    floats = b"RIFF" + struct.pack("<I", 36 + len(body)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
    floats += b"data" + struct.pack("<I", len(body)) + body
    samples, rate = decode_wav(floats)
    assert rate == 8000
    assert np.allclose(samples, x, atol=1.0)
    for tag, encode in ((6, alaw_encode), (7, ulaw_encode)):
        codes = encode(x.astype(np.int16))
        fmt = struct.pack("<HHIIHH", tag, 1, 8000, 8000, 1, 8)
        data = b"RIFF\0\0\0\0WAVEfmt " + struct.pack("<I", 16) + fmt + b"data"
        data += struct.pack("<I", len(codes)) + codes
        assert peak(decode_wav(data)[0]) == pytest.approx(10000.0, rel=0.02)
    # WAVE_FORMAT_EXTENSIBLE with the PCM subformat GUID.
    pcm = x.astype("<i2").tobytes()
    guid = struct.pack("<H", 1) + bytes.fromhex("000000001000800000aa00389b71")
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 1, 8000, 16000, 2, 16, 22, 16, 4) + guid
    ext = b"RIFF\0\0\0\0WAVEfmt " + struct.pack("<I", len(fmt)) + fmt
    ext += b"LIST" + struct.pack("<I", 3) + b"abc\0"  # odd-sized chunk, padded
    ext += b"data" + struct.pack("<I", len(pcm)) + pcm
    assert np.allclose(decode_wav(ext)[0], x.astype(np.int16))


def test_streamed_wav_with_unknown_data_size() -> None:
    data = bytearray(wav_bytes(np.arange(100, dtype=np.int16)))
    data[40:44] = b"\xff\xff\xff\xff"
    assert decode_wav(bytes(data))[0].tolist() == list(range(100))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello", "wav: must start with a RIFF/WAVE header"),
        (b"RIFF\0\0\0\0WAVEdata\0\0\0\0", "wav: missing the 'fmt' chunk"),
        (
            b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0" + struct.pack("<HHIIHH", 2, 1, 8000, 0, 0, 4),
            "wav: missing the 'data' chunk",
        ),
        (
            b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0"
            + struct.pack("<HHIIHH", 2, 1, 8000, 0, 0, 4)
            + b"data\0\0\0\0",
            "wav format: supported are PCM",
        ),
        (
            b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0"
            + struct.pack("<HHIIHH", 1, 0, 8000, 0, 0, 16)
            + b"data\0\0\0\0",
            "wav channels: must be 1-8, got 0",
        ),
        (
            b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0"
            + struct.pack("<HHIIHH", 1, 1, 1000000, 0, 0, 16)
            + b"data\0\0\0\0",
            "wav sample rate: must be 4000-192000 Hz, got 1000000",
        ),
    ],
)
def test_bad_wavs_name_the_field(data: bytes, message: str) -> None:
    with pytest.raises(AudioFormatError, match=message):
        decode_wav(data)


def test_wav_writer_fixes_sizes(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    writer = WavWriter(path.open("wb"))
    writer.write(np.arange(10, dtype=np.int16))
    writer.write(np.arange(5, dtype=np.int16))
    writer.close()
    with wave.open(str(path)) as w:
        assert w.getnframes() == 15
        assert w.getframerate() == 8000


@pytest.mark.interop
def test_sox_agrees_our_wavs_are_valid(tmp_path: Path) -> None:
    path = tmp_path / "ours.wav"
    path.write_bytes(wav_bytes(sine(1000.0, 8000, 0.5).astype(np.int16)))
    info = subprocess.run(["sox", "--i", str(path)], capture_output=True, text=True, check=True)
    assert "Sample Rate    : 8000" in info.stdout
    assert "Channels       : 1" in info.stdout
    # And sox's own 44.1 kHz stereo 24-bit output decodes to the right tone.
    theirs = tmp_path / "theirs.wav"
    subprocess.run(
        [
            "sox",
            "-n",
            "-r",
            "44100",
            "-c",
            "2",
            "-b",
            "24",
            str(theirs),
            "synth",
            "1",
            "sine",
            "700",
        ],
        check=True,
    )
    assert dominant_hz(load_wav_8k(theirs.read_bytes())) == pytest.approx(700.0, abs=2.0)
