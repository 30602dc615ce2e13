"""Doubles for call-layer unit tests: a media engine (real SDP, no sockets, no ticks),
a leg, and what a call works with (fetcher, CDR store, journal, switchboard)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from zope.interface import implementer

from media import Direction, IMediaListener, IMediaSession, Negotiated, SessionDescription
from media.sdp import Origin, accept_answer, answer_offer, make_offer
from telephony.calls.call_services import CallServices
from telephony.calls.causes import Cause
from telephony.calls.cdr import CallRecord
from telephony.calls.journal import LiveCall
from telephony.calls.leg import LegEnd, LegState
from telephony.calls.recordings import CallRecordings
from telephony.sip.uri import SipURI
from xml_dsl import IFetcher, Method, parse
from xml_dsl.verbs import Number, Response, User

_ports = itertools.count(40000, 2)


@implementer(IMediaSession)
class FakeSession:
    """Negotiates real SDP; records what the call layer asked of it."""

    def __init__(self, call_uuid: str) -> None:
        self.call_uuid = call_uuid
        self.state = "idle"
        self.local_address = ("127.0.0.1", next(_ports))
        self.negotiated: Negotiated | None = None
        self.closed = False
        self.digits_sent: list[str] = []
        self.played: list[Sequence[str]] = []
        #: Every play, speak and tone asked for, with the Deferred a test may fire.
        self.outputs: list[tuple[str, Any, Deferred[Any]]] = []
        self.stopped_outputs = 0
        self.listeners: list[IMediaListener] = []
        self.relaying = False
        #: Recordings asked for: ("record" or "record_call", arguments, Deferred).
        self.recordings: list[tuple[str, dict[str, Any], Deferred[Any]]] = []
        #: watch() calls: ((silence_ms, beep), Deferred).
        self.watches: list[tuple[tuple[int | None, bool], Deferred[str]]] = []
        #: Frames a conference mixer sent: (tick frame, payload).
        self.frames_sent: list[tuple[int, bytes]] = []
        self._offer: SessionDescription | None = None
        self._version = 0

    def _origin(self) -> Origin:
        self._version += 1
        return Origin("-", 1, self._version, "127.0.0.1")

    def create_offer(self, direction: Direction = Direction.SENDRECV) -> SessionDescription:
        self._offer = make_offer(
            self._origin(), address="127.0.0.1", port=self.local_address[1], direction=direction
        )
        return self._offer

    def accept_offer(
        self, offer: SessionDescription, wanted: Direction = Direction.SENDRECV
    ) -> SessionDescription:
        answer, self.negotiated = answer_offer(
            offer, self._origin(), address="127.0.0.1", port=self.local_address[1], wanted=wanted
        )
        return answer

    def accept_answer(self, answer: SessionDescription) -> Negotiated:
        assert self._offer is not None
        self.negotiated = accept_answer(self._offer, answer)
        return self.negotiated

    def _output(self, kind: str, what: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.outputs.append((kind, what, d))
        return d

    def play(self, sources: Sequence[str], *, loop: int = 1) -> Deferred[Any]:
        self.played.append(sources)
        return self._output("play", list(sources))

    def speak(
        self, text: str, *, voice: str = "WOMAN", language: str = "en-US", loop: int = 1
    ) -> Deferred[Any]:
        return self._output("speak", text)

    def play_tone(self, name: str, duration: float | None = None) -> Deferred[Any]:
        return self._output("tone", name)

    def press(self, digit: str) -> None:
        """The far end pressed ``digit`` (an RFC 4733 event, as the session reports it)."""
        for listener in list(self.listeners):
            listener.digit_received(self, digit)

    def send_digits(self, digits: str, *, digit_ms: int = 100, gap_ms: int = 100) -> Deferred[None]:
        self.digits_sent.append(digits)
        return succeed(None)

    def collect_digits(self, **kwargs: Any) -> Deferred[Any]:
        return Deferred()

    def record(self, **kwargs: Any) -> Deferred[Any]:
        return self._recording("record", kwargs)

    def record_call(self, **kwargs: Any) -> Deferred[Any]:
        return self._recording("record_call", kwargs)

    def _recording(self, kind: str, kwargs: dict[str, Any]) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.recordings.append((kind, kwargs, d))
        return d

    def watch(self, *, silence_ms: int | None = None, beep: bool = False) -> Deferred[str]:
        d: Deferred[str] = Deferred()
        self.watches.append(((silence_ms, beep), d))
        return d

    def stop(self) -> None:
        pass

    def stop_output(self) -> None:
        self.stopped_outputs += 1

    def stop_recording(self) -> None:
        pass

    def add_listener(self, listener: IMediaListener) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener: IMediaListener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    def set_relaying(self, enabled: bool) -> None:
        self.relaying = enabled

    def relay_audio(self, frame: Any) -> None:
        pass

    def relay_event(self, frame: Any) -> None:
        pass

    def send_frame(self, frame: int, codec: Any, payload: bytes) -> None:
        self.frames_sent.append((frame, payload))

    def close(self) -> None:
        self.closed = True

    def summary(self) -> str:
        return "fake"


class FakeMediaEngine:
    """Hands out :class:`FakeSession` objects."""

    def __init__(self) -> None:
        self.sessions: list[FakeSession] = []

    def create_session(self, *, call_uuid: str = "") -> FakeSession:
        session = FakeSession(call_uuid)
        self.sessions.append(session)
        return session

    def run_blocking(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """Runs *f* at once (the real engine uses a thread)."""
        return succeed(f(*args))


def sdp_offer(port: int = 30000) -> bytes:
    """A phone's PCMU offer with telephone-event."""
    return make_offer(Origin("phone", 7, 1, "10.0.0.1"), address="10.0.0.1", port=port).to_bytes()


