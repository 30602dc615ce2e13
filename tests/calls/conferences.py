"""Conference test doubles: calls with real RTP sessions, a mixer engine on a Clock.

The members' media are real RTP sessions on a fake transport and the mixer is the
real one, so what a member hears can be checked on the packets it was sent; the
calls are stand-ins with just what a room reads of a call.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from media import Mixer
from media.g711 import Codec
from media.player import run_synchronously
from media.session import RTPSession
from media.ticker import SharedTicker
from telephony.calls.conference import Conferences, Room
from telephony.calls.recordings import CallInfo, CallRecordings
from tests.media.helpers import REMOTE, StampedTransport, advance_to, make_session, rtp
from tests.tones import tone
from xml_dsl import ConferenceEvent, ConferenceResult, ConferenceSpec

__all__ = ("MUSIC", "MUSIC_HZ", "MUSIC_URL", "SPEECH", "FakeCall", "World", "world")

MUSIC_URL = "http://127.0.0.1:9/music.wav"
MUSIC_HZ = 300.0
#: The wait music: 100 ms of a 300 Hz tone then 100 ms of silence, looped.
MUSIC = np.concatenate([tone(MUSIC_HZ, 800, 5000), np.zeros(800, np.int16)])
SPEECH = tone(2000.0, 1600, 3000)


class Loader:
    def __init__(self) -> None:
        self.loads: list[str] = []

    def load(self, source: str) -> Deferred[np.ndarray]:
        self.loads.append(source)
        return succeed(MUSIC)


class Speaker:
    def synthesize(self, text: str, *, voice: str, language: str) -> Deferred[np.ndarray]:
        return succeed(SPEECH)


class Engine:
    """Makes real mixers on the test's tick, with canned audio to play."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.ticker = SharedTicker(clock=clock)
        self.loader = Loader()

    def create_mixer(self, *, name: str = "") -> Mixer:
        return Mixer(ticker=self.ticker, clock=self.clock, loader=self.loader,  # type: ignore[arg-type]
                     speaker=Speaker(), name=name)  # type: ignore[arg-type]  # fmt: skip


@attrs.define
class FakeLeg:
    """A leg: its media, and the hangups asked of it (cause name, source)."""

    media: RTPSession | None
    hangups: list[tuple[str, str]] = attrs.Factory(list)

    def hangup(self, cause: Any, source: str = "Plivo") -> None:
        self.hangups.append((cause.name, source))


@attrs.define(eq=False)
class FakeCall:
    """What a room reads of a call."""

    uuid: str
    caller: str
    called: str
    leg: FakeLeg
    transport: StampedTransport
    hz: float
    caller_name: str = ""
    direction: str = "inbound"
    sent: int = 0
    events: list[ConferenceEvent] = attrs.Factory(list)

    def recording_info(self) -> CallInfo:
        return CallInfo(self.uuid, self.caller, self.called)

    @property
    def media(self) -> RTPSession:
        assert self.leg.media is not None
        return self.leg.media

    def say(self) -> None:
        samples = tone(self.hz, 160, offset=160 * self.sent)
        packet = rtp(0, self.sent, 160 * self.sent, Codec.PCMU.encode(samples), ssrc=int(self.hz))
        self.media.datagramReceived(packet, REMOTE)
        self.sent += 1

    def audio(self, since: float, until: float = 1e9) -> np.ndarray:
        payloads = [p.payload for t, p in self.transport.packets() if since <= t < until]
        return Codec.PCMU.decode(b"".join(payloads)) if payloads else np.zeros(0, np.int16)


@attrs.define
class World:
    clock: Clock
    engine: Engine
    conferences: Conferences
    calls: list[FakeCall] = attrs.Factory(list)
    _names: Any = attrs.Factory(lambda: itertools.count(1))

    def call(self, hz: float = 500.0) -> FakeCall:
        n = next(self._names)
        session, transport = make_session(self.clock, ticker=self.engine.ticker)
        call = FakeCall(f"call-{n}", f"100{n}", "conf", FakeLeg(session), transport, hz)
        self.calls.append(call)
        return call

    def join(self, call: FakeCall, room: str = "r1", **fields: Any) -> Deferred[ConferenceResult]:
        spec = ConferenceSpec(room=room, **fields)
        return self.conferences.join(call, spec, call.events.append)  # type: ignore[arg-type]

    def room(self, name: str = "r1") -> Room:
        return self.conferences.rooms[name]

    def talk(self, seconds: float, *calls: FakeCall) -> None:
        end = self.clock.seconds() + seconds
        while self.clock.seconds() < end - 1e-9:
            for call in calls:
                call.say()
            advance_to(self.clock, self.clock.seconds() + 0.020)

    def close(self) -> None:
        self.conferences.close_all()
        for call in self.calls:
            call.media.close()


@pytest.fixture
def world(clock: Clock, tmp_path: Path) -> Any:
    engine = Engine(clock)
    recordings = CallRecordings(
        directory=tmp_path / "recordings",
        url_for=lambda name: f"http://127.0.0.1:8088/recordings/{name}",
        store=None,
        run_blocking=run_synchronously,
        clock=clock,
    )
    conferences = Conferences(media=engine, clock=clock, recordings=recordings)
    w = World(clock, engine, conferences)
    yield w
    w.close()
