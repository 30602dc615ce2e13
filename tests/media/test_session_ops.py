"""Session receive path and operations: collect, record, cancel, stop, close."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import Clock

from media.dtmf import TelephoneEvent
from media.errors import MediaArgumentError, SessionClosedError
from media.g711 import Codec
from media.inband import dtmf_tone, tone
from media.interfaces import (
    DigitsEnd,
    DigitsResult,
    IMediaSession,
    PlayOutcome,
    RecordEnd,
    SessionState,
)
from media.sdp import Direction, parse_sdp

from .helpers import REMOTE, advance_to, make_session, negotiated, rtp


class Peer:
    """Sends RTP into a session the way a phone would, on the session's clock."""

    def __init__(self, session, clock: Clock, addr=REMOTE, ssrc: int = 0x1234) -> None:
        self.session = session
        self.clock = clock
        self.addr = addr
        self.ssrc = ssrc
        self.seq = 100
        self.ts = 5000

    def send(self, pt: int, payload: bytes, *, ts: int | None = None, marker: bool = False):
        self.session.datagramReceived(
            rtp(
                pt, self.seq, self.ts if ts is None else ts, payload, ssrc=self.ssrc, marker=marker
            ),
            self.addr,
        )
        self.seq += 1

    def audio(self, samples: np.ndarray, codec: Codec = Codec.PCMU) -> None:
        for i in range(0, len(samples), 160):
            self.send(codec.payload_type, codec.encode(samples[i : i + 160]))
            self.ts += 160

    def digit(self, digit: str, pt: int = 101) -> None:
        event = "0123456789*#ABCD".index(digit)
        start = self.ts
        for k in range(1, 8):
            end = k >= 5
            ev = TelephoneEvent(event, end, 10, 160 * min(k, 5))
            self.send(pt, ev.to_bytes(), ts=start, marker=k == 1)
        self.ts += 1120


def test_session_provides_the_interface(clock: Clock) -> None:
    from zope.interface.verify import verifyObject

    session, _ = make_session(clock)
    assert verifyObject(IMediaSession, session)
    session.close()


def test_malformed_foreign_and_unknown_packets_are_counted_and_dropped(clock: Clock) -> None:
    session, _ = make_session(clock)
    session.datagramReceived(b"\x00garbage", REMOTE)
    session.datagramReceived(rtp(96, 1, 1, b"x"), REMOTE)  # PT not negotiated
    peer = Peer(session, clock, addr=("127.0.0.1", 40000))
    peer.send(13, b"\x40")  # comfort noise: accepted, latches to this source (symmetric RTP)
    peer.send(0, b"\xff" * 160)
    assert session.remote == ("127.0.0.1", 40000)
    Peer(session, clock, addr=("10.0.0.9", 5000)).send(0, b"\xff" * 160)
    c = session.counters
    assert (c.malformed, c.unknown_pt, c.foreign, c.received) == (1, 1, 1, 2)
    session.close()


def test_symmetric_rtp_sends_to_the_latched_source(clock: Clock) -> None:
    session, transport = make_session(clock)
    clock.advance(0)
    assert transport.written[-1][2] == REMOTE
    Peer(session, clock, addr=("127.0.0.1", 40002)).send(0, b"\xff" * 160)
    clock.advance(0.02)
    assert transport.written[-1][2] == ("127.0.0.1", 40002)
    session.close()


def test_packets_before_negotiation_are_unexpected(clock: Clock) -> None:
    from media.session import RTPSession
    from media.ticker import SharedTicker

    session = RTPSession(clock=clock, ticker=SharedTicker(clock=clock), local_address=("h", 1))
    session.datagramReceived(rtp(0, 1, 1, b"\xff"), REMOTE)
    assert session.counters.unexpected == 1
    assert session.state is SessionState.IDLE
    session.close()


def test_collect_digits_with_finish_key(clock: Clock) -> None:
    session, _ = make_session(clock)
    peer = Peer(session, clock)
    d = session.collect_digits(max_digits=5)
    for digit in "12#":
        peer.digit(digit)
    assert d.result == DigitsResult("12", DigitsEnd.FINISH_KEY, "#")
    session.close()


