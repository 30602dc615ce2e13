"""Bridging two sessions: transcoding, renumbering, DTMF pass-through and regeneration."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_twisted
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from media.bridge import MediaBridge
from media.dtmf import TelephoneEvent, parse_event
from media.g711 import ULAW_TO_ALAW, Codec
from media.inband import InbandDtmfDetector, tone
from media.interfaces import DigitsEnd, IMediaListener, RecordEnd
from media.sdp import Direction, Negotiated
from media.ticker import SharedTicker

from .helpers import REMOTE, advance_to, make_session, negotiated, rtp
from .test_engine import connect, make_engine, within

B_REMOTE = ("127.0.0.1", 31000)


def legs(clock: Clock, b_events: int | None = 96):
    ticker = SharedTicker(clock=clock)
    a, ta = make_session(clock, negotiated(Codec.PCMU, 101), ticker=ticker)
    b_neg = Negotiated(Codec.PCMA, 8, b_events, *B_REMOTE, Direction.SENDRECV)
    b, tb = make_session(clock, b_neg, ticker=ticker)
    return a, ta, b, tb


def test_bridge_is_a_listener(clock: Clock) -> None:
    a, _, b, _ = legs(clock)
    bridge = MediaBridge(a, b)
    assert verifyObject(IMediaListener, bridge)
    with pytest.raises(ValueError, match="two legs must be different"):
        MediaBridge(a, a)
    a.close()
    b.close()


def test_audio_is_transcoded_and_renumbered(clock: Clock) -> None:
    a, _, b, tb = legs(clock)
    advance_to(clock, 0.1)
    before = tb.packets()
    bridge = MediaBridge(a, b)
    bridge.start()
    tb.written.clear()
    advance_to(clock, 0.2)
    assert tb.written == []  # no idle silence while bridged
    payloads = [tone((440.0 + 10 * i,), 160, amplitude=7000) for i in range(5)]
    for i, samples in enumerate(payloads):
        a.datagramReceived(rtp(0, 900 + i, 77777 + 160 * i, Codec.PCMU.encode(samples)), REMOTE)
    relayed = tb.packets()
    assert [p.payload_type for _, p in relayed] == [8] * 5
    assert [p.payload for _, p in relayed] == [
        Codec.PCMU.encode(s).translate(ULAW_TO_ALAW) for s in payloads
    ]
    assert {p.ssrc for _, p in relayed} == {b.stream.ssrc}
    last_seq = before[-1][1].sequence
    assert [p.sequence for _, p in relayed] == [(last_seq + 1 + i) & 0xFFFF for i in range(5)]
    stamps = [p.timestamp for _, p in relayed]
    assert [(t - stamps[0]) & 0xFFFFFFFF for t in stamps] == [0, 160, 320, 480, 640]
    # The first relayed packet continues B's timeline where the clock is now.
    assert (stamps[0] - before[0][1].timestamp) & 0xFFFFFFFF == 10 * 160
    assert [p.marker for _, p in relayed] == [True, False, False, False, False]
    assert {addr for _, _, addr in tb.written} == {B_REMOTE}
    bridge.stop()
    tb.written.clear()
    advance_to(clock, 0.3)
    assert {p.payload for _, p in tb.packets()} == {b"\xd5" * 160}  # B idles again
    a.close()
    b.close()


def test_events_pass_through_with_the_other_payload_type(clock: Clock) -> None:
    a, _, b, tb = legs(clock)
    MediaBridge(a, b).start()
    for k in range(1, 8):
        ev = TelephoneEvent(5, k >= 5, 10, 160 * min(k, 5))
        a.datagramReceived(rtp(101, 10 + k, 4000, ev.to_bytes(), marker=k == 1), REMOTE)
    events = tb.packets(96)
    assert len(events) == 7
    assert [parse_event(p.payload).duration for _, p in events] == [
        160,
        320,
        480,
        640,
        800,
        800,
        800,
    ]
    assert len({p.timestamp for _, p in events}) == 1
    assert [p.marker for _, p in events] == [True] + [False] * 6
    assert tb.packets(101) == []
    a.close()
    b.close()


def test_digits_are_regenerated_in_band_for_a_leg_without_events(clock: Clock) -> None:
    a, _, b, tb = legs(clock, b_events=None)
    bridge = MediaBridge(a, b)
    bridge.start()
    for digit_ts, event in ((4000, 3), (9000, 11)):
        for k in range(1, 8):
            ev = TelephoneEvent(event, k >= 5, 10, 160 * min(k, 5))
            a.datagramReceived(rtp(101, k + digit_ts, digit_ts, ev.to_bytes()), REMOTE)
        advance_to(clock, clock.seconds() + 0.3)
    assert bridge.regenerated == 2
    audio = b"".join(p.payload for _, p in tb.packets(8))
    assert InbandDtmfDetector().feed(Codec.PCMA.decode(audio)) == ["3", "#"]
    a.close()
    b.close()


@pytest_twisted.ensureDeferred
async def test_two_phones_through_a_bridge_over_udp(tmp_path: Path) -> None:
    """phone1 <-> (A | bridge | B) <-> phone2: four real sessions on loopback."""
    engine = make_engine(tmp_path, pairs=3)
    phone1, a, b = (engine.create_session() for _ in range(3))
    # phone2 only speaks PCMA and uses payload type 110 for events (probed
    # after the first engine's ports are bound, so the ranges differ).
    other = make_engine(tmp_path / "2", pairs=1, codecs=(Codec.PCMA,), telephone_event=110)
    phone2 = other.create_session()
    sessions: list[Any] = [phone1, a, b, phone2]
    try:
        connect(phone1, a)
        connect(phone2, b)
        assert b.negotiated is not None
        assert (b.negotiated.codec, b.negotiated.telephone_event) == (Codec.PCMA, 110)
        assert a.negotiated is not None
        assert (a.negotiated.codec, a.negotiated.telephone_event) == (Codec.PCMU, 101)
        bridge = MediaBridge(a, b)
        bridge.start()
        digits = phone2.collect_digits(max_digits=3, finish_on_key="")
        await within(phone1.send_digits("12#", gap_ms=60))
        result = await within(digits)
        assert (result.digits, result.reason) == ("12#", DigitsEnd.MAX_DIGITS)
        recording = phone2.record(beep=False, silence_timeout=0.4)
        await within(phone1.play_audio(tone((800.0,), 4000, amplitude=9000)))
        result = await within(recording)
        assert result.reason is RecordEnd.SILENCE
        data = np.frombuffer(result.path.read_bytes()[44:], dtype="<i2").astype(float)
        frames = data[: len(data) // 160 * 160].reshape(-1, 160)
        loud = int((np.sqrt(np.mean(frames**2, axis=1)) > 3000).sum())
        assert 23 <= loud <= 26  # 0.5 s of tone crossed both legs and the transcoder
        assert bridge.frames > 25
        assert bridge.events > 0
        bridge.stop()
    finally:
        for s in sessions:
            s.close()


class _AudioTap:
    """A listener that wants audio (no ``wants_audio`` attribute, like most)."""

    def __init__(self) -> None:
        self.frames: list[Any] = []

    def audio_received(self, session: Any, frame: Any) -> None:
        self.frames.append(frame)

    def event_received(self, session: Any, frame: Any) -> None:
        pass

    def digit_received(self, session: Any, digit: str) -> None:
        pass


def test_fast_relay_path_only_while_the_bridge_alone_wants_audio(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain audio packets skip the frame object while only the bridge (and
    digit taps) listen; an audio listener or a recording takes them back to
    the full path, and the output is the same either way."""
    import media.session
    from telephony.calls.control import DigitTap

    a, _, b, tb = legs(clock)
    bridge = MediaBridge(a, b)
    bridge.start()
    a.add_listener(DigitTap(lambda digit: None))
    payload = Codec.PCMU.encode(tone((600.0,), 160, amplitude=5000))
    seq = iter(range(100, 200))

    def send(n: int) -> list[Any]:
        tb.written.clear()
        for _ in range(n):
            s = next(seq)
            a.datagramReceived(rtp(0, s, 160 * s, payload), REMOTE)
        return [p for _, p in tb.packets(8)]

    send(1)  # latches A's peer: the fast path needs a known source
    built: list[Any] = []
    real_frame = media.session.AudioFrame
    monkeypatch.setattr(
        media.session, "AudioFrame", lambda *args: built.append(args) or real_frame(*args)
    )
    fast = send(3)
    assert built == []  # no frame object
    assert [p.payload for p in fast] == [payload.translate(ULAW_TO_ALAW)] * 3
    assert [(q.sequence - p.sequence) & 0xFFFF for p, q in itertools.pairwise(fast)] == [1, 1]
    steps = [(q.timestamp - p.timestamp) & 0xFFFFFFFF for p, q in itertools.pairwise(fast)]
    assert steps == [160, 160]
    assert {p.ssrc for p in fast} == {b.stream.ssrc}
    assert bridge.frames == 4
    assert a.counters.received == 4

    tap = _AudioTap()
    a.add_listener(tap)
    slow = send(2)
    assert len(tap.frames) == 2
    assert len(built) == 2
    assert [p.payload for p in slow] == [payload.translate(ULAW_TO_ALAW)] * 2
    assert (slow[0].sequence - fast[-1].sequence) & 0xFFFF == 1
    a.remove_listener(tap)
    send(2)
    assert len(built) == 2  # fast again

    recording = a.record(beep=False)
    send(2)
    assert len(built) == 4  # the recorder hears the audio: full path
    a.stop_recording()
    clock.advance(0)
    assert recording.called
    send(1)
    assert len(built) == 4

    # A packet from elsewhere is refused on the fast path as on the full one.
    foreign = a.counters.foreign
    tb.written.clear()
    a.datagramReceived(rtp(0, 500, 80000, payload), ("127.0.0.1", 4444))
    assert a.counters.foreign == foreign + 1
    assert tb.written == []
    a.close()
    b.close()
    a.datagramReceived(rtp(0, 501, 80160, payload), REMOTE)
    assert tb.written == []
