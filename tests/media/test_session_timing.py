"""RTP pacing and the DTMF schedule, to the millisecond, with task.Clock."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from twisted.internet.task import Clock

from media.dtmf import parse_event
from media.g711 import Codec
from media.inband import InbandDtmfDetector
from media.interfaces import PlayOutcome
from media.ticker import MAX_CATCH_UP, SharedTicker

from .helpers import REMOTE, advance_to, make_session, negotiated


def test_frames_leave_every_20_ms_from_the_start(clock: Clock) -> None:
    session, transport = make_session(clock)
    advance_to(clock, 1.0, step=0.0071)
    packets = transport.packets()
    assert len(packets) == 51  # frames 0..50
    times = [t for t, _ in packets]
    assert times == pytest.approx([k * 0.020 for k in range(51)], abs=1e-9)
    first = packets[0][1]
    assert first.marker
    assert not any(p.marker for _, p in packets[1:])
    assert [p.sequence for _, p in packets] == [(first.sequence + k) & 0xFFFF for k in range(51)]
    assert [p.timestamp for _, p in packets] == [
        (first.timestamp + 160 * k) & 0xFFFFFFFF for k in range(51)
    ]
    assert {p.ssrc for _, p in packets} == {session.stream.ssrc}
    assert {p.payload for _, p in packets} == {b"\xff" * 160}
    assert {addr for _, _, addr in transport.written} == {REMOTE}
    session.close()


def test_schedule_does_not_drift_with_late_wakeups(clock: Clock) -> None:
    session, transport = make_session(clock)
    # Each wake-up 13 ms late: frames still go out at their due frame's time or
    # in the next wake-up, and the count of frames equals elapsed time / 20 ms.
    for _ in range(200):
        clock.advance(0.033)
    elapsed = clock.seconds()
    assert len(transport.written) == int(elapsed / 0.020 + 1e-9) + 1
    stamps = [p.timestamp for _, p in transport.packets()]
    assert all((b - a) & 0xFFFFFFFF == 160 for a, b in itertools.pairwise(stamps))
    session.close()


def test_stall_catches_up_at_most_five_frames(clock: Clock) -> None:
    session, transport = make_session(clock)
    clock.advance(0)  # frame 0
    clock.advance(0.100)  # frames 1..5 due at once: a burst of 5
    assert len(transport.written) == 6
    clock.advance(1.0)  # 50 frames due: only the last 5 go out
    packets = transport.packets()
    assert len(packets) == 6 + MAX_CATCH_UP
    ts0 = packets[0][1].timestamp
    assert [(p.timestamp - ts0) // 160 for _, p in packets[6:]] == [51, 52, 53, 54, 55]
    assert session.ticker.skipped == 45
    session.close()


def test_ticker_stops_with_its_last_subscriber(clock: Clock) -> None:
    ticker = SharedTicker(clock=clock)
    a, _ = make_session(clock, ticker=ticker)
    b, _ = make_session(clock, ticker=ticker)
    assert len(clock.getDelayedCalls()) == 1  # one shared timer for both
    a.close()
    assert ticker.running
    b.close()
    assert not ticker.running
    assert clock.getDelayedCalls() == []


def test_second_session_joins_the_shared_grid(clock: Clock) -> None:
    ticker = SharedTicker(clock=clock)
    a, _ta = make_session(clock, ticker=ticker)
    advance_to(clock, 0.013)
    b, tb = make_session(clock, ticker=ticker)
    advance_to(clock, 0.2)
    assert [round(t, 9) for t, _, _ in tb.written][:2] == [0.02, 0.04]
    a.close()
    b.close()


def event_packets(transport, pt: int = 101):
    return [(t, p, parse_event(p.payload)) for t, p in transport.packets(pt)]


def digit_starts(transport) -> list[tuple[str, float]]:
    names = "0123456789*#ABCD"
    return [(names[e.event], t) for t, p, e in event_packets(transport) if p.marker]


def test_send_digits_ww12W3_exact_schedule(clock: Clock) -> None:
    session, transport = make_session(clock)
    d = session.send_digits("ww12W3")
    done_at = []
    d.addCallback(lambda _: done_at.append(clock.seconds()))
    advance_to(clock, 3.0, step=0.0093)
    starts = digit_starts(transport)
    assert [s[0] for s in starts] == ["1", "2", "3"]
    assert [s[1] for s in starts] == pytest.approx([1.0, 1.2, 2.4], abs=1e-9)
    # Fired with the third end packet of the last digit: 2.4 + 6 * 0.02.
    assert done_at == pytest.approx([2.52], abs=1e-9)
    session.close()


def test_send_digits_1w2W_pound_schedule_and_packet_rules(clock: Clock) -> None:
    session, transport = make_session(clock)
    session.send_digits("1w2W#")
    advance_to(clock, 2.5)
    assert [s[1] for s in digit_starts(transport)] == pytest.approx([0.0, 0.7, 1.9], abs=1e-9)
    events = event_packets(transport)
    assert len(events) == 3 * 7
    audio = transport.packets(0)
    assert audio[0][0] == pytest.approx(0.14)  # frames 0-6 carry the first event
    ts0 = audio[0][1].timestamp - 7 * 160  # the timestamp of frame 0
    for i, start in enumerate([0.0, 0.7, 1.9]):
        digit = events[7 * i : 7 * i + 7]
        assert [t for t, _, _ in digit] == pytest.approx([start + 0.02 * k for k in range(7)])
        # One timestamp per event: the audio timeline's timestamp at its start.
        assert {p.timestamp for _, p, _ in digit} == {(ts0 + round(start * 8000)) & 0xFFFFFFFF}
        assert [e.duration for _, _, e in digit] == [160, 320, 480, 640, 800, 800, 800]
        assert [e.end for _, _, e in digit] == [False] * 4 + [True] * 3
        assert [p.marker for _, p, _ in digit] == [True] + [False] * 6
        assert {e.volume for _, _, e in digit} == {10}
        # The three end packets have distinct, consecutive sequence numbers.
        seqs = [p.sequence for _, p, _ in digit[-3:]]
        assert seqs == [seqs[0], (seqs[0] + 1) & 0xFFFF, (seqs[0] + 2) & 0xFFFF]
    # Audio is replaced, not doubled, while an event sounds; the stream has no holes.
    all_packets = transport.packets()
    assert len(all_packets) == len({round(t, 6) for t, _ in all_packets})
    assert len(all_packets) == 126  # frames 0..125 at 2.5 s
    session.close()


def test_digits_queue_behind_each_other(clock: Clock) -> None:
    session, transport = make_session(clock)
    first = session.send_digits("1")
    second = session.send_digits("2")
    advance_to(clock, 0.5)
    assert first.called
    assert second.called
    # "1" occupies frames 0..6; "2" starts at the next frame.
    assert [s[1] for s in digit_starts(transport)] == pytest.approx([0.0, 0.14], abs=1e-9)
    session.close()


def test_inband_digits_without_telephone_event(clock: Clock) -> None:
    session, transport = make_session(clock, negotiated(Codec.PCMA, telephone_event=None))
    d = session.send_digits("19")
    advance_to(clock, 0.5)
    assert d.called
    assert transport.packets(101) == []
    audio = b"".join(p.payload for _, p in transport.packets(8))
    assert InbandDtmfDetector().feed(Codec.PCMA.decode(audio)) == ["1", "9"]
    session.close()


def test_play_audio_frames_then_silence(clock: Clock) -> None:
    session, transport = make_session(clock)
    samples = (np.arange(400) * 50 - 10000).astype(np.int16)
    d = session.play_audio(samples, loop=2)
    results = []
    d.addCallback(lambda r: results.append((r, clock.seconds())))
    advance_to(clock, 0.2)
    payloads = [p.payload for _, p in transport.packets()]
    padded = np.concatenate([samples, np.zeros(80, np.int16)])
    one_pass = [Codec.PCMU.encode(padded[i : i + 160]) for i in range(0, 480, 160)]
    assert payloads[:6] == one_pass * 2
    assert payloads[6:] == [b"\xff" * 160] * (len(payloads) - 6)
    # Finished at the tick that found the source exhausted.
    assert results == [(PlayOutcome.FINISHED, pytest.approx(0.12))]
    session.close()


def test_a_new_output_stops_the_previous_one(clock: Clock) -> None:
    session, _ = make_session(clock)
    first = session.play_tone("ringback")
    outcome = []
    first.addCallback(outcome.append)
    second = session.play_tone("silence", duration=0.1)
    assert outcome == [PlayOutcome.STOPPED]
    advance_to(clock, 0.2)
    assert second.called
    session.close()


def test_recvonly_and_inactive_send_nothing_but_tick(clock: Clock) -> None:
    from media.sdp import Direction

    for direction in (Direction.RECVONLY, Direction.INACTIVE):
        session, transport = make_session(clock, negotiated(direction=direction))
        d = session.send_digits("1")
        advance_to(clock, clock.seconds() + 0.5)
        assert transport.written == []
        assert d.called  # the schedule still ran
        session.close()


def test_phased_tick_spreads_streams_over_the_interval(clock: Clock) -> None:
    ticker = SharedTicker(clock=clock, phases=4)
    legs = [make_session(clock, ticker=ticker) for _ in range(8)]
    assert len(clock.getDelayedCalls()) == 1
    sender = legs[6][0]
    d = sender.send_digits("ww1")
    advance_to(clock, 1.2)
    offsets = []
    for _session, transport in legs:
        times = [t for t, _, _ in transport.written]
        # Every stream: exactly every 20 ms from its first frame.
        assert times == pytest.approx([times[0] + 0.02 * k for k in range(len(times))], abs=1e-9)
        offsets.append(round(times[0], 6))
    assert sorted(offsets) == [0.0, 0.0, 0.005, 0.005, 0.01, 0.01, 0.015, 0.015]
    # The DTMF schedule is exact relative to the stream's own frames.
    first = legs[6][1].written[0][0]
    starts = [t for t, p in legs[6][1].packets(101) if p.marker]
    assert starts == pytest.approx([first + 1.0], abs=1e-9)
    assert d.called
    for session, _ in legs:
        session.close()
    assert clock.getDelayedCalls() == []
    with pytest.raises(ValueError, match="phases: must be 1-20"):
        SharedTicker(clock=clock, phases=0)


def test_a_failing_subscriber_does_not_stop_the_others(clock: Clock) -> None:
    ticker = SharedTicker(clock=clock)
    calls: list[tuple[str, int, float]] = []

    def bad(n: int, due: float) -> None:
        calls.append(("bad", n, due))
        raise RuntimeError("boom")

    def good(n: int, due: float) -> None:
        calls.append(("good", n, due))

    ticker.subscribe(bad)
    sub = ticker.subscribe(good)
    assert sub.first_frame == 0
    advance_to(clock, 0.04)
    assert [c for c in calls if c[0] == "good"] == [
        ("good", 0, 0.0),
        ("good", 1, 0.02),
        ("good", 2, 0.04),
    ]
    assert len([c for c in calls if c[0] == "bad"]) == 3
    ticker.unsubscribe(bad)
    ticker.unsubscribe(good)
    assert not ticker.running


@pytest.mark.parametrize(
    ("called_at", "expected"),
    [
        (0.007, [1.0, 1.2]),  # nearer frame 0 (at 0.0): the pauses count from it
        (0.013, [1.02, 1.22]),  # nearer frame 1 (at 0.02)
        (0.020, [1.02, 1.22]),  # on a frame
    ],
)
def test_leading_pauses_count_from_the_nearest_frame(
    clock: Clock, called_at: float, expected: list[float]
) -> None:
    # Plivo's sendDigits="ww12" on an answered leg: the first digit 1.0 s after the
    # answer, give or take half a frame, not up to a whole frame late (issue 6).
    session, transport = make_session(clock)
    advance_to(clock, called_at)
    session.send_digits("ww12")
    advance_to(clock, 1.6)
    starts = [t for _, t in digit_starts(transport)]
    assert starts == pytest.approx(expected, abs=1e-9)
    assert abs(starts[0] - (called_at + 1.0)) <= 0.010 + 1e-9
    session.close()


def test_a_digit_without_pause_is_never_sent_in_the_past(clock: Clock) -> None:
    session, transport = make_session(clock)
    advance_to(clock, 0.007)  # frame 0 went out at 0.0
    session.send_digits("1")
    advance_to(clock, 0.5)
    events = event_packets(transport)
    assert events[0][0] == pytest.approx(0.02)
    assert [e.duration for _, _, e in events] == [160, 320, 480, 640, 800, 800, 800]
    session.close()
