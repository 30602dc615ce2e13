"""The mixer's playout buffer: order, gaps, priming, bounds."""

from __future__ import annotations

import numpy as np

from media.jitter import FRAME_SAMPLES, MAX_GAP_FILL, MAX_SAMPLES, PRIME_SAMPLES, JitterBuffer


def frame(value: int, n: int = FRAME_SAMPLES) -> np.ndarray:
    return np.full(n, value, dtype=np.int16)


def test_waits_for_two_frames_then_plays_in_order() -> None:
    buf = JitterBuffer()
    buf.push(frame(1), 1000, 7)
    assert buf.pop() is None  # priming
    buf.push(frame(2), 1160, 7)
    assert PRIME_SAMPLES == 2 * FRAME_SAMPLES
    assert list(buf.pop()) == [1] * 160  # type: ignore[arg-type]
    assert list(buf.pop()) == [2] * 160  # type: ignore[arg-type]
    assert buf.pop() is None  # underrun: primes again
    assert buf.underruns == 1
    buf.push(frame(3), 1320, 7)
    assert buf.pop() is None
    buf.push(frame(4), 1480, 7)
    assert list(buf.pop()) == [3] * 160  # type: ignore[arg-type]


def test_late_and_duplicate_packets_are_dropped() -> None:
    buf = JitterBuffer()
    buf.push(frame(1), 0, 7)
    buf.push(frame(2), 160, 7)
    buf.push(frame(9), 160, 7)  # duplicate
    buf.push(frame(9), 0, 7)  # late
    assert buf.dropped_late == 2
    assert buf.level == 320


def test_lost_packets_become_silence_but_a_jump_does_not() -> None:
    buf = JitterBuffer()
    buf.push(frame(1), 0, 7)
    buf.push(frame(2), 320, 7)  # one frame lost
    assert buf.level == 480
    assert [buf.pop()[0] for _ in range(3)] == [1, 0, 2]  # type: ignore[index]
    buf.push(frame(3), 480 + MAX_GAP_FILL + 160, 7)  # a new talkspurt far ahead
    assert buf.level == 160


def test_odd_packet_sizes_are_cut_into_frames() -> None:
    buf = JitterBuffer()
    buf.push(frame(1, 240), 0, 7)  # ptime 30
    buf.push(frame(2, 240), 240, 7)
    first, second, third = buf.pop(), buf.pop(), buf.pop()
    assert first is not None
    assert second is not None
    assert third is not None
    assert list(second[:80]) == [1] * 80
    assert list(second[80:]) == [2] * 80
    assert buf.level == 0


def test_a_new_source_restarts_the_timeline() -> None:
    buf = JitterBuffer()
    buf.push(frame(1), 50_000, 7)
    buf.push(frame(2), 10, 8)  # a new SSRC with an older timestamp is not "late"
    assert buf.level == 320
    buf.push(frame(3), 170, 8)
    assert buf.level == 480


def test_it_never_holds_more_than_its_bound() -> None:
    buf = JitterBuffer()
    for k in range(20):
        buf.push(frame(k), 160 * k, 7)
    assert buf.level == MAX_SAMPLES
    assert buf.dropped_overflow == 20 * 160 - MAX_SAMPLES
    assert buf.pop()[0] == 20 - MAX_SAMPLES // 160  # type: ignore[index]
    buf.clear()
    assert buf.level == 0
    assert buf.pop() is None