def test_collect_digits_max_and_invalid(clock: Clock) -> None:
    session, _ = make_session(clock)
    peer = Peer(session, clock)
    d = session.collect_digits(max_digits=3, valid_digits="123")
    for digit in "1A42*3":
        peer.digit(digit)
    assert d.result == DigitsResult("123", DigitsEnd.MAX_DIGITS)
    session.close()


def test_collect_timeouts_start_after_the_prompt(clock: Clock) -> None:
    session, _ = make_session(clock)
    peer = Peer(session, clock)
    prompt = session.play_tone("silence", duration=1.0)
    d = session.collect_digits(timeout=3.0, digit_timeout=2.0)
    advance_to(clock, 3.9)
    assert prompt.called
    assert not d.called  # the 3 s started when the prompt ended, at 1.0 s
    advance_to(clock, 4.1)
    assert d.result == DigitsResult("", DigitsEnd.TIMEOUT)
    # Digits: each allows 2 s for the next.
    d = session.collect_digits(timeout=3.0, digit_timeout=2.0)
    advance_to(clock, 5.0)
    peer.digit("7")
    advance_to(clock, 6.9)
    assert not d.called
    advance_to(clock, 7.1)
    assert d.result == DigitsResult("7", DigitsEnd.TIMEOUT)
    session.close()


def test_barge_in_stops_the_prompt(clock: Clock) -> None:
    session, _ = make_session(clock)
    prompt = session.play_tone("ringback")
    d = session.collect_digits(max_digits=1)
    Peer(session, clock).digit("5")
    assert prompt.result is PlayOutcome.BARGED_IN
    assert d.result == DigitsResult("5", DigitsEnd.MAX_DIGITS)
    session.close()


def test_collect_inband_digits_when_events_were_not_negotiated(clock: Clock) -> None:
    session, _ = make_session(clock, negotiated(telephone_event=None))
    d = session.collect_digits(max_digits=2)
    peer = Peer(session, clock)
    for digit in "84":
        peer.audio(np.concatenate([dtmf_tone(digit, 800), np.zeros(800, np.int16)]))
    assert d.result == DigitsResult("84", DigitsEnd.MAX_DIGITS)
    session.close()


def test_collect_argument_errors(clock: Clock) -> None:
    session, _ = make_session(clock)
    with pytest.raises(MediaArgumentError, match="max_digits: must be 1-128, got 0"):
        session.collect_digits(max_digits=0)
    with pytest.raises(MediaArgumentError, match="digits: only 0-9"):
        session.send_digits("12$")
    with pytest.raises(MediaArgumentError, match="tone: must be one of beep"):
        session.play_tone("fanfare")
    session.close()


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def test_record_after_beep_until_finish_key(clock: Clock, tmp_path: Path) -> None:
    session, transport = make_session(clock)
    d = session.record(directory=tmp_path, max_length=10, silence_timeout=5)
    peer = Peer(session, clock)
    voice = tone((440.0,), 1600, amplitude=8000)
    peer.audio(voice[:800])  # during the beep: not recorded
    advance_to(clock, 0.26)
    beep = [p.payload for _, p in transport.packets(0)][:13]
    assert len(set(beep)) > 1  # the beep went out (not silence)
    peer.audio(voice)
    peer.digit("#")
    result = d.result
    assert result.reason is RecordEnd.FINISH_KEY
    assert result.digits == "#"
    assert result.duration == pytest.approx(0.2)
    recorded = read_wav(result.path)
    expected = Codec.PCMU.decode(Codec.PCMU.encode(voice))
    assert np.array_equal(recorded, expected)
    assert result.path.parent == tmp_path
    session.close()


def test_record_fills_timestamp_gaps_and_drops_late_frames(clock: Clock, tmp_path: Path) -> None:
    session, _ = make_session(clock)
    d = session.record(directory=tmp_path, beep=False)
    peer = Peer(session, clock)
    frame = Codec.PCMU.encode(tone((300.0,), 160, amplitude=5000))
    peer.send(0, frame, ts=1000)
    peer.send(0, frame, ts=1480)  # two frames lost: 320 samples of silence
    peer.send(0, frame, ts=1160)  # late: dropped
    session.stop()
    samples = read_wav(d.result.path)
    assert len(samples) == 160 * 4
    assert not samples[160:480].any()
    assert d.result.reason is RecordEnd.STOPPED
    session.close()


