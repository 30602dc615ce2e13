"""The seam between the media engine and its users (the call layer, XML verbs).

:class:`IMediaSession` is what a call leg holds: SDP offer/answer, the
operations Plivo verbs need (play, speak, send_digits, collect_digits, record,
stop), and the hooks a bridge needs (listeners for received frames, relaying
frames into the outgoing stream).  Every operation returns a cancellable
Deferred: cancelling stops the operation and releases what it holds, in one
place, and the Deferred fails with ``CancelledError``; :meth:`~IMediaSession.stop`
instead ends operations early with their partial result.

The value objects here are what those Deferreds fire with and what listeners
receive.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from pathlib import Path

import attrs
from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from media.g711 import Codec
from media.sdp import Direction, Negotiated, SessionDescription

__all__ = (
    "AudioFrame",
    "DigitsEnd",
    "DigitsResult",
    "EventFrame",
    "IMediaListener",
    "IMediaSession",
    "PlayOutcome",
    "RecordEnd",
    "RecordingResult",
    "SessionState",
)


class SessionState(enum.Enum):
    """Life of a media session."""

    #: Bound to its ports, no remote yet (before offer/answer completes).
    IDLE = "idle"
    #: Negotiated: sending and/or receiving according to the direction.
    ACTIVE = "active"
    #: Closed: ports released, every operation ended.
    CLOSED = "closed"


class PlayOutcome(enum.Enum):
    """How a play, speak or tone operation ended."""

    #: Everything was played, all loops.
    FINISHED = "finished"
    #: :meth:`IMediaSession.stop` was called, or another output took over.
    STOPPED = "stopped"
    #: A digit arrived while a collector allowed barge-in.
    BARGED_IN = "barged-in"


class DigitsEnd(enum.Enum):
    """Why digit collection ended."""

    MAX_DIGITS = "max-digits"
    FINISH_KEY = "finish-key"
    TIMEOUT = "timeout"
    STOPPED = "stopped"


@attrs.frozen
class DigitsResult:
    """Collected digits, without the finish key.

    :ivar digits: the digits, in order.
    :ivar reason: why collection ended.
    :ivar finish_key: the finish key pressed, or ``""``.
    """

    digits: str
    reason: DigitsEnd
    finish_key: str = ""


class RecordEnd(enum.Enum):
    """Why a recording ended."""

    MAX_LENGTH = "max-length"
    FINISH_KEY = "finish-key"
    SILENCE = "silence"
    STOPPED = "stopped"
    #: The session closed (the call ended): what was recorded is kept.
    CLOSED = "closed"


@attrs.frozen
class RecordingResult:
    """A finished recording.

    :ivar path: the file (8 kHz, 16-bit WAV or MP3, mono or stereo).
    :ivar duration: its length in seconds.
    :ivar reason: why it ended.
    :ivar digits: the finish key pressed, or ``""``.
    :ivar started_at: when its first sample was heard (the session's clock, seconds;
        after any beep).
    :ivar channels: 1, or 2 (left: the session's peer; right: what it was sent).
    """

    path: Path
    duration: float
    reason: RecordEnd
    digits: str = ""
    started_at: float = 0.0
    channels: int = 1


@attrs.frozen
class AudioFrame:
    """An audio packet received on a session, for listeners and relays.

    :ivar codec: the packet's codec.
    :ivar payload: the encoded payload.
    :ivar timestamp: its RTP timestamp (8 kHz units).
    :ivar ssrc: its source.
    :ivar marker: its M bit.
    """

    codec: Codec
    payload: bytes
    timestamp: int
    ssrc: int
    marker: bool


@attrs.frozen
class EventFrame:
    """A telephone-event packet received on a session (RFC 4733), passed on unchanged.

    :ivar payload: the 4-byte event payload.
    :ivar timestamp: its RTP timestamp (the event's start).
    :ivar ssrc: its source.
    :ivar marker: its M bit.
    """

    payload: bytes
    timestamp: int
    ssrc: int
    marker: bool


class IMediaListener(Interface):
    """Receives what a session hears; a bridge is one.

    Two optional attributes let a session skip work per packet: a listener
    with ``wants_audio = False`` (e.g. a digit tap) is never given audio
    frames; one with a ``relay_target(session)`` method (a bridge) only
    forwards audio to that session, so the session may relay plain packets
    to it directly, without building an :class:`AudioFrame` (see
    :meth:`media.session.RTPSession.datagramReceived`).
    """

    def audio_received(session: IMediaSession, frame: AudioFrame) -> None:  # noqa: N805
        """An audio packet arrived from the session's peer."""

    def event_received(session: IMediaSession, frame: EventFrame) -> None:  # noqa: N805
        """A telephone-event packet arrived from the session's peer."""

    def digit_received(session: IMediaSession, digit: str) -> None:  # noqa: N805
        """A digit began (from RFC 4733 events or in-band detection), once per key press."""


class IMediaSession(Interface):
    """One RTP stream with a peer, and what can be done with it."""

    call_uuid = Attribute("The call this session belongs to, for logs (str).")
    state = Attribute("The :class:`SessionState`.")
    local_address = Attribute("Our RTP (host, port); RTCP is on port + 1.")
    negotiated = Attribute("The :class:`~media.sdp.Negotiated` result, or None before SDP.")

    def create_offer(direction: Direction = Direction.SENDRECV) -> SessionDescription:  # noqa: N805
        """Our SDP offer, e.g. for a B leg, or a re-INVITE (bumps the o= version).

        :param direction: ``sendonly`` holds the peer, ``inactive`` both ways.
        """

    def accept_offer(
        offer: SessionDescription,  # noqa: N805
        wanted: Direction = Direction.SENDRECV,
    ) -> SessionDescription:
        """Answer the peer's offer and start the stream accordingly.

        :returns: our answer.
        :raises media.errors.SDPError: with ``status_hint`` 488 if nothing is acceptable.
        """

    def accept_answer(answer: SessionDescription) -> Negotiated:  # noqa: N805
        """Settle our last offer with the peer's answer.

        :returns: what was settled; the stream follows it.
        """

    def play(sources: Sequence[str], *, loop: int = 1) -> Deferred[PlayOutcome]:  # noqa: N805
        """Play WAV files or URLs in order, ``loop`` times (0 = until stopped).

        :returns: Deferred firing with a :class:`PlayOutcome`.
        """

    def speak(
        text: str,  # noqa: N805
        *,
        voice: str = "WOMAN",
        language: str = "en-US",
        loop: int = 1,
    ) -> Deferred[PlayOutcome]:
        """Say ``text`` with eSpeak NG.

        :returns: Deferred firing with a :class:`PlayOutcome`.
        """

    def play_tone(name: str, duration: float | None = None) -> Deferred[PlayOutcome]:  # noqa: N805
        """Play ``"beep"``, ``"ringback"`` or ``"silence"`` (``duration`` seconds or until stopped).

        :returns: Deferred firing with a :class:`PlayOutcome`.
        """

    def send_digits(digits: str, *, digit_ms: int = 100, gap_ms: int = 100) -> Deferred[None]:  # noqa: N805
        """Send DTMF (``w`` = 0.5 s, ``W`` = 1 s pauses).

        :returns: Deferred firing with ``None`` once the last digit was sent.
        """

    def collect_digits(
        *,
        max_digits: int = 99,
        timeout: float = 5.0,
        digit_timeout: float = 2.0,
        finish_on_key: str = "#",
        valid_digits: str = "0123456789*#",
        barge_in: bool = True,
    ) -> Deferred[DigitsResult]:
        """Collect digits; the first-digit timeout starts once the current output ends.

        :returns: Deferred firing with a :class:`DigitsResult`.
        """

    def record(
        *,
        directory: Path | None = None,
        max_length: float = 60.0,
        finish_on_key: str = "1234567890*#",
        silence_timeout: float = 15.0,
        beep: bool = True,
        path: Path | None = None,
        file_format: str = "wav",
    ) -> Deferred[RecordingResult]:
        """Record what the peer says to a mono file (``path``, else a new name in
        ``directory``), ``wav`` or ``mp3``.  When the session closes it ends with
        what was recorded.

        :returns: Deferred firing with a :class:`RecordingResult`.
        """

    def record_call(
        *,
        path: Path,
        file_format: str = "wav",
        stereo: bool = True,
        max_length: float = 4 * 3600.0,
    ) -> Deferred[RecordingResult]:
        """Record both directions in the background: what the peer says and what it is
        sent (prompts, or the other leg of a bridge), on two channels or mixed to one,
        until :meth:`stop_recording`, ``max_length`` seconds, or the session closes
        (all of which keep what was recorded).  Several may run at once.

        :returns: Deferred firing with a :class:`RecordingResult`.
        """

    def watch(*, silence_ms: int | None = None, beep: bool = False) -> Deferred[str]:
        """Fire with ``"silence"`` once ``silence_ms`` of silence is heard, or
        ``"beep"`` when an answering machine's beep is, whichever comes first."""

    def stop() -> None:
        """End running play/speak/tone, collect and record operations with partial results."""

    def stop_output() -> None:
        """End the running play/speak/tone only."""

    def stop_recording(path: Path | None = None) -> None:  # noqa: N805
        """End the running recordings (or only the one writing ``path``), keeping
        what was recorded."""

    def add_listener(listener: IMediaListener) -> None:  # noqa: N805
        """Deliver received frames and digits to ``listener``."""

    def remove_listener(listener: IMediaListener) -> None:  # noqa: N805
        """Stop delivering to ``listener``."""

    def set_relaying(enabled: bool) -> None:  # noqa: N805
        """While enabled, idle silence is not generated; relayed frames fill the stream."""

    def relay_audio(frame: AudioFrame) -> None:  # noqa: N805
        """Send a frame heard on another session to our peer, transcoding if needed."""

    def send_frame(frame: int, codec: Codec, payload: bytes) -> None:  # noqa: N805
        """Send a 20 ms frame made elsewhere (a conference mix) as our shared-tick
        ``frame``, on our own timeline; dropped while our own output plays."""

    def relay_event(frame: EventFrame) -> None:  # noqa: N805
        """Send a telephone-event heard on another session to our peer."""

    def close() -> None:
        """Stop everything, send RTCP BYE, release the ports."""

    def summary() -> str:
        """The packet counters in one line (sent, received, lost…), for logs."""
