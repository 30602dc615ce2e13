"""The N-party conference mixer: every member hears everyone but itself.

A :class:`Mixer` is one conference room's audio.  Each member is a media
session (one call leg) wrapped in a :class:`MixMember`, which listens to the
session and keeps what it receives, decoded to 16-bit linear, in a
:class:`~media.jitter.JitterBuffer`.  Once per 20 ms, on the shared media tick
(:class:`~media.ticker.SharedTicker`; DESIGN.md: all generated media rides one
tick per reactor), the mixer:

1. takes one frame from every member's buffer (silence if it has none);
2. measures each frame's energy (mean absolute sample) and updates the member's
   talking state: :data:`TALK_ATTACK_FRAMES` frames above
   :data:`ENERGY_THRESHOLD` start talking, :data:`TALK_HANGOVER_FRAMES` frames
   below stop it, FreeSWITCH-style; the floor goes to the loudest talker once
   its holder stops talking;
3. sums the frames of members that may be heard (not muted, not held, and
   talking or loud this frame: a noise gate, so the hiss of twenty idle phones
   does not add up), plus the room's own sounds (enter and exit beeps);
4. gives each member the sum minus its own contribution, plus whatever plays to
   it alone (a REST Play or Speak, the wait music), nothing of the room if it is
   deaf or held; clips to 16 bits, encodes per codec in one numpy gather, and
   sends it with :meth:`IMediaSession.send_frame` on the member's timeline;
5. appends the room's sum to the recording, if one runs.

numpy does the sums for all members of a room at once (a ``(members, 160)``
array); the per-member Python work is the buffer pop and the send.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import numpy.typing as npt
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from media.audio import RATE
from media.encoder import AudioFileFormat, FileSink
from media.errors import MediaArgumentError, MediaError
from media.g711 import Codec
from media.interfaces import AudioFrame, EventFrame, IMediaListener, IMediaSession, PlayOutcome
from media.jitter import FRAME_SAMPLES, JitterBuffer
from media.ops import Operation, Output
from media.player import RunBlocking, load_all, run_synchronously
from media.sources import ClipSource, FrameSource
from media.ticker import SharedTicker

if TYPE_CHECKING:
    from media.player import AudioLoader
    from media.tts import Speaker

__all__ = (
    "ENERGY_THRESHOLD",
    "MAX_MEMBERS",
    "MAX_ROOM_SOUNDS",
    "TALK_ATTACK_FRAMES",
    "TALK_HANGOVER_FRAMES",
    "MixMember",
    "MixRecording",
    "Mixer",
)

#: A frame is speech when its mean absolute sample exceeds this (16-bit scale,
#: about -50 dBFS): FreeSWITCH's default ``energy-level`` of its conferences.
ENERGY_THRESHOLD = 100.0
#: Frames in a row above the threshold that make a member "talking" (40 ms).
TALK_ATTACK_FRAMES = 2
#: Frames in a row below it that end talking (300 ms), so pauses between words
#: neither cut the member out of the mix nor flap the floor.
TALK_HANGOVER_FRAMES = 15
#: Most members one mixer takes (Plivo's maxMembers is at most 20; this leaves room
#: for REST-added legs and keeps one room's arrays small).
MAX_MEMBERS = 100
#: Most room-wide sounds (enter/exit beeps) playing at once; older ones are stopped.
MAX_ROOM_SOUNDS = 4
#: Names of the outputs a member may hear on its own, mixed over the room.
PRIVATE_KINDS = ("wait", "play", "speak", "sound")

Int16Array = npt.NDArray[np.int16]
_log = Logger()


@implementer(IMediaListener)
class MixMember:
    """One session in a mixer: its input buffer, flags and talking state.

    :ivar muted: the room does not hear it.
    :ivar deaf: it hears nothing of the room (only what plays to it alone).
    :ivar held: both at once, set by the room while it has not started.
    :ivar talking: whether its energy says it speaks (see the module's rules).
    :ivar energy: the mean absolute sample of its last frame.
    """

    def __init__(self, mixer: Mixer, session: IMediaSession, *, muted: bool, deaf: bool) -> None:
        self.mixer = mixer
        self.session = session
        self.muted = muted
        self.deaf = deaf
        self.held = False
        self.talking = False
        self.energy = 0.0
        self.buffer = JitterBuffer()
        self.outputs: dict[str, Output] = {}
        self._above = 0
        self._below = 0

    def __repr__(self) -> str:
        return f"<MixMember {self.session.call_uuid} muted={self.muted} deaf={self.deaf}>"

    # IMediaListener --------------------------------------------------------------

    def audio_received(self, session: IMediaSession, frame: AudioFrame) -> None:
        """Decode and buffer what the member says."""
        self.buffer.push(frame.codec.decode(frame.payload), frame.timestamp, frame.ssrc)

    def event_received(self, session: IMediaSession, frame: EventFrame) -> None:
        """Telephone-events are the room's business (relayDTMF), not the mixer's."""

    def digit_received(self, session: IMediaSession, digit: str) -> None:
        """Digits are the room's business (hangupOnStar, digitsMatch)."""

    # talking -----------------------------------------------------------------------

    def observe(self, energy: float) -> bool | None:
        """Account for one frame's energy; the new talking state if it changed."""
        self.energy = energy
        if energy >= ENERGY_THRESHOLD:
            self._above += 1
            self._below = 0
            if not self.talking and self._above >= TALK_ATTACK_FRAMES:
                self.talking = True
                return True
        else:
            self._above = 0
            if self.talking:
                self._below += 1
                if self._below >= TALK_HANGOVER_FRAMES:
                    self.talking = False
                    self._below = 0
                    return False
        return None

    @property
    def audible(self) -> bool:
        """Whether the room may hear it at all now."""
        return not (self.muted or self.held)

    # what it hears alone -----------------------------------------------------------

    def play(self, kind: str, source: FrameSource | None = None,
             loading: Deferred[FrameSource] | None = None) -> Deferred[PlayOutcome]:  # fmt: skip
        """Play to this member alone, mixed over what it hears of the room.

        A new output of the same ``kind`` (``wait``, ``play``, ``speak``, ``sound``)
        replaces the running one, which ends ``STOPPED``.
        """
        if kind not in PRIVATE_KINDS:
            raise MediaArgumentError(f"kind: must be one of {', '.join(PRIVATE_KINDS)}")
        self.stop(kind)

        def detach(op: Operation[Any]) -> None:
            if self.outputs.get(kind) is op:
                del self.outputs[kind]

        op = Output(detach, source=source, loading=loading)
        if not op.ended:
            self.outputs[kind] = op
        return op.deferred

    def stop(self, kind: str) -> None:
        """End what plays to this member under ``kind``, if anything."""
        op = self.outputs.get(kind)
        if op is not None:
            op.end(PlayOutcome.STOPPED)

    def _private(self) -> npt.NDArray[np.int32] | None:
        """The sum of what plays to it alone this frame, ending finished outputs."""
        total: npt.NDArray[np.int32] | None = None
        for op in list(self.outputs.values()):
            source = op.source
            if source is None:
                continue  # still loading
            samples = source.next_samples() if isinstance(source, ClipSource) else None
            if samples is None:
                op.end(PlayOutcome.FINISHED)
                continue
            total = samples.astype(np.int32) if total is None else total + samples
        return total

    def close(self) -> None:
        """End everything that plays to it."""
        for kind in list(self.outputs):
            self.stop(kind)


@attrs.frozen
class MixRecording:
    """A finished recording of a room.

    :ivar path: the file (8 kHz mono, WAV or MP3).
    :ivar started: :ivar ended: clock seconds.
    :ivar duration: seconds of audio written.
    """

    path: Path
    started: float
    ended: float
    duration: float


class _Recorder:
    """Hands the room's mix, a frame per tick, to a file sink (WAV or MP3, written off
    the reactor thread; :mod:`media.encoder`)."""

    def __init__(
        self,
        path: Path,
        *,
        file_format: AudioFileFormat,
        started: float,
        when_alone: bool,
        run_blocking: RunBlocking,
    ) -> None:
        self.path = path
        self.started = started
        self.when_alone = when_alone
        self.sink = FileSink(path, file_format, 1, run_blocking=run_blocking)
        self.result: Deferred[MixRecording] = Deferred()

    def write(self, samples: Int16Array, members: int) -> bool:
        """Queue a frame (if it is to be kept); ``False`` once the sink refuses."""
        if members >= 2 or self.when_alone:
            return self.sink.write(samples)
        return True

    def finish(self, now: float) -> None:
        """Close the file; the result fires once it is complete (or fails)."""

        def closed(frames: int) -> None:
            self.result.callback(MixRecording(self.path, self.started, now, frames / RATE))

        self.sink.close().addCallbacks(closed, self.result.errback)


class Mixer:
    """One room's audio, mixed on the shared tick.

    :param ticker: the shared 20 ms tick (the engine's).
    :param clock: for lateness and recording times.
    :param loader: fetches audio for :meth:`load` (``None``: cannot).
    :param speaker: synthesises speech for :meth:`synthesize` (``None``: cannot).
    :param run_blocking: where recording files are written (the reactor's thread pool).
    :param name: for logs.
    :ivar on_talking: called ``(member, talking)`` when a member starts or stops talking.
    :ivar on_floor: called ``(member)`` when a member gets the floor.
    :ivar frames: ticks mixed.  :ivar late: ticks mixed more than a frame after they
        were due (the tick fell behind).
    """

    def __init__(
        self,
        *,
        ticker: SharedTicker,
        clock: IReactorTime,
        loader: AudioLoader | None = None,
        speaker: Speaker | None = None,
        run_blocking: RunBlocking = run_synchronously,
        name: str = "",
    ) -> None:
        self.ticker = ticker
        self._run_blocking = run_blocking
        self.clock = clock
        self.name = name
        self._loader = loader
        self._speaker = speaker
        self.members: list[MixMember] = []
        self.floor: MixMember | None = None
        self.on_talking: Callable[[MixMember, bool], None] | None = None
        self.on_floor: Callable[[MixMember], None] | None = None
        self._room: list[Output] = []
        self._recorder: _Recorder | None = None
        self._subscribed = False
        self.closed = False
        self.frames = 0
        self.late = 0

    # members ---------------------------------------------------------------------------

    def add(self, session: IMediaSession, *, muted: bool = False, deaf: bool = False) -> MixMember:
        """Mix ``session`` in from the next tick; its own idle frames stop.

        :raises MediaArgumentError: past :data:`MAX_MEMBERS`, or the session is
            already in this mixer.
        :raises MediaError: once the mixer is closed.
        """
        if self.closed:
            raise MediaError(f"mixer {self.name}: closed")
        if any(m.session is session for m in self.members):
            raise MediaArgumentError("session: already in this conference")
        if len(self.members) >= MAX_MEMBERS:
            raise MediaArgumentError(f"members: at most {MAX_MEMBERS} in one conference")
        member = MixMember(self, session, muted=muted, deaf=deaf)
        self.members.append(member)
        session.set_relaying(True)  # the mix fills its stream
        session.add_listener(member)
        if self.floor is None and member.audible:
            self.floor = member  # the first to enter holds the floor (FreeSWITCH)
        self._subscribe()
        return member

    def remove(self, member: MixMember) -> None:
        """Take a member out; its session makes its own frames again."""
        if member not in self.members:
            return
        self.members.remove(member)
        member.close()
        member.session.remove_listener(member)
        member.session.set_relaying(False)
        if self.floor is member:
            self.floor = None
        self._unsubscribe_if_idle()

    # sounds ---------------------------------------------------------------------------

    def play_room(self, samples: Int16Array) -> Deferred[PlayOutcome]:
        """Play ``samples`` once to the whole room (all but deaf and held members)."""
        if self.closed:
            return fail(MediaError(f"mixer {self.name}: closed"))
        while len(self._room) >= MAX_ROOM_SOUNDS:
            self._room[0].end(PlayOutcome.STOPPED)

        def detach(op: Operation[Any]) -> None:
            if op in self._room:
                self._room.remove(op)

        op = Output(detach, source=ClipSource(np.asarray(samples, dtype=np.int16), 1))
        self._room.append(op)
        self._subscribe()
        return op.deferred

    def load(self, urls: Sequence[str]) -> Deferred[Int16Array]:
        """Fetch and decode audio files or URLs, joined in order (8 kHz samples)."""
        if self._loader is None:
            return fail(MediaError("play: this conference has no audio loader"))
        return load_all(self._loader, urls)

    def synthesize(self, text: str, *, voice: str, language: str) -> Deferred[Int16Array]:
        """Speech for ``text`` (8 kHz samples); argument errors raise at once."""
        if self._speaker is None:
            return fail(MediaError("speak: this conference has no speech synthesiser"))
        return self._speaker.synthesize(text, voice=voice, language=language)

    # recording ------------------------------------------------------------------------

    @property
    def recording(self) -> Path | None:
        """The file being recorded, if any."""
        return self._recorder.path if self._recorder is not None else None

    def start_recording(
        self,
        path: Path,
        *,
        file_format: AudioFileFormat = AudioFileFormat.WAV,
        when_alone: bool = False,
    ) -> Deferred[MixRecording]:
        """Record the room's mix (mono) until :meth:`stop_recording` or close.

        :param when_alone: record while fewer than two members are in the room too
            (otherwise those stretches are left out).
        :raises MediaArgumentError: if a recording already runs.
        :returns: fires with the finished :class:`MixRecording`, or fails with the
            file's write error (the file removed).
        """
        if self._recorder is not None:
            raise MediaArgumentError("record: this conference is already being recorded")
        self._recorder = _Recorder(
            path,
            file_format=file_format,
            started=self.clock.seconds(),
            when_alone=when_alone,
            run_blocking=self._run_blocking,
        )
        self._subscribe()
        return self._recorder.result

    def stop_recording(self) -> None:
        """Finish the recording (its Deferred fires with a :class:`MixRecording`)."""
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.finish(self.clock.seconds())
            self._unsubscribe_if_idle()

    # life -------------------------------------------------------------------------------

    def close(self) -> None:
        """Take every member out, stop sounds, finish the recording."""
        if self.closed:
            return
        for member in list(self.members):
            self.remove(member)
        for op in list(self._room):
            op.end(PlayOutcome.STOPPED)
        self.stop_recording()
        self.closed = True
        self._unsubscribe()

    def _subscribe(self) -> None:
        if not self._subscribed:
            self._subscribed = True
            self.ticker.subscribe(self._on_frame)

    def _unsubscribe(self) -> None:
        if self._subscribed:
            self._subscribed = False
            self.ticker.unsubscribe(self._on_frame)

    def _unsubscribe_if_idle(self) -> None:
        if not self.members and not self._room and self._recorder is None:
            self._unsubscribe()

    # the tick ----------------------------------------------------------------------------

    def _on_frame(self, frame: int, due: float) -> None:
        if self.clock.seconds() - due > self.ticker.frame:
            self.late += 1
        self.frames += 1
        members = list(self.members)  # callbacks below may change the room
        count = len(members)
        heard = np.zeros((count, FRAME_SAMPLES), dtype=np.int32)
        for i, member in enumerate(members):
            samples = member.buffer.pop()
            if samples is not None:
                heard[i] = samples
        levels: list[float] = np.abs(heard).mean(axis=1).tolist() if count else []
        changes: list[tuple[MixMember, bool]] = []
        gate: list[bool] = []
        for member, level in zip(members, levels, strict=True):
            changed = member.observe(level)
            if changed is not None:
                changes.append((member, changed))
            gate.append(member.audible and (member.talking or level >= ENERGY_THRESHOLD))
        spoken = heard * np.array(gate, dtype=np.int32).reshape(count, 1)
        total = spoken.sum(axis=0) if count else np.zeros(FRAME_SAMPLES, dtype=np.int32)
        room = self._room_frame()
        if room is not None:
            total += room
        out = total[None, :] - spoken
        for i, member in enumerate(members):
            if member.deaf or member.held:
                out[i] = 0
            if member.outputs:
                private = member._private()
                if private is not None:
                    out[i] += private
        np.clip(out, -32768, 32767, out=out)
        self._send(frame, members, out.astype(np.int16))
        if self._recorder is not None:
            audible = sum(1 for m in members if not m.held)
            mix = np.clip(total, -32768, 32767).astype(np.int16)
            if not self._recorder.write(mix, audible):
                _log.warn(
                    "conference {name}: the recording cannot keep up; stopped", name=self.name
                )
                self.stop_recording()  # the disk cannot keep up: keep what we have
        self._settle_floor(changes)

    def _room_frame(self) -> npt.NDArray[np.int32] | None:
        total: npt.NDArray[np.int32] | None = None
        for op in list(self._room):
            source = op.source
            samples = source.next_samples() if isinstance(source, ClipSource) else None
            if samples is None:
                op.end(PlayOutcome.FINISHED)
                continue
            total = samples.astype(np.int32) if total is None else total + samples
        if total is None:
            self._unsubscribe_if_idle()
        return total

    def _send(self, frame: int, members: list[MixMember], out: Int16Array) -> None:
        encoded: dict[Codec, bytes] = {}
        for i, member in enumerate(members):
            negotiated = member.session.negotiated
            if negotiated is None:
                continue
            codec = negotiated.codec
            data = encoded.get(codec)
            if data is None:
                data = encoded[codec] = codec.encode(out)
            start = i * FRAME_SAMPLES
            member.session.send_frame(frame, codec, data[start : start + FRAME_SAMPLES])

    def _settle_floor(self, changes: list[tuple[MixMember, bool]]) -> None:
        for member, talking in changes:
            if self.on_talking is not None:
                self.on_talking(member, talking)
        holder = self.floor
        if holder is not None and holder.talking and holder.audible:
            return
        talkers = [m for m in self.members if m.talking and m.audible]
        if not talkers:
            return
        loudest = max(talkers, key=lambda m: m.energy)
        if loudest is not holder:
            self.floor = loudest
            if self.on_floor is not None:
                self.on_floor(loudest)
