"""Test doubles for media sessions: a time-stamping datagram transport."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock

from media.g711 import Codec
from media.rtp import RTPPacket, parse_rtp
from media.sdp import Direction, Negotiated
from media.session import RTPSession
from media.ticker import SharedTicker

REMOTE = ("127.0.0.1", 30000)


class StampedTransport:
    """Like ``FakeDatagramTransport``, but records the clock time of each write."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.written: list[tuple[float, bytes, Any]] = []

    def write(self, packet: bytes, addr: Any = None) -> None:
        self.written.append((self.clock.seconds(), packet, addr))

    def packets(self, payload_type: int | None = None) -> list[tuple[float, RTPPacket]]:
        out = [(t, parse_rtp(data)) for t, data, _ in self.written]
        if payload_type is not None:
            out = [(t, p) for t, p in out if p.payload_type == payload_type]
        return out


def negotiated(
    codec: Codec = Codec.PCMU,
    telephone_event: int | None = 101,
    direction: Direction = Direction.SENDRECV,
) -> Negotiated:
    return Negotiated(codec, codec.payload_type, telephone_event, *REMOTE, direction)


def make_session(
    clock: Clock, neg: Negotiated | None = None, **kwargs: Any
) -> tuple[RTPSession, StampedTransport]:
    ticker = kwargs.pop("ticker", None)
    if ticker is None:
        ticker = SharedTicker(clock=clock)
    session = RTPSession(clock=clock, ticker=ticker, local_address=("127.0.0.1", 20000), **kwargs)
    transport = StampedTransport(clock)
    session.makeConnection(transport)  # type: ignore[arg-type]
    session.configure(neg or negotiated())
    return session, transport


def advance_to(clock: Clock, when: float, step: float = 0.007) -> None:
    """Advance up to ``when`` like a punctual reactor: to each delayed call's
    time exactly, and otherwise in steps of at most ``step`` seconds."""
    while clock.seconds() < when - 1e-12:
        now = clock.seconds()
        target = min(when, now + step)
        due = [c.getTime() for c in clock.getDelayedCalls()]
        if due:
            target = min(target, max(now, min(due)))
        clock.advance(target - now)


def rtp(
    payload_type: int,
    seq: int,
    ts: int,
    payload: bytes,
    *,
    ssrc: int = 0x1234,
    marker: bool = False,
) -> bytes:
    return RTPPacket(payload_type, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload, marker).to_bytes()
