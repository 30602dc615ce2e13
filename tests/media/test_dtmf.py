"""RFC 4733 digit planning, sender packets, receiver; in-band tones and detection."""

from __future__ import annotations

import numpy as np
import pytest

from media.dtmf import (
    DigitPlan,
    DtmfEventKind,
    DtmfReceiver,
    DtmfSender,
    ScheduledDigit,
    TelephoneEvent,
    parse_event,
    plan_digits,
)
from media.errors import MediaArgumentError
from media.inband import InbandDtmfDetector, dtmf_tone, tone


def starts(plan: DigitPlan) -> list[tuple[str, float]]:
    return [(d.digit, d.start_frame * 0.020) for d in plan.digits]


def test_plan_ww12W3_defaults() -> None:
    plan = plan_digits("ww12W3")
    assert [(d, round(t, 3)) for d, t in starts(plan)] == [("1", 1.0), ("2", 1.2), ("3", 2.4)]
    assert [d.start_frame for d in plan.digits] == [50, 60, 120]
    # Done after the third end packet of "3": frames 120..124, repeats at 125, 126.
    assert plan.done_frame == 127


def test_plan_1w2W_pound() -> None:
    plan = plan_digits("1w2W#")
    assert [d.start_frame for d in plan.digits] == [0, 35, 95]
    assert [d.digit for d in plan.digits] == ["1", "2", "#"]


def test_plan_rounds_lengths_up_to_whole_frames() -> None:
    plan = plan_digits("12", digit_ms=50, gap_ms=45)
    assert plan.digits == (ScheduledDigit("1", 0, 3), ScheduledDigit("2", 6, 3))


def test_plan_trailing_pause_delays_completion() -> None:
    assert plan_digits("1").done_frame == 7
    assert plan_digits("1W").done_frame == 60  # 5 + 5 gap + 50
    assert plan_digits("w").done_frame == 25
    assert plan_digits("").done_frame == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"digits": "12x"}, r"digits: only 0-9 \* # A-D w W, got 'x' at position 2"),
        ({"digits": "1", "digit_ms": 39}, "digit_ms: must be 40-8000 ms, got 39"),
        ({"digits": "1", "gap_ms": 20}, "gap_ms: must be 40-10000 ms, got 20"),
        ({"digits": "1" * 300}, "digits: at most 256 characters"),
    ],
)
def test_plan_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(MediaArgumentError, match=message):
        plan_digits(**kwargs)  # type: ignore[arg-type]


def test_lowercase_letters_are_accepted() -> None:
    assert [d.digit for d in plan_digits("abcd").digits] == ["A", "B", "C", "D"]


def test_sender_packets_of_one_default_digit() -> None:
    sender = DtmfSender(plan_digits("5"))
    packets = [(f, sender.packet_at(f)) for f in range(12)]
    sent = [(f, p) for f, p in packets if p is not None]
    assert [f for f, _ in sent] == [0, 1, 2, 3, 4, 5, 6]
    events = [parse_event(p.payload) for _, p in sent]
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert {e.event for e in events} == {5}
    assert {e.volume for e in events} == {10}
    assert [p.marker for _, p in sent] == [True] + [False] * 6
    assert {p.start_frame for _, p in sent} == {0}


def test_sender_second_digit_has_its_own_start() -> None:
    sender = DtmfSender(plan_digits("1#"))
    second = [sender.packet_at(f) for f in range(10, 17)]
    assert all(p is not None and p.start_frame == 10 for p in second)
    assert parse_event(second[0].payload if second[0] else b"").event == 11
    assert sender.packet_at(17) is None


def test_sender_volume_range() -> None:
    with pytest.raises(MediaArgumentError, match="volume: must be 0-63"):
        DtmfSender(plan_digits("1"), volume=64)


def test_event_payload_layout() -> None:
    assert TelephoneEvent(11, True, 10, 800).to_bytes() == bytes.fromhex("0b8a0320")
    assert parse_event(bytes.fromhex("0b8a0320")) == TelephoneEvent(11, True, 10, 800)


def feed_all(rx: DtmfReceiver, packets: list[tuple[int, int, TelephoneEvent]], t: float = 0.0):
    out = []
    for i, (ssrc, ts, ev) in enumerate(packets):
        out.extend(rx.feed(ssrc, ts, ev.to_bytes(), t + 0.02 * i))
    return out


def digit_packets(event: int, ts: int, ssrc: int = 1) -> list[tuple[int, int, TelephoneEvent]]:
    body = [(ssrc, ts, TelephoneEvent(event, False, 10, 160 * k)) for k in range(1, 5)]
    end = [(ssrc, ts, TelephoneEvent(event, True, 10, 800))] * 3
    return body + end


def test_receiver_reports_each_digit_once_despite_three_end_packets() -> None:
    rx = DtmfReceiver()
    events = feed_all(rx, digit_packets(1, 1000) + digit_packets(1, 3000) + digit_packets(11, 5000))
    assert [(e.kind, e.digit) for e in events] == [
        (DtmfEventKind.BEGIN, "1"),
        (DtmfEventKind.END, "1"),
        (DtmfEventKind.BEGIN, "1"),
        (DtmfEventKind.END, "1"),
        (DtmfEventKind.BEGIN, "#"),
        (DtmfEventKind.END, "#"),
    ]
    assert events[1].duration == 800


