"""What a conference plays: Plivo's ``beep:1``/``beep:2`` and Play/Speak/Wait prompts.

``enterSound``, ``exitSound`` and ``waitSound`` are either a beep or a URL whose
document holds ``<Play>``, ``<Speak>`` and ``<Wait>`` (the executor fetched and
parsed it into prompts).  The room needs plain 8 kHz samples to mix, so
:func:`render` turns the prompts into one clip: files and URLs through the media
engine's loader, text through eSpeak NG, waits as silence, each repeated ``loop``
times.  A prompt that cannot be loaded is logged and left out, as Plivo ignores
what it cannot play; the clip is cut at :data:`MAX_SOUND_SECONDS`.
"""

from __future__ import annotations

import functools
from typing import Protocol

import numpy as np
import numpy.typing as npt
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from media import MediaError
from media.inband import tone
from telephony.calls.control import espeak_voice
from xml_dsl import Beep
from xml_dsl.verbs import Play, Prompt, Speak, Wait

__all__ = ("BEEP_HZ", "BEEP_OFF_MS", "BEEP_ON_MS", "MAX_SOUND_SECONDS", "beeps", "render")

#: The beep: 700 Hz, 300 ms on then 200 ms off, the ``tone_stream://%(300,200,700)``
#: Plivo's own FreeSWITCH framework played for ``beep:1`` (``beep:2`` plays it twice).
BEEP_HZ = 700.0
BEEP_ON_MS = 300
BEEP_OFF_MS = 200
#: Peak amplitude of the beep (16-bit scale, about -12 dBFS).
BEEP_AMPLITUDE = 8000
#: Longest sound rendered for a conference, in seconds (10 minutes: 9.6 MB of samples);
#: a ``loop="0"`` prompt counts once (a wait sound repeats as a whole anyway).
MAX_SOUND_SECONDS = 600
RATE = 8000

Int16Array = npt.NDArray[np.int16]
log = Logger()


class SoundSource(Protocol):
    """What rendering needs from a conference mixer (:class:`media.Mixer`)."""

    def load(self, urls: list[str]) -> Deferred[Int16Array]: ...

    def synthesize(self, text: str, *, voice: str, language: str) -> Deferred[Int16Array]: ...


@functools.cache
def beeps(count: int) -> Int16Array:
    """``count`` beeps, each followed by its pause."""
    on = tone((BEEP_HZ,), BEEP_ON_MS * RATE // 1000, amplitude=BEEP_AMPLITUDE)
    off = np.zeros(BEEP_OFF_MS * RATE // 1000, dtype=np.int16)
    return np.tile(np.concatenate((on, off)), count)


def render(
    source: SoundSource, sound: Beep | tuple[Prompt, ...], what: str
) -> Deferred[Int16Array]:
    """The samples of a conference sound (``what`` names it in logs).

    :returns: a cancellable Deferred; it never fails (unplayable prompts are skipped).
    """
    if isinstance(sound, Beep):
        return Deferred.fromCoroutine(_constant(beeps(1 if sound is Beep.ONE else 2)))
    return Deferred.fromCoroutine(_render(source, sound, what))


async def _constant(samples: Int16Array) -> Int16Array:
    return samples


async def _render(source: SoundSource, prompts: tuple[Prompt, ...], what: str) -> Int16Array:
    parts: list[Int16Array] = []
    budget = MAX_SOUND_SECONDS * RATE
    for prompt in prompts:
        samples = await _one(source, prompt, what)
        if samples is None:
            continue
        for _ in range(max(1, prompt.loop) if not isinstance(prompt, Wait) else 1):
            take = samples[:budget]
            parts.append(take)
            budget -= len(take)
        if budget <= 0:
            log.warn("conference {what}: cut at {limit} s", what=what, limit=MAX_SOUND_SECONDS)
            break
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


async def _one(source: SoundSource, prompt: Prompt, what: str) -> Int16Array | None:
    try:
        if isinstance(prompt, Play):
            return await source.load([prompt.url])
        if isinstance(prompt, Speak):
            voice = espeak_voice(prompt.voice)
            return await source.synthesize(prompt.text, voice=voice, language=prompt.language)
        return np.zeros(prompt.length * RATE, dtype=np.int16)
    except MediaError as exc:
        log.warn("conference {what}: {prompt} skipped: {error}", what=what,
                 prompt=type(prompt).__name__, error=str(exc))  # fmt: skip
        return None
