"""The RTP session: a thin Twisted edge around the sans-IO media cores.

:class:`RTPSession` is the ``DatagramProtocol`` on our RTP port.  It

* negotiates with SDP (:mod:`media.negotiation` keeps the offer/answer state)
  and follows the result (codec, telephone-event payload type, direction,
  remote address);
* sends one frame per tick of the shared 20 ms :class:`~media.ticker.SharedTicker`,
  timestamp ``base + 160 * (frame - first_frame)``: the running output
  (play/speak/tone), else relayed frames when bridged, else silence; DTMF
  events take the frame's place while a digit sounds;
* receives: parses, drops and counts malformed, foreign-source and unknown
  payload-type packets, latches to the source of the first good packet
  (symmetric RTP, for phones behind NAT), keeps RFC 3550 statistics, and hands
  audio and events to the recorder, the digit receivers and listeners (the
  rules are :mod:`media.receive`'s);
* while a bridge alone wants the audio, passes plain audio packets straight to
  the other leg along a :class:`~media.relay.RelayRoute`, mapping timestamps
  with a :class:`~media.relay.RelayTimeline`.

Its operations (play, speak, tone, DTMF out, collect, record; :mod:`media.ops`)
each return a cancellable Deferred; an
:class:`~media.operations_runner.OperationsRunner` starts, ends and ticks them,
and the public methods here check that the session is open and hand over.  RTCP
lives in :mod:`media.rtcp_port`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer

from media.detect import AudioWatch
from media.dtmf import DtmfEventKind, DtmfReceiver
from media.errors import MediaArgumentError, SessionClosedError
from media.g711 import Codec
from media.inband import InbandDtmfDetector
from media.interfaces import (
    AudioFrame,
    DigitsResult,
    EventFrame,
    IMediaListener,
    IMediaSession,
    PlayOutcome,
    RecordingResult,
    SessionState,
)
from media.negotiation import SdpNegotiation
from media.operations_runner import OperationsRunner
from media.ops import SessionCounters
from media.player import AudioLoader, RunBlocking, run_synchronously
from media.receive import FAST_HEADER, NonAudio, admit, relay_route, wants_inband
from media.relay import RelayRoute, RelayTimeline
from media.rtcp import SourceTable
from media.rtp import MAX_RTP_PACKET, RTP_HEADER_SIZE, OutboundStream
from media.sdp import Direction, Negotiated, Origin, SessionDescription
from media.sources import SAMPLES_PER_FRAME, FrameSource
from media.ticker import SharedTicker

if TYPE_CHECKING:
    from media.rtcp_port import RTCPPort
    from media.tts import Speaker
    from media.udp import RTPPoller

__all__ = ("MAX_SOURCES", "RTPSession")

#: Most remote SSRCs tracked for statistics and relay timestamp mapping.
MAX_SOURCES = 8
#: Read once per packet: a module constant is cheaper than the enum attribute.
_EVENT = NonAudio.EVENT

_log = Logger()


@implementer(IMediaSession)
class RTPSession(DatagramProtocol):
    """One RTP stream with one peer.

    Built by :class:`~media.engine.MediaEngine`, which binds its ports; tests
    may build one directly around a fake transport.

    :param clock: the reactor's time.
    :param ticker: the shared 20 ms tick.
    :param local_address: our (host, port), as advertised in SDP.
    :param loader: fetches and decodes files and URLs for :meth:`play`.
    :param speaker: synthesises text for :meth:`speak`.
    :param recordings: default directory for :meth:`record`.
    :param telephone_event: the payload type we offer for RFC 4733.
    :param codecs: the codecs we offer and accept, in our preference order.
    :param call_uuid: for logs.
    :param on_close: called once when the session closes (the engine releases ports).
    :param run_blocking: runs file work (recordings) off the reactor thread.
    """

    noisy = False  # one log line per session, not per protocol start/stop

    def __init__(
        self,
        *,
        clock: IReactorTime,
        ticker: SharedTicker,
        local_address: tuple[str, int],
        loader: AudioLoader | None = None,
        speaker: Speaker | None = None,
        recordings: Path = Path("var/recordings"),
        telephone_event: int = 101,
        codecs: Sequence[Codec] = (Codec.PCMU, Codec.PCMA),
        call_uuid: str = "",
        on_close: Callable[[RTPSession], None] | None = None,
        run_blocking: RunBlocking = run_synchronously,
    ) -> None:
        self.clock = clock
        self.ticker = ticker
        self.local_address = local_address
        self.call_uuid = call_uuid
        self.state = SessionState.IDLE
        #: Whether we send media now: open, negotiated, and our direction sends.
        self._sending = False
        self.negotiated: Negotiated | None = None
        self.counters = SessionCounters()
        self.stream = OutboundStream()
        self.sources = SourceTable(MAX_SOURCES)
        self.remote: tuple[str, int] | None = None
        self.latched = False
        self._codecs = tuple(codecs)
        self._on_close = on_close
        self._negotiation = SdpNegotiation(
            Origin("telephony", int(self.stream.ssrc), 0, local_address[0]),
            local_address[0], local_address[1], self._codecs, telephone_event,
        )  # fmt: skip
        subscription = ticker.subscribe(self._on_frame)
        self._phase = subscription.phase
        self._first_frame = subscription.first_frame
        self._marker = True
        self._relaying = False
        self._relay_timeline = RelayTimeline(MAX_SOURCES)
        #: Play, speak, tone, DTMF out, collect and record: what runs on this session.
        self._ops = OperationsRunner(
            clock, ticker, self._phase, self.stream, self._first_frame, send=self._send,
            on_change=self._update_receive_path, on_output_end=self._output_ended,
            loader=loader, speaker=speaker, recordings=recordings, run_blocking=run_blocking,
            call_uuid=call_uuid,
        )  # fmt: skip
        self._listeners: list[IMediaListener] = []
        self._dtmf_rx = DtmfReceiver()
        self._inband: InbandDtmfDetector | None = None
        self._sendto: Callable[[bytes, tuple[str, int]], object] | None = None
        #: The shared poller reading our port, whose burst our sends join (media.udp).
        self._poller: RTPPoller | None = None
        #: The fast relay path, while a bridge is the only one that wants this
        #: session's audio.
        self._fast: RelayRoute | None = None
        #: The RTCP port, if the engine gave the session one, and the listening
        #: ports the engine stops when the session closes.
        self.rtcp: RTCPPort | None = None
        self.listening: tuple[IListeningPort, ...] = ()

    # SDP ----------------------------------------------------------------------

    def create_offer(self, direction: Direction = Direction.SENDRECV) -> SessionDescription:
        """Our offer; a later offer (re-INVITE, hold) bumps the o= version."""
        return self._negotiation.create_offer(direction)

    def accept_offer(
        self, offer: SessionDescription, wanted: Direction = Direction.SENDRECV
    ) -> SessionDescription:
        """Answer ``offer`` and follow the result."""
        answer, negotiated = self._negotiation.answer(offer, wanted)
        self.configure(negotiated)
        return answer

    def accept_answer(self, answer: SessionDescription) -> Negotiated:
        """Settle our last offer with the peer's answer and follow the result."""
        negotiated = self._negotiation.settle(answer)
        self.configure(negotiated)
        return negotiated

    def configure(self, negotiated: Negotiated) -> None:
        """Follow a negotiation: codec, payload types, direction, remote address.

        A changed remote address (re-INVITE) forgets the latched source.
        """
        self._check_open()
        remote = (negotiated.remote_host, negotiated.remote_port)
        if remote != self.remote:
            self.remote = remote
            self.latched = False
        if self.negotiated is None or self.negotiated.codec is not negotiated.codec:
            self._marker = True
        self.negotiated = negotiated
        self.state = SessionState.ACTIVE
        self._sending = negotiated.direction.sends
        self._update_receive_path()
        if self.rtcp is not None:
            self.rtcp.start()

    # Operations (run by self._ops) -----------------------------------------------------

    def _check_open(self) -> None:
        if self.state is SessionState.CLOSED:
            raise SessionClosedError(f"session {self.call_uuid}: closed")

    def _output_ended(self) -> None:
        """Whatever follows our own output starts a new talkspurt, and relayed
        sources are mapped afresh."""
        self._marker = True
        self._relay_timeline.clear()

    def play_source(self, source: FrameSource) -> Deferred[PlayOutcome]:
        """Play frames from any :class:`~media.sources.FrameSource` until it ends."""
        self._check_open()
        return self._ops.play_source(source)

    def play_audio(self, samples: npt.NDArray[np.int16], *, loop: int = 1) -> Deferred[PlayOutcome]:
        """Play 8 kHz mono 16-bit samples ``loop`` times (0 = until stopped)."""
        self._check_open()
        return self._ops.play_audio(samples, loop=loop)

    def play(self, sources: Sequence[str], *, loop: int = 1) -> Deferred[PlayOutcome]:
        """Play WAV files and URLs one after another, ``loop`` times (0 = forever)."""
        self._check_open()
        return self._ops.play(sources, loop=loop)

    def speak(
        self, text: str, *, voice: str = "WOMAN", language: str = "en-US", loop: int = 1
    ) -> Deferred[PlayOutcome]:
        """Say ``text`` with eSpeak NG, ``loop`` times (0 = forever)."""
        self._check_open()
        return self._ops.speak(text, voice=voice, language=language, loop=loop)

    def play_tone(self, name: str, duration: float | None = None) -> Deferred[PlayOutcome]:
        """Play ``beep``, ``ringback`` or ``silence``."""
        self._check_open()
        return self._ops.play_tone(name, duration)

    def send_digits(self, digits: str, *, digit_ms: int = 100, gap_ms: int = 100) -> Deferred[None]:
        """Send DTMF as RFC 4733 events (in-band tones if the peer has none).

        Calls while digits are being sent queue behind them.  Leading pauses
        (``w``, ``W``) count from the frame nearest the call.
        """
        self._check_open()
        return self._ops.send_digits(digits, digit_ms=digit_ms, gap_ms=gap_ms)

    def collect_digits(
        self, *, max_digits: int = 99, timeout: float = 5.0, digit_timeout: float = 2.0,
        finish_on_key: str = "#", valid_digits: str = "0123456789*#", barge_in: bool = True,
    ) -> Deferred[DigitsResult]:  # fmt: skip
        """Collect digits (Plivo GetDigits); a running collector is stopped first."""
        self._check_open()
        return self._ops.collect_digits(
            max_digits=max_digits, timeout=timeout, digit_timeout=digit_timeout,
            finish_on_key=finish_on_key, valid_digits=valid_digits, barge_in=barge_in,
        )  # fmt: skip

    def record(
        self, *, directory: Path | None = None, max_length: float = 60.0,
        finish_on_key: str = "1234567890*#", silence_timeout: float = 15.0, beep: bool = True,
        path: Path | None = None, file_format: str = "wav",
    ) -> Deferred[RecordingResult]:  # fmt: skip
        """Record the peer (Plivo Record) to ``path``, or in ``directory`` (the
        recordings directory), as ``wav`` or ``mp3``."""
        self._check_open()
        return self._ops.record(
            directory=directory, max_length=max_length, finish_on_key=finish_on_key,
            silence_timeout=silence_timeout, beep=beep, path=path, file_format=file_format,
        )  # fmt: skip

    def record_call(
        self, *, path: Path, file_format: str = "wav", stereo: bool = True,
        max_length: float = 4 * 3600.0,
    ) -> Deferred[RecordingResult]:  # fmt: skip
        """Record both directions in the background (see :mod:`media.recorder`)."""
        self._check_open()
        return self._ops.record_call(
            path=path, file_format=file_format, stereo=stereo, max_length=max_length
        )

    def watch(self, *, silence_ms: int | None = None, beep: bool = False) -> Deferred[str]:
        """Fire with ``"silence"`` or ``"beep"`` (see :mod:`media.detect`)."""
        self._check_open()
        if not silence_ms and not beep:
            raise MediaArgumentError("watch: give silence_ms or beep")
        return AudioWatch(self, self.ticker, silence_ms=silence_ms, beep=beep).deferred

    def stop_output(self) -> None:
        """End the running play/speak/tone only (REST ``DELETE …/Play/``, ``…/Speak/``)."""
        self._ops.stop_output()

    def stop_recording(self, path: Path | None = None) -> None:
        """End the running recordings (or the one writing ``path``), keeping what
        was recorded."""
        self._ops.stop_recording(path)

    def stop(self) -> None:
        """End output, collection and recording now, with their partial results."""
        self._ops.stop()

    # Bridging ---------------------------------------------------------------------

    def add_listener(self, listener: IMediaListener) -> None:
        """Deliver received frames and digits to ``listener``."""
        if listener not in self._listeners:
            self._listeners.append(listener)
        self._update_receive_path()

    def remove_listener(self, listener: IMediaListener) -> None:
        """Stop delivering to ``listener``."""
        if listener in self._listeners:
            self._listeners.remove(listener)
        self._update_receive_path()

    def set_relaying(self, enabled: bool) -> None:
        """While relaying, idle frames are not filled with silence."""
        self._relaying = enabled
        self._relay_timeline.clear()
        self._marker = True

    def rtp_timestamp_now(self) -> int:
        """Our stream's RTP timestamp for the present moment (8 kHz units)."""
        frames = self.ticker.frame_at(self.clock.seconds(), self._phase) - self._first_frame
        return self.stream.timestamp_at(round(frames * SAMPLES_PER_FRAME))

    def _start_relay_source(self, ssrc: int, timestamp: int) -> int:
        """Map a source not relayed before: it starts now on our timeline, marked."""
        self._marker = True
        return self._relay_timeline.start(ssrc, timestamp, self.rtp_timestamp_now())

    def _can_send(self) -> bool:
        return self._sending

    def relay_audio(self, frame: AudioFrame) -> None:
        """Send a frame heard elsewhere, transcoded to our codec, on our timeline."""
        self.relay_payload(frame.codec, frame.payload, frame.timestamp, frame.ssrc, frame.marker)

    def _relayable(self, codec: Codec, payload: bytes) -> tuple[int, bytes] | None:
        """Audio made elsewhere, as our payload type and codec; ``None`` (counted) while
        we do not send it: not sending, not negotiated, our own output or DTMF."""
        neg = self.negotiated
        ops = self._ops
        if not self._sending or neg is None or ops.output is not None or ops.suppress_audio:
            self.counters.dropped_relay += 1
            return None
        if codec is not neg.codec:
            table = codec.transcode_table(neg.codec)
            if table is not None:
                payload = payload.translate(table)
        return neg.payload_type, payload

    def relay_payload(
        self, codec: Codec, payload: bytes, timestamp: int, ssrc: int, marker: bool
    ) -> None:
        """:meth:`relay_audio` without the frame object (the per-packet bridge path)."""
        ours = self._relayable(codec, payload)
        if ours is None:
            return
        ts = self._relay_timeline.map(ssrc, timestamp)
        if ts is None:
            ts = self._start_relay_source(ssrc, timestamp)
        self._send(ours[0], ts, ours[1], self._marker or marker)
        self._marker = False
        self.counters.relayed_in += 1

    def send_frame(self, frame: int, codec: Codec, payload: bytes) -> None:
        """Send a 20 ms frame made elsewhere (a conference mix) as our tick ``frame``.

        It is stamped on our own timeline (``base + 160 * (frame - first frame)``),
        transcoded to our codec if need be, and dropped (counted) while our own
        output, or a DTMF event, holds the stream.
        """
        ours = self._relayable(codec, payload)
        if ours is None:
            return
        timestamp = self.stream.timestamp_at(SAMPLES_PER_FRAME * (frame - self._first_frame))
        self._send(ours[0], timestamp, ours[1], self._marker)
        self._marker = False
        self.counters.relayed_in += 1

    def relay_event(self, frame: EventFrame) -> None:
        """Send a telephone-event heard elsewhere (needs our peer's telephone-event PT)."""
        neg = self.negotiated
        te = neg.telephone_event if neg else None
        if not self._can_send() or te is None or self._ops.digits_out:
            self.counters.dropped_relay += 1
            return
        ts = self._relay_timeline.map(frame.ssrc, frame.timestamp)
        if ts is None:
            ts = self._start_relay_source(frame.ssrc, frame.timestamp)
        self._send(te, ts, frame.payload, frame.marker)
        self.counters.relayed_in += 1

    # Sending ----------------------------------------------------------------------

    def _send(self, payload_type: int, timestamp: int, payload: bytes, marker: bool) -> None:
        remote = self.remote
        if remote is None or self.transport is None:
            return
        sendto = self._sendto
        if sendto is None:
            # A real UDP port: write to its socket directly, skipping the
            # per-call address validation of Port.write (the remote address
            # came from validated SDP or from the kernel).  Fakes get write().
            sock = getattr(self.transport, "socket", None)
            sendto = self._sendto = sock.sendto if sock is not None else self.transport.write
            self._poller = getattr(self.transport, "poller", None)  # set when it listened
        packet = self.stream.packet(payload_type, timestamp, payload, marker)
        if self._ops.call_recordings:
            self._record_sent(payload_type, timestamp, payload)
        poller = self._poller
        if poller is not None and poller.outbox is not None:  # sent after the poller's reads
            poller.outbox.append((sendto, packet, remote, self.counters))
            return
        try:
            sendto(packet, remote)
        except OSError:
            self.counters.send_errors += 1  # buffer full, unreachable: the frame is lost
            return
        self.counters.sent += 1

    def _record_sent(self, payload_type: int, timestamp: int, payload: bytes) -> None:
        neg = self.negotiated
        if neg is not None and payload_type == neg.payload_type:
            samples = neg.codec.decode(payload)
            self._ops.sent(samples, timestamp, self.clock.seconds())

    def _on_frame(self, frame: int, now: float) -> None:
        """The shared tick: the operations' timers, then frame ``frame`` of our stream."""
        ops = self._ops
        if ops.call_recordings or ops.collector is not None or ops.recording is not None:
            ops.on_tick(now)  # their timers; checked here, as most ticks have none to run
        if self._dtmf_rx.next_deadline() is not None:
            self._dtmf_rx.poll(now)  # ends a digit whose end packets were lost
        if self._relaying and ops.output is None and not ops.digits_out:
            ops.suppress_audio = False
            return  # bridged with nothing of our own to send: relayed frames fill the stream
        neg = self.negotiated
        codec = neg.codec if neg else self._codecs[0]
        sending = self._sending
        payload = ops.frame(frame, codec, neg, sending, self._relaying)
        if payload is not None and sending and neg is not None:
            units = SAMPLES_PER_FRAME * (frame - self._first_frame)
            self._send(neg.payload_type, self.stream.timestamp_at(units), payload, self._marker)
            self._marker = False

    # Receiving --------------------------------------------------------------------

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """Parse, filter and dispatch one RTP packet; never raises.

        While bridged with nothing else listening to the audio, a plain audio
        packet (no CSRC, extension or padding, the negotiated payload type)
        from the latched source goes straight to the other leg: same checks
        and statistics, no frame object.  Everything else takes the full path.
        """
        fast = self._fast
        if (
            fast is not None
            and datagram[:1] == b"\x80"
            and (datagram[1] & 0x7F) == fast.payload_type
            and RTP_HEADER_SIZE <= len(datagram) <= MAX_RTP_PACKET
            and addr == self.remote
        ):
            second, seq, timestamp, ssrc = FAST_HEADER.unpack_from(datagram, 1)
            self.counters.received += 1
            self.sources.account(ssrc, seq, timestamp, self.clock.seconds())
            fast.target.relay_payload(fast.codec, datagram[12:], timestamp, ssrc, second > 0x7F)
            fast.bridge.frames += 1
            return
        if self.state is SessionState.CLOSED:
            return
        got = admit(datagram, addr, self.negotiated, self.remote, self.latched, self.counters)
        if got is None:
            return
        (_pt, marker, seq, timestamp, ssrc, payload), kind = got
        if not self.latched:
            self.latched = True  # symmetric RTP: answer where the peer really is
            self.remote = (addr[0], addr[1])
            self._update_receive_path()
        self.counters.received += 1
        now = self.clock.seconds()
        self.sources.account(ssrc, seq, timestamp, now)
        if isinstance(kind, Codec):
            self._on_audio(kind, payload, timestamp, ssrc, marker, now)
        elif kind is _EVENT:  # comfort noise is accepted and ignored
            self._on_event(EventFrame(payload, timestamp, ssrc, marker), now)

    def _on_audio(
        self, codec: Codec, payload: bytes, timestamp: int, ssrc: int, marker: bool, now: float
    ) -> None:
        if self._listeners:
            frame = AudioFrame(codec, payload, timestamp, ssrc, marker)
            for listener in list(self._listeners):
                listener.audio_received(self, frame)
        ops = self._ops
        if ops.recording is None and self._inband is None and not ops.call_recordings:
            return
        samples = codec.decode(payload)
        ops.heard(samples, timestamp, ssrc, now)
        if self._inband is not None:
            for digit in self._inband.feed(samples):
                self._on_digit(digit, now)

    def _on_event(self, frame: EventFrame, now: float) -> None:
        for listener in list(self._listeners):
            listener.event_received(self, frame)
        for event in self._dtmf_rx.feed(frame.ssrc, frame.timestamp, frame.payload, now):
            if event.kind is DtmfEventKind.BEGIN:
                self._on_digit(event.digit, now)

    def _on_digit(self, digit: str, now: float) -> None:
        _log.debug("{call_uuid} digit {digit}", call_uuid=self.call_uuid, digit=digit)
        for listener in list(self._listeners):
            listener.digit_received(self, digit)
        self._ops.on_digit(digit, now)

    def _update_receive_path(self) -> None:
        """Run the in-band detector only when digits matter and events were not
        negotiated; take the fast relay path when only a bridge wants the audio."""
        neg = self.negotiated
        ops = self._ops
        wanted = wants_inband(
            neg,
            collecting=ops.collector is not None,
            recording=ops.recording is not None,
            listening=bool(self._listeners),
        )
        if wanted and self._inband is None:
            self._inband = InbandDtmfDetector()
        elif not wanted:
            self._inband = None
        self._fast = relay_route(
            neg, self, self._listeners, target_type=RTPSession,
            full_path_needed=(
                not self.latched or bool(ops.recording) or self._inband is not None
                or bool(ops.call_recordings)
            ),
        )  # fmt: skip

    # Life ----------------------------------------------------------------------------

    def summary(self) -> str:
        """The session's packet counters in one line, for the log of the call's end."""
        c = self.counters
        lost = sum(s.lost for s in self.sources.values())
        return (
            f"sent {c.sent}, received {c.received}, lost {lost}, malformed {c.malformed},"
            f" foreign {c.foreign}, unknown PT {c.unknown_pt}"
        )

    def close(self) -> None:
        """End every operation (they fail with SessionClosedError), release the ports."""
        if self.state is SessionState.CLOSED:
            return
        self.state = SessionState.CLOSED
        self._sending = False
        self._fast = None
        self.ticker.unsubscribe(self._on_frame)
        self._ops.close()  # recordings keep what they heard; the rest fail
        self._listeners.clear()
        if self.rtcp is not None:
            self.rtcp.stop()
        if self.transport is not None:  # not for a session whose port failed to bind
            _log.debug("{call_uuid} media closed: {summary}", call_uuid=self.call_uuid,
                       summary=self.summary())  # fmt: skip
        if self._on_close is not None:
            self._on_close(self)