def test_receiver_handles_lost_first_packets_and_zero_duration() -> None:
    rx = DtmfReceiver()
    packets = digit_packets(7, 2000)[2:]  # the marker packet and one more lost
    packets.insert(0, (1, 2000, TelephoneEvent(7, False, 10, 0)))  # duration 0: ignored
    events = feed_all(rx, packets)
    assert [(e.kind, e.digit) for e in events] == [
        (DtmfEventKind.BEGIN, "7"),
        (DtmfEventKind.END, "7"),
    ]
    assert rx.ignored == 1


def test_receiver_only_end_packets() -> None:
    rx = DtmfReceiver()
    events = feed_all(rx, digit_packets(3, 9)[-3:])
    assert [(e.kind, e.digit) for e in events] == [
        (DtmfEventKind.BEGIN, "3"),
        (DtmfEventKind.END, "3"),
    ]


def test_receiver_times_out_a_digit_without_end() -> None:
    rx = DtmfReceiver()
    events = feed_all(rx, digit_packets(9, 100)[:3])
    assert [e.kind for e in events] == [DtmfEventKind.BEGIN]
    deadline = rx.next_deadline()
    assert deadline == pytest.approx(0.04 + 0.150)
    assert rx.poll(deadline - 0.001) == []
    (end,) = rx.poll(deadline)
    assert (end.kind, end.digit, end.duration) == (DtmfEventKind.END, "9", 480)
    assert rx.next_deadline() is None
    # A straggler of the ended event does not start it again.
    assert rx.feed(1, 100, TelephoneEvent(9, True, 10, 800).to_bytes(), 1.0) == []


def test_receiver_new_timestamp_ends_previous_event() -> None:
    rx = DtmfReceiver()
    events = feed_all(rx, digit_packets(1, 100)[:2] + digit_packets(2, 900)[:2])
    assert [(e.kind, e.digit) for e in events] == [
        (DtmfEventKind.BEGIN, "1"),
        (DtmfEventKind.END, "1"),
        (DtmfEventKind.BEGIN, "2"),
    ]


def test_receiver_ignores_junk_quiet_and_non_dtmf_events() -> None:
    rx = DtmfReceiver()
    assert rx.feed(1, 1, b"\x01", 0.0) == []
    assert rx.feed(1, 2, TelephoneEvent(16, False, 10, 160).to_bytes(), 0.0) == []  # flash
    assert rx.feed(1, 3, TelephoneEvent(1, False, 60, 160).to_bytes(), 0.0) == []
    assert rx.ignored == 3
    assert rx.next_deadline() is None


def test_receiver_separates_sources() -> None:
    rx = DtmfReceiver()
    events = feed_all(rx, digit_packets(4, 100, ssrc=1) + digit_packets(4, 100, ssrc=2))
    assert [e.digit for e in events if e.kind is DtmfEventKind.BEGIN] == ["4", "4"]


# In-band -------------------------------------------------------------------------


def keyed(digits: str, tone_ms: int = 60, gap_ms: int = 60) -> np.ndarray:
    parts = []
    for d in digits:
        parts.append(dtmf_tone(d, tone_ms * 8))
        parts.append(np.zeros(gap_ms * 8, dtype=np.int16))
    return np.concatenate(parts)


def test_inband_detector_finds_every_key() -> None:
    det = InbandDtmfDetector()
    assert det.feed(keyed("0123456789*#ABCD")) == list("0123456789*#ABCD")


def test_inband_detector_reports_a_long_key_once_and_repeated_keys_twice() -> None:
    det = InbandDtmfDetector()
    audio = keyed("55", tone_ms=500, gap_ms=100)
    # Fed in odd-sized pieces: blocks straddle the calls.
    found = []
    for i in range(0, len(audio), 77):
        found += det.feed(audio[i : i + 77])
    assert found == ["5", "5"]


def test_inband_detector_needs_40_ms() -> None:
    det = InbandDtmfDetector()
    assert det.feed(keyed("1", tone_ms=20, gap_ms=100)) == []


def test_inband_detector_rejects_single_tones_noise_and_twist() -> None:
    rng = np.random.default_rng(5)
    det = InbandDtmfDetector()
    assert det.feed(tone((697.0,), 8000)) == []
    assert det.feed(tone((1000.0,), 8000)) == []
    assert det.feed(rng.normal(0, 3000, 8000).astype(np.int16)) == []
    # High group 12 dB below the low group: beyond the 8 dB normal twist.
    weak_high = tone((697.0,), 4000) + tone((1209.0,), 4000, amplitude=2000)
    assert det.feed(weak_high) == []
    # Too quiet.
    assert det.feed(tone((697.0, 1209.0), 4000, amplitude=100)) == []
    # Speech-like: a tone pair buried in loud noise.
    noisy = dtmf_tone("1", 4000) + rng.normal(0, 12000, 4000)
    assert det.feed(np.clip(noisy, -32768, 32767).astype(np.int16)) == []


def test_inband_detector_survives_g711_round_trip() -> None:
    from media.g711 import Codec

    for codec in Codec:
        det = InbandDtmfDetector()
        assert det.feed(codec.decode(codec.encode(keyed("159#")))) == list("159#")