@attrs.frozen
class FakeInvite:
    """What the call layer reads of a leg's INVITE."""

    call_id: str
    uri: SipURI


class FakeLeg:
    """A leg that moves only when told: the owner's calls (answer, hangup, reinvite)
    are recorded and act at once; the peer's side is :meth:`peer_rings`,
    :meth:`peer_answers` and :meth:`end`.  Listeners and ``ended`` behave as a real
    leg's: a state change is told to every listener, and the end fires ``ended``
    before the media session closes."""

    def __init__(self, uuid: str, clock: Clock, media: FakeMediaEngine | None = None) -> None:
        self.uuid = uuid
        self.clock = clock
        self.engine = media or FakeMediaEngine()
        self.state = LegState.NEW
        self.listeners: list[Callable[[Any, LegState], None]] = []
        self.on_reoffer: Callable[[Any, SessionDescription], SessionDescription] | None = None
        self.ended: Deferred[LegEnd] = Deferred()
        self.end_info: LegEnd | None = None
        self.media: FakeSession | None = None
        self.started_at = clock.seconds()
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.call_id = f"{uuid}@example.test"
        self.invite = FakeInvite(self.call_id, SipURI("sip", uuid, "10.0.0.2"))
        self.started = 0
        self.hangups: list[tuple[Cause, str]] = []
        self.reinvites: list[Direction] = []

    def __repr__(self) -> str:
        return f"<FakeLeg {self.uuid} {self.state.value}>"

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    def ensure_media(self) -> FakeSession:
        if self.media is None:
            self.media = self.engine.create_session(call_uuid=self.uuid)
        return self.media

    def _move(self, state: LegState) -> None:
        if self.state is state or self.state is LegState.ENDED:
            return
        self.state = state
        for listener in list(self.listeners):
            listener(self, state)

    def start(self) -> None:
        self.started += 1
        self.ensure_media()

    def ring(self) -> None:
        self._move(LegState.RINGING)

    def pre_answer(self) -> Deferred[None]:
        self.ensure_media()
        self._move(LegState.EARLY)
        return succeed(None)

    def answer(self) -> Deferred[None]:
        if self.state in (LegState.NEW, LegState.RINGING, LegState.EARLY):
            self.ensure_media()
            self.answered_at = self.clock.seconds()
            self._move(LegState.ANSWERED)
        return succeed(None)

    peer_rings = ring
    peer_answers = answer

    def peer_early_media(self) -> None:
        self.ensure_media()
        self._move(LegState.EARLY)

    def hangup(self, cause: Cause = Cause.NORMAL, source: str = "Plivo") -> None:
        if self.state is LegState.ENDED:
            return  # as a real leg: nothing to hang up
        self.hangups.append((cause, source))
        self.end(cause, source)

    def end(self, cause: Cause, source: str, sip_status: int | None = None) -> None:
        """The leg is over (a BYE from the peer, a refusal, or our hangup)."""
        if self.state is LegState.ENDED:
            return
        self._move(LegState.ENDED)
        self.ended_at = self.clock.seconds()
        self.end_info = LegEnd(cause, source, sip_status)
        self.ended.callback(self.end_info)
        if self.media is not None:
            self.media.close()

    def reinvite(self, direction: Direction = Direction.SENDRECV) -> None:
        self.reinvites.append(direction)

    def duration(self) -> int:
        return int((self.ended_at or self.clock.seconds()) - self.started_at)

    def bill_duration(self) -> int:
        if self.answered_at is None:
            return 0
        return int((self.ended_at or self.clock.seconds()) - self.answered_at)


