"""The operations running on one RTP session: starting them, ending them, ticking them.

:mod:`media.ops` defines what an operation is (an output, a DTMF send, a digit
collector, a recording); :class:`OperationsRunner` holds the ones running on one
:class:`~media.session.RTPSession` and

* starts them: checks the arguments, loads files or synthesises speech, queues
  digits behind digits already being sent, plays the beep before a recording, and
  stops the operation a new one of the same kind replaces;
* ends them in one place (:meth:`OperationsRunner.detach`, which every operation
  calls once as it ends);
* drives them on the session's 20 ms tick: their timers, the frame of DTMF that
  takes the audio's place while a digit sounds, and the output's next payload;
* hands them what the session hears: audio for the recordings, digits for the
  collector (barge-in) and the recording (finish keys).

It knows no socket and no receive path.  The session sends what it is given
(``send``, and the payload :meth:`OperationsRunner.frame` returns) and is told
when an operation that needs the audio starts or ends (``on_change``: the receive
path depends on them) and when the output ends (``on_output_end``: the stream is
re-marked for whatever comes next).
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

from media.dtmf import DtmfSender, plan_digits
from media.encoder import AudioFileFormat
from media.errors import MediaArgumentError, MediaError, SessionClosedError
from media.g711 import Codec
from media.interfaces import DigitsResult, PlayOutcome, RecordEnd, RecordingResult
from media.ops import Collector, DigitsOut, Operation, Output, Recording
from media.player import AudioLoader, RunBlocking, load_all, run_synchronously
from media.recorder import CallRecording
from media.rtp import OutboundStream
from media.sdp import Negotiated
from media.sources import SAMPLES_PER_FRAME, ClipSource, FrameSource, tone_source
from media.ticker import SharedTicker

if TYPE_CHECKING:
    from media.tts import Speaker

__all__ = ("OperationsRunner", "SendPacket")

#: Sends one RTP packet: ``(payload_type, timestamp, payload, marker)``.
SendPacket = Callable[[int, int, bytes, bool], object]


def _check_loop(loop: int) -> None:
    if loop < 0:
        raise MediaArgumentError(f"loop: must be 0 (forever) or more, got {loop}")


@attrs.define(slots=True, eq=False, weakref_slot=False)
class OperationsRunner:
    """The running operations of one session.

    The session checks that it is open before it starts anything here; once it
    closes it calls :meth:`close` and starts nothing more.

    :param clock: the reactor's time (recordings' start times and limits).
    :param ticker: the shared 20 ms tick, to find the frame nearest a DTMF request.
    :param phase: the session's phase group on the tick.
    :param stream: the session's outbound stream, for the timestamps of DTMF packets.
    :param first_frame: the tick frame whose timestamp is the stream's first.
    :param send: sends a DTMF packet (the session's send path).
    :param on_change: called after an operation that needs received audio or
        digits (collector, recording, call recording) starts, and after any ends.
    :param on_output_end: called as the output ends, before ``on_change``.
    :param loader: fetches and decodes files and URLs for :meth:`play`.
    :param speaker: synthesises text for :meth:`speak`.
    :param recordings: the default directory for :meth:`record`.
    :param run_blocking: runs file work (recordings) off the reactor thread.
    :param call_uuid: names the session in the errors of :meth:`close`.
    """

    clock: IReactorTime
    ticker: SharedTicker
    phase: int
    stream: OutboundStream
    first_frame: int
    _send: SendPacket
    _on_change: Callable[[], None]
    _on_output_end: Callable[[], None]
    _loader: AudioLoader | None = None
    _speaker: Speaker | None = None
    _recordings: Path = Path("var/recordings")
    _run_blocking: RunBlocking = run_synchronously
    call_uuid: str = ""
    #: The play, speak or tone running, if any (one at a time).
    output: Output | None = attrs.field(default=None, init=False)
    #: DTMF sends, the running one first, the rest queued behind it.
    digits_out: list[DigitsOut] = attrs.field(factory=list, init=False)
    #: The digit collector (Plivo GetDigits), if any.
    collector: Collector | None = attrs.field(default=None, init=False)
    #: The foreground recording of the peer (Plivo Record), if any.
    recording: Recording | None = attrs.field(default=None, init=False)
    #: Background recordings of both directions (recordSession, REST Record, …).
    call_recordings: list[CallRecording] = attrs.field(factory=list, init=False)
    #: Whether this tick's frame was DTMF, so audio (ours or relayed) must wait.
    suppress_audio: bool = attrs.field(default=False, init=False)

    # Ending -----------------------------------------------------------------------

    def detach(self, op: Operation[Any]) -> None:
        """Forget ``op``, which has ended (each operation calls this once)."""
        if op is self.output:
            self.output = None
            self._on_output_end()
        elif op is self.collector:
            self.collector = None
        elif op is self.recording:
            self.recording = None
        elif op in self.call_recordings:
            self.call_recordings.remove(op)
        elif op in self.digits_out:
            self.digits_out.remove(op)
        self._on_change()

    def close(self) -> None:
        """End everything: recordings keep what they heard (a caller hanging up ends
        a voicemail); the rest fail with :class:`~media.errors.SessionClosedError`."""
        for recording in [*self.call_recordings, self.recording]:
            if recording is not None:
                recording.stop(RecordEnd.CLOSED)
        ops: list[Operation[Any]] = [*self.digits_out]
        ops += [op for op in (self.output, self.collector) if op is not None]
        for op in ops:
            op.fail(SessionClosedError(f"session {self.call_uuid}: closed"))

    # Output -----------------------------------------------------------------------

    def _start_output(
        self, source: FrameSource | None = None, loading: Deferred[FrameSource] | None = None
    ) -> Deferred[PlayOutcome]:
        if self.output is not None:
            self.output.end(PlayOutcome.STOPPED)
        op = Output(self.detach, source=source, loading=loading)
        if not op.ended:  # a load that failed at once has ended it already
            self.output = op
        return op.deferred

    def play_source(self, source: FrameSource) -> Deferred[PlayOutcome]:
        """Play frames from ``source`` until it ends, replacing the running output."""
        return self._start_output(source)

    def play_audio(self, samples: npt.NDArray[np.int16], *, loop: int = 1) -> Deferred[PlayOutcome]:
        """Play 8 kHz mono 16-bit samples ``loop`` times (0 = until stopped)."""
        _check_loop(loop)
        return self._start_output(ClipSource(np.asarray(samples, dtype=np.int16), loop))

    def play(self, sources: Sequence[str], *, loop: int = 1) -> Deferred[PlayOutcome]:
        """Play files and URLs one after another (silence while they load).

        :raises MediaArgumentError: no source, or a negative ``loop``.
        """
        if isinstance(sources, str):
            sources = [sources]
        if not sources:
            raise MediaArgumentError("sources: give at least one file or URL")
        _check_loop(loop)
        loader = self._loader
        if loader is None:
            return fail(MediaError("play: this session has no audio loader"))
        loading: Deferred[FrameSource] = load_all(loader, sources).addCallback(
            lambda clip: ClipSource(clip, loop)
        )
        return self._start_output(loading=loading)

    def speak(self, text: str, *, voice: str, language: str, loop: int) -> Deferred[PlayOutcome]:
        """Say ``text`` (silence while it is synthesised)."""
        _check_loop(loop)
        speaker = self._speaker
        if speaker is None:
            return fail(MediaError("speak: this session has no speech synthesiser"))
        synth = speaker.synthesize(text, voice=voice, language=language)
        loading: Deferred[FrameSource] = synth.addCallback(lambda s: ClipSource(s, loop))
        return self._start_output(loading=loading)

    def play_tone(self, name: str, duration: float | None = None) -> Deferred[PlayOutcome]:
        """Play ``beep``, ``ringback`` or ``silence``.

        :raises MediaArgumentError: for another name, or a bad duration.
        """
        try:
            source = tone_source(name, duration)
        except ValueError as e:
            raise MediaArgumentError(str(e)) from None
        return self._start_output(source)

    def stop_output(self) -> None:
        """End the running output, if any, as stopped."""
        if self.output is not None:
            self.output.end(PlayOutcome.STOPPED)

    # Digits -----------------------------------------------------------------------

    def send_digits(self, digits: str, *, digit_ms: int, gap_ms: int) -> Deferred[None]:
        """Queue DTMF behind the digits being sent; with none before them, leading
        pauses count from the tick frame nearest now (:class:`~media.ops.DigitsOut`)."""
        anchor = None
        if not self.digits_out:
            anchor = round(self.ticker.frame_at(self.clock.seconds(), self.phase))
        plan = plan_digits(digits, digit_ms=digit_ms, gap_ms=gap_ms)
        op = DigitsOut(self.detach, DtmfSender(plan), anchor)
        self.digits_out.append(op)
        return op.deferred

    def collect_digits(
        self, *, max_digits: int, timeout: float, digit_timeout: float, finish_on_key: str,
        valid_digits: str, barge_in: bool,
    ) -> Deferred[DigitsResult]:  # fmt: skip
        """Collect digits (:class:`~media.ops.Collector`); a running collector is
        stopped with what it has."""
        op = Collector(
            self.detach, max_digits=max_digits, timeout=timeout, digit_timeout=digit_timeout,
            finish_on_key=finish_on_key, valid_digits=valid_digits, barge_in=barge_in,
        )  # fmt: skip
        if self.collector is not None:
            self.collector.stop()
        self.collector = op
        self._on_change()
        return op.deferred

    # Recording --------------------------------------------------------------------

    def record(
        self, *, directory: Path | None, max_length: float, finish_on_key: str,
        silence_timeout: float, beep: bool, path: Path | None, file_format: str,
    ) -> Deferred[RecordingResult]:  # fmt: skip
        """Record the peer (:class:`~media.ops.Recording`), after a beep if ``beep``;
        a running foreground recording is stopped, keeping what it has."""
        op = Recording(
            self.detach, directory=directory or self._recordings, max_length=max_length,
            finish_on_key=finish_on_key, silence_timeout=silence_timeout, path=path,
            file_format=AudioFileFormat.parse(file_format), run_blocking=self._run_blocking,
        )  # fmt: skip
        if self.recording is not None:
            self.recording.stop()
        self.recording = op
        self._on_change()
        if beep:

            def beeped(_: PlayOutcome) -> None:
                if not op.ended:
                    op.start(self.clock.seconds())

            op.beep = self.play_tone("beep")
            op.beep.addCallback(beeped).addErrback(lambda _: None)  # cancelled, or closed
        else:
            op.start(self.clock.seconds())
        return op.deferred

    def record_call(
        self, *, path: Path, file_format: str, stereo: bool, max_length: float
    ) -> Deferred[RecordingResult]:
        """Record both directions in the background (:mod:`media.recorder`)."""
        op = CallRecording(
            self.detach, path=path, file_format=AudioFileFormat.parse(file_format), stereo=stereo,
            max_length=max_length, clock=self.clock, run_blocking=self._run_blocking,
        )  # fmt: skip
        self.call_recordings.append(op)
        self._on_change()
        return op.deferred

    def stop_recording(self, path: Path | None = None) -> None:
        """End the running recordings (or the one writing ``path``), keeping what
        was recorded."""
        ops: list[Recording | CallRecording] = [*self.call_recordings]
        if self.recording is not None:
            ops.append(self.recording)
        for op in ops:
            if path is None or op.path == path:
                op.stop()

    def stop(self) -> None:
        """End output, collection and recording now, with their partial results."""
        if self.output is not None:
            self.output.end(PlayOutcome.STOPPED)
        if self.collector is not None:
            self.collector.stop()
        if self.recording is not None:
            self.recording.stop()

    # What the session hears ---------------------------------------------------------

    def heard(self, samples: npt.NDArray[np.int16], timestamp: int, ssrc: int, now: float) -> None:
        """Decoded audio of one packet from the peer, for the recordings."""
        if self.recording is not None:
            self.recording.feed(samples, timestamp, now)
        for op in list(self.call_recordings):
            op.feed(0, samples, timestamp, ssrc, now)

    def sent(self, samples: npt.NDArray[np.int16], timestamp: int, now: float) -> None:
        """Decoded audio of one packet sent to the peer, for the call recordings."""
        ssrc = self.stream.ssrc
        for op in list(self.call_recordings):
            op.feed(1, samples, timestamp, ssrc, now)

    def on_digit(self, digit: str, now: float) -> None:
        """A digit the peer pressed: it may barge in on the prompt, go to the
        collector, or end the recording."""
        collector = self.collector
        if collector is not None:
            if collector.barge_in and self.output is not None:
                self.output.end(PlayOutcome.BARGED_IN)
            collector.on_digit(digit, now)
        if self.recording is not None:
            self.recording.on_digit(digit)

    # The tick -----------------------------------------------------------------------

    def on_tick(self, now: float) -> None:
        """The operations' timers: recordings' limits and the collector's timeouts.

        Harmless with none running; the session skips the call then (the tick is
        the per-session hot path)."""
        for op in list(self.call_recordings):
            op.on_tick(now)
        if self.collector is not None:
            self.collector.on_tick(now, self.output is not None)
        if self.recording is not None:
            self.recording.on_tick(now)

    def frame(
        self, frame: int, codec: Codec, neg: Negotiated | None, sending: bool, relaying: bool
    ) -> bytes | None:
        """Tick ``frame``: send its DTMF, if a digit sounds, and return the audio
        for it, encoded with ``codec``.

        The audio is the output's next payload, else silence (nothing plays, or it
        is still loading); ``None`` when DTMF takes the frame (:attr:`suppress_audio`)
        or, while ``relaying``, no output plays (relayed frames fill the stream).
        The output advances, and may end, whether or not its audio is sent.

        :param neg: the negotiation; DTMF is sent only when there is one and
            ``sending`` (we send media now); the session does likewise with the audio.
        """
        digits = bool(self.digits_out)
        self.suppress_audio = digits and self._dtmf_frame(frame, codec, neg, sending)
        payload = None
        output = self.output
        if output is not None and output.source is not None:
            payload = output.source.next_payload(codec)
            if payload is None:
                output.end(PlayOutcome.FINISHED)  # a new output may start next frame
        if self.suppress_audio:
            return None
        if payload is None:
            if relaying and self.output is None:
                return None
            payload = bytes((codec.silence,)) * SAMPLES_PER_FRAME  # idle, or still loading
        return payload

    def _dtmf_frame(self, frame: int, codec: Codec, neg: Negotiated | None, sending: bool) -> bool:
        """Send this frame's DTMF, if any; returns whether audio must be suppressed."""
        op = self.digits_out[0]
        te = neg.telephone_event if neg is not None else None
        emit = op.emit(frame, te, codec)
        if emit is not None and sending and neg is not None:
            if emit.event_frame is None:  # an in-band tone frame, in place of the audio
                self._send(neg.payload_type, self._timestamp(frame), emit.payload, False)
            else:  # an event packet, stamped with the event's start
                ts = self._timestamp(emit.event_frame)
                self._send(te or 0, ts, emit.payload, emit.marker)
        op.after(frame)
        return emit is not None

    def _timestamp(self, frame: int) -> int:
        return self.stream.timestamp_at(SAMPLES_PER_FRAME * (frame - self.first_frame))
