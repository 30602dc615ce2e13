"""A media engine double for call-layer unit tests: real SDP, no sockets, no ticks."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from media import Direction, IMediaListener, IMediaSession, Negotiated, SessionDescription
from media.sdp import Origin, accept_answer, answer_offer, make_offer

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
        return Deferred()

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


def sdp_offer(port: int = 30000) -> bytes:
    """A phone's PCMU offer with telephone-event."""
    return make_offer(Origin("phone", 7, 1, "10.0.0.1"), address="10.0.0.1", port=port).to_bytes()


_unused = Path
