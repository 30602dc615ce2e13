"""Audio files to play: WAV or MP3 bytes to 8 kHz mono 16-bit samples.

What a file is comes from its first bytes, not its name or Content-Type (a CDN
serving ``application/octet-stream`` is common): ``RIFF…WAVE`` is WAV, decoded
by :func:`media.audio.decode_wav`; an ``ID3`` tag or an MPEG audio frame header
is MP3, decoded by libsndfile (its mpg123) through ``soundfile``, block by block,
each block mixed to mono and resampled as it comes (:class:`~media.audio.Resampler`),
so a long 48 kHz stereo file never sits whole in memory as floats.

Everything here is blocking CPU work: callers run it off the reactor thread
(:class:`~media.player.AudioLoader` uses its ``run_blocking``).
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import soundfile

from media.audio import MAX_RATE, MIN_RATE, RATE, Resampler, decode_wav, to_int16
from media.errors import AudioFormatError

__all__ = ("MAX_PLAY_SECONDS", "decode_audio_8k", "sniff")

Int16Array = npt.NDArray[np.int16]

#: Longest clip decoded for Play, in seconds [ours]: one hour is 57.6 MB of 8 kHz
#: samples in memory; a longer file is refused rather than cut.
MAX_PLAY_SECONDS = 3600
#: Frames decoded per block: about 1.4 s of 48 kHz audio.
_BLOCK = 65536


def sniff(data: bytes) -> str | None:
    """``"wav"``, ``"mp3"`` or ``None``, from a file's first bytes."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:3] == b"ID3":
        return "mp3"
    # An MPEG audio frame: 11 sync bits, a version other than "reserved", layer I-III.
    frame = len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0
    if frame and (data[1] >> 3) & 0x03 != 0x01 and (data[1] >> 1) & 0x03 != 0:
        return "mp3"
    return None


def decode_audio_8k(data: bytes, max_seconds: float = MAX_PLAY_SECONDS) -> Int16Array:
    """Decode a WAV or MP3 file to 8 kHz mono 16-bit samples.

    :param data: the whole file.
    :param max_seconds: longest audio accepted.
    :raises AudioFormatError: naming the format and the rule: not WAV or MP3,
        undecodable, an unsupported rate, or longer than ``max_seconds``.
    """
    kind = sniff(data)
    if kind == "wav":
        mono, rate = decode_wav(data)
        if len(mono) > max_seconds * rate:
            raise AudioFormatError(
                f"wav: at most {max_seconds:.0f} s of audio, got {len(mono) / rate:.0f} s"
            )
        resampler = Resampler(rate, RATE)
        return to_int16(np.concatenate([resampler.feed(mono), resampler.flush()]))
    if kind == "mp3":
        return _decode_mp3(data, max_seconds)
    raise AudioFormatError(
        f"audio format: must be WAV (RIFF/WAVE) or MP3; got {len(data)} bytes starting {data[:8]!r}"
    )


def _decode_mp3(data: bytes, max_seconds: float) -> Int16Array:
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as f:
            rate = int(f.samplerate)
            if not MIN_RATE <= rate <= MAX_RATE:
                raise AudioFormatError(
                    f"mp3 sample rate: must be {MIN_RATE}-{MAX_RATE} Hz, got {rate}"
                )
            resampler = Resampler(rate, RATE)
            limit = int(max_seconds * rate)
            parts: list[npt.NDArray[np.float64]] = []
            decoded = 0
            for block in f.blocks(blocksize=_BLOCK, dtype="float32", always_2d=True):
                decoded += len(block)
                if decoded > limit:
                    raise AudioFormatError(
                        f"mp3: at most {max_seconds:.0f} s of audio; this one is longer"
                    )
                mono = block.mean(axis=1, dtype=np.float64) * 32768.0
                parts.append(resampler.feed(mono))
            parts.append(resampler.flush())
    except AudioFormatError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioFormatError(f"mp3: cannot be decoded ({exc})") from None
    if decoded == 0:
        raise AudioFormatError("mp3: holds no audio frames")
    return to_int16(np.concatenate(parts))