@implementer(IFetcher)
class FakeFetcher:
    """Serves XML documents by URL; any other URL waits (``pending``) until a test
    fires or a cancellation stops it.  Notifications are recorded."""

    def __init__(self, documents: Mapping[str, bytes] | None = None) -> None:
        self.documents = dict(documents or {})
        self.fetched: list[tuple[str, Method, dict[str, str]]] = []
        self.notified: list[tuple[str, Method, dict[str, str]]] = []
        self.pending: list[Deferred[Response]] = []
        #: The URLs whose pending fetch was cancelled.
        self.cancelled: list[str] = []

    def fetch(self, url: str, method: Method, params: Mapping[str, str]) -> Deferred[Response]:
        self.fetched.append((url, method, dict(params)))
        if url in self.documents:
            return succeed(parse(self.documents[url]))
        d: Deferred[Response] = Deferred(lambda _: self.cancelled.append(url))
        self.pending.append(d)
        return d

    def notify(self, url: str, method: Method, params: Mapping[str, str]) -> Deferred[None]:
        self.notified.append((url, method, dict(params)))
        return succeed(None)


@attrs.define
class FakeCdrs:
    """Keeps the records written."""

    written: list[CallRecord] = attrs.Factory(list)

    def write(self, record: CallRecord) -> Deferred[None]:
        self.written.append(record)
        return succeed(None)


@attrs.define
class FakeJournal:
    """Keeps what was journaled: started calls, and answers by CallUUID."""

    started_calls: list[LiveCall] = attrs.Factory(list)
    answers: list[tuple[str, float]] = attrs.Factory(list)

    def started(self, call: LiveCall) -> Deferred[None]:
        self.started_calls.append(call)
        return succeed(None)

    def answered(self, call_uuid: str, at: float) -> Deferred[None]:
        self.answers.append((call_uuid, at))
        return succeed(None)


class FakeSwitchboard:
    """Places the B legs a test queued (a leg, or the Cause the placing failed with),
    and records the calls that ended."""

    def __init__(self) -> None:
        self.queued: list[FakeLeg | Cause] = []
        self.placed: list[tuple[Any, Number | User, int]] = []
        self.ended: list[tuple[Any, LegEnd]] = []

    def placer(self, call: Any) -> Callable[[Number | User, int, Any], Any]:
        def place(target: Number | User, position: int, spec: Any) -> Any:
            self.placed.append((call, target, position))
            leg = self.queued.pop(0)
            if not isinstance(leg, Cause):
                leg.start()
            return leg

        return place

    def call_ended(self, call: Any, end: LegEnd) -> None:
        self.ended.append((call, end))


def make_services(
    clock: Clock, tmp_path: Path, **overrides: Any
) -> tuple[CallServices, FakeFetcher, FakeCdrs, FakeSwitchboard]:
    """Services for a call, from fakes (real recordings, in *tmp_path*)."""
    fetcher = overrides.pop("fetcher", FakeFetcher())
    cdrs = FakeCdrs()
    switchboard = FakeSwitchboard()
    recordings = CallRecordings(
        directory=tmp_path,
        url_for=lambda name: f"http://example.test/recordings/{name}",
        store=None,
        run_blocking=FakeMediaEngine().run_blocking,
        clock=clock,
    )
    services = CallServices(
        clock=clock,
        fetcher=fetcher,
        cdrs=cdrs,
        switchboard=switchboard,
        recordings=recordings,
        conferences=overrides.pop("conferences", None),  # type: ignore[arg-type]
        domain="example.test",
        **overrides,
    )
    return services, fetcher, cdrs, switchboard