def test_record_silence_and_max_length(clock: Clock, tmp_path: Path) -> None:
    session, _ = make_session(clock)
    d = session.record(directory=tmp_path, beep=False, silence_timeout=2.0, max_length=60)
    peer = Peer(session, clock)
    for _ in range(50):  # one second of voice, then silence
        peer.audio(tone((500.0,), 160, amplitude=6000))
        advance_to(clock, clock.seconds() + 0.02)
    for _ in range(150):
        peer.audio(np.zeros(160, np.int16))
        advance_to(clock, clock.seconds() + 0.02)
        if d.called:
            break
    assert d.result.reason is RecordEnd.SILENCE
    assert clock.seconds() == pytest.approx(1.0 + 2.0, abs=0.021)
    d = session.record(directory=tmp_path, beep=False, max_length=1, silence_timeout=10)
    advance_to(clock, clock.seconds() + 1.05)  # no packets at all: the clock still rules
    assert d.result.reason is RecordEnd.MAX_LENGTH
    session.close()


def test_cancel_a_recording_removes_its_file(clock: Clock, tmp_path: Path) -> None:
    session, _ = make_session(clock)
    d = session.record(directory=tmp_path, beep=False)
    Peer(session, clock).audio(tone((500.0,), 800))
    assert list(tmp_path.iterdir())
    d.cancel()
    assert isinstance(d.result.value, CancelledError)
    d.addErrback(lambda _: None)
    assert list(tmp_path.iterdir()) == []
    session.close()


def test_cancel_during_the_beep_stops_the_beep(clock: Clock, tmp_path: Path) -> None:
    session, transport = make_session(clock)
    d = session.record(directory=tmp_path)
    advance_to(clock, 0.05)
    d.cancel()
    d.addErrback(lambda _: None)
    transport.written.clear()
    advance_to(clock, 0.2)
    assert {p.payload for _, p in transport.packets()} == {b"\xff" * 160}
    session.close()


def test_cancel_play_and_stop(clock: Clock) -> None:
    session, transport = make_session(clock)
    d = session.play_tone("ringback")
    advance_to(clock, 0.1)
    d.cancel()
    d.addErrback(lambda f: f.trap(CancelledError))
    transport.written.clear()
    advance_to(clock, 0.2)
    assert {p.payload for _, p in transport.packets()} == {b"\xff" * 160}
    forever = session.play_audio(tone((700.0,), 160), loop=0)
    advance_to(clock, 1.0)
    assert not forever.called
    session.stop()
    assert forever.result is PlayOutcome.STOPPED
    session.close()


def test_close_fails_running_operations(clock: Clock, tmp_path: Path) -> None:
    session, _ = make_session(clock)
    ops = [
        session.play_tone("ringback"),
        session.send_digits("123"),
        session.collect_digits(),
    ]
    recording = session.record(directory=tmp_path, beep=False)
    Peer(session, clock).audio(tone((500.0,), 800))
    session.close()
    # A recording keeps what it heard (a caller who hangs up ends a voicemail).
    assert recording.result.reason is RecordEnd.CLOSED
    assert len(read_wav(recording.result.path)) == 800
    for d in ops:
        assert isinstance(d.result.value, SessionClosedError)
        d.addErrback(lambda _: None)
    assert session.state is SessionState.CLOSED
    with pytest.raises(SessionClosedError):
        session.play_tone("beep")
    session.datagramReceived(rtp(0, 1, 1, b"\xff"), REMOTE)  # ignored, no error


