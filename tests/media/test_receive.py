"""The receive path's rules (media.receive): which packets are admitted, which path."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.task import Clock

from media.bridge import MediaBridge
from media.g711 import Codec
from media.ops import SessionCounters
from media.receive import NonAudio, admit, relay_route, wants_inband
from media.relay import RelayRoute
from media.sdp import Direction, Negotiated
from media.session import RTPSession
from media.ticker import SharedTicker

from .helpers import REMOTE, rtp

NEG = Negotiated(Codec.PCMU, 0, 101, *REMOTE, Direction.SENDRECV)
AUDIO = rtp(0, 1, 160, bytes(160))


def counted(counters: SessionCounters) -> dict[str, int]:
    return {k: v for k, v in vars(counters).items() if v}


def test_audio_from_the_peer_is_admitted_with_its_fields_and_codec() -> None:
    c = SessionCounters()
    got = admit(rtp(0, 7, 320, b"\xff" * 160, marker=True), REMOTE, NEG, REMOTE, True, c)
    assert got == ((0, True, 7, 320, 0x1234, b"\xff" * 160), Codec.PCMU)
    assert counted(c) == {}  # ``received`` is the session's to count


@pytest.mark.parametrize(
    ("pt", "kind"),
    [(101, NonAudio.EVENT), (13, NonAudio.COMFORT_NOISE), (8, Codec.PCMA)],
)
def test_events_comfort_noise_and_other_known_codecs_are_admitted(pt: int, kind: Any) -> None:
    got = admit(rtp(pt, 1, 160, b"\x00" * 4), REMOTE, NEG, REMOTE, True, SessionCounters())
    assert got is not None
    assert got[1] is kind


@pytest.mark.parametrize(
    ("datagram", "addr", "neg", "counter"),
    [
        (b"\x80\x00", REMOTE, NEG, "malformed"),
        (AUDIO, REMOTE, None, "unexpected"),
        (rtp(96, 1, 160, b"\x00"), REMOTE, NEG, "unknown_pt"),
        (AUDIO, ("127.0.0.1", 4444), NEG, "foreign"),
    ],
)
def test_drops_are_counted_by_reason(datagram: bytes, addr: Any, neg: Any, counter: str) -> None:
    c = SessionCounters()
    assert admit(datagram, addr, neg, REMOTE, True, c) is None
    assert counted(c) == {counter: 1}


def test_before_latching_any_source_is_admitted() -> None:
    c = SessionCounters()
    assert admit(AUDIO, ("198.51.100.7", 5000), NEG, REMOTE, False, c) is not None
    assert counted(c) == {}


def test_inband_detector_only_without_events_and_while_digits_matter() -> None:
    no_events = Negotiated(Codec.PCMU, 0, None, *REMOTE, Direction.SENDRECV)
    idle = {"collecting": False, "recording": False, "listening": False}
    assert not wants_inband(no_events, **idle)
    for reason in idle:
        assert wants_inband(no_events, **{**idle, reason: True})
        assert not wants_inband(NEG, **{**idle, reason: True})
        assert not wants_inband(None, **{**idle, reason: True})


class _DigitTap:
    wants_audio = False


def _sessions() -> tuple[RTPSession, RTPSession]:
    clock = Clock()
    ticker = SharedTicker(clock=clock)
    a, b = (
        RTPSession(clock=clock, ticker=ticker, local_address=("127.0.0.1", port))
        for port in (20000, 20002)
    )
    return a, b


def test_the_route_goes_to_the_bridge_s_other_leg() -> None:
    a, b = _sessions()
    bridge = MediaBridge(a, b)
    route = relay_route(
        NEG, a, [_DigitTap(), bridge], target_type=RTPSession, full_path_needed=False
    )
    assert isinstance(route, RelayRoute)
    assert (route.payload_type, route.codec, route.bridge, route.target) == (
        0,
        Codec.PCMU,
        bridge,
        b,
    )


def test_no_route_when_anything_else_needs_the_full_path() -> None:
    a, b = _sessions()
    bridge = MediaBridge(a, b)
    audio_tap = object()  # wants audio (no ``wants_audio``), offers no relay target
    kwargs: dict[str, Any] = {"target_type": RTPSession, "full_path_needed": False}
    assert relay_route(None, a, [bridge], **kwargs) is None
    assert relay_route(NEG, a, [bridge], target_type=RTPSession, full_path_needed=True) is None
    assert relay_route(NEG, a, [bridge, audio_tap], **kwargs) is None
    assert relay_route(NEG, a, [audio_tap], **kwargs) is None
    assert relay_route(NEG, a, [], **kwargs) is None


def test_no_route_to_something_that_is_not_a_session() -> None:
    a, _ = _sessions()

    class Elsewhere:
        def relay_target(self, session: Any) -> object:
            return object()

    assert (
        relay_route(NEG, a, [Elsewhere()], target_type=RTPSession, full_path_needed=False) is None
    )