def test_offer_answer_and_hold(clock: Clock) -> None:
    session, transport = make_session(clock)
    offer = session.create_offer()
    assert offer.media[0].port == 20000
    answer = parse_sdp(
        b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 31000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
    neg = session.accept_answer(answer)
    assert (neg.codec, session.remote) == (Codec.PCMA, ("127.0.0.1", 31000))
    clock.advance(0)
    assert transport.packets()[-1][1].payload_type == 8
    hold = session.create_offer(Direction.SENDONLY)
    assert hold.origin.session_version == offer.origin.session_version + 1
    session.accept_answer(
        parse_sdp(answer.to_bytes().replace(b"t=0 0\r\n", b"t=0 0\r\na=recvonly\r\n"))
    )
    # Our own hold: sendonly towards a recvonly peer still sends (music on hold).
    assert session.negotiated is not None
    assert session.negotiated.direction is Direction.SENDONLY
    # The peer holds us (we answer recvonly): nothing is sent.
    session.accept_offer(
        parse_sdp(answer.to_bytes().replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n"))
    )
    transport.written.clear()
    advance_to(clock, 0.5)
    assert transport.written == []
    session.close()


class FakeLoader:
    """Stands in for AudioLoader: each load is a Deferred the test fires."""

    def __init__(self) -> None:
        self.pending: dict[str, Deferred[np.ndarray]] = {}
        self.cancelled: list[str] = []

    def load(self, source: str) -> Deferred[np.ndarray]:
        d: Deferred[np.ndarray] = Deferred(lambda _: self.cancelled.append(source))
        self.pending[source] = d
        return d


class FakeSpeaker:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def synthesize(self, text: str, *, voice: str, language: str) -> Deferred[np.ndarray]:
        self.calls.append((text, voice, language))
        return succeed(tone((300.0,), 320, amplitude=4000))


def test_play_waits_for_loading_then_plays_in_order_and_loops(clock: Clock) -> None:
    loader = FakeLoader()
    session, transport = make_session(clock, loader=loader)
    d = session.play(["http://x/a.wav", "http://x/b.wav"], loop=2)
    advance_to(clock, 0.1)
    assert {p.payload for _, p in transport.packets()} == {b"\xff" * 160}  # silence meanwhile
    a, b = tone((500.0,), 160, amplitude=6000), tone((900.0,), 160, amplitude=6000)
    loader.pending["http://x/b.wav"].callback(b)
    loader.pending["http://x/a.wav"].callback(a)
    transport.written.clear()
    advance_to(clock, 0.2)
    payloads = [p.payload for _, p in transport.packets()]
    assert payloads[:4] == [Codec.PCMU.encode(x) for x in (a, b, a, b)]
    assert d.result is PlayOutcome.FINISHED
    session.close()


def test_play_failure_and_cancel_while_loading(clock: Clock) -> None:
    from media.errors import FetchError

    loader = FakeLoader()
    session, _ = make_session(clock, loader=loader)
    d = session.play(["http://x/a.wav", "http://x/b.wav"])
    loader.pending["http://x/b.wav"].errback(FetchError("play http://x/b.wav: HTTP 404"))
    assert d.result.check(FetchError)
    d.addErrback(lambda _: None)
    assert loader.cancelled == ["http://x/a.wav"]  # the other load is not left running
    d = session.play(["http://x/c.wav"])
    d.cancel()
    assert loader.cancelled[-1] == "http://x/c.wav"
    d.addErrback(lambda f: f.trap(CancelledError))
    with pytest.raises(MediaArgumentError, match="loop: must be 0"):
        session.play(["http://x/c.wav"], loop=-1)
    with pytest.raises(MediaArgumentError, match="sources: give at least one"):
        session.play([])
    session.close()


def test_speak_loops_and_passes_voice(clock: Clock) -> None:
    speaker = FakeSpeaker()
    session, transport = make_session(clock, speaker=speaker)
    d = session.speak("Hello", voice="MAN", language="en-GB", loop=3)
    advance_to(clock, 0.3)
    assert speaker.calls == [("Hello", "MAN", "en-GB")]
    assert d.result is PlayOutcome.FINISHED
    audio = [p.payload for _, p in transport.packets()]
    speech = Codec.PCMU.encode(tone((300.0,), 320, amplitude=4000))
    assert b"".join(audio[:6]) == speech * 3
    session.close()
