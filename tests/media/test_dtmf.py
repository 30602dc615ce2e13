"""RFC 4733 digit planning, sender packets, receiver; in-band tones and detection."""

from __future__ import annotations

import numpy as np
import pytest
from twisted.internet.task import Clock

from media.dtmf import (
    SEGMENT_FRAMES,
    DigitPlan,
    DtmfEventKind,
    DtmfReceiver,
    DtmfSender,
    ScheduledDigit,
    TelephoneEvent,
    parse_event,
    plan_digits,
    split_tone_length,
)
from media.errors import MediaArgumentError
from media.inband import InbandDtmfDetector, dtmf_tone, tone

from .helpers import advance_to, make_session


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
        ({"digits": "1", "digit_ms": 39}, "digit_ms: must be 40-24000 ms, got 39"),
        ({"digits": "1@24001"}, "digit_ms: must be 40-24000 ms, got 24001"),
        ({"digits": "1@"}, "the tone length after @ must be a whole number of ms, got ''"),
        ({"digits": "1@1@2"}, "the tone length after @ must be a whole number of ms"),
        ({"digits": "1@x"}, "the tone length after @ must be a whole number of ms"),
        ({"digits": "1", "gap_ms": 20}, "gap_ms: must be 40-10000 ms, got 20"),
        ({"digits": "1" * 300}, "digits: at most 256 characters"),
    ],
)
def test_plan_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(MediaArgumentError, match=message):
        plan_digits(**kwargs)  # type: ignore[arg-type]


def test_tone_length_after_at_sets_every_digit() -> None:
    assert split_tone_length("12w3@1000") == ("12w3", 1000)
    assert split_tone_length("12") == ("12", None)
    plan = plan_digits("12w3@1000")
    # 1000 ms = 50 frames, then the 100 ms gap (5 frames); w adds 25 frames.
    assert plan.digits == (
        ScheduledDigit("1", 0, 50),
        ScheduledDigit("2", 55, 50),
        ScheduledDigit("3", 135, 50),
    )
    assert plan.done_frame == 135 + 50 + 2
    # The suffix overrides the digit_ms argument; lengths still round up to frames.
    assert plan_digits("1@50", digit_ms=400).digits == (ScheduledDigit("1", 0, 3),)


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


def test_sender_splits_a_long_event_into_segments() -> None:
    """9 s is 72,000 units, more than the 16-bit duration field holds (RFC 4733
    §2.5.1.3): the first segment is 409 frames, the second the remaining 41."""
    assert SEGMENT_FRAMES == 409
    sender = DtmfSender(plan_digits("5@9000"))
    sent = [(f, sender.packet_at(f)) for f in range(460)]
    packets = [(f, p, parse_event(p.payload)) for f, p in sent if p is not None]
    assert [f for f, _, _ in packets] == list(range(452))
    first = packets[:409]
    second = packets[409:]
    assert [e.duration for _, _, e in first] == [160 * (k + 1) for k in range(409)]
    assert first[-1][2].duration == 65440 <= 0xFFFF
    assert not any(e.end for _, _, e in first), "only the final segment ends the event"
    assert {p.start_frame for _, p, _ in first} == {0}
    assert [e.duration for _, _, e in second] == [160 * (k + 1) for k in range(41)] + [6560] * 2
    assert [e.end for _, _, e in second] == [False] * 40 + [True] * 3
    # The new segment is stamped with its own first frame: where the last one stopped.
    assert {p.start_frame for _, p, _ in second} == {409}
    assert [p.marker for _, p, _ in packets] == [True] + [False] * 451
    assert sender.done_frame == 452


def test_short_events_are_one_segment_up_to_the_limit() -> None:
    sender = DtmfSender(plan_digits(f"1@{SEGMENT_FRAMES * 20}"))
    packets = [sender.packet_at(f) for f in range(SEGMENT_FRAMES + 2)]
    assert all(p is not None and p.start_frame == 0 for p in packets)
    last = parse_event(packets[-1].payload if packets[-1] else b"")
    assert (last.end, last.duration) == (True, 65440)


def test_receiver_joins_the_segments_of_a_long_event() -> None:
    sender = DtmfSender(plan_digits("5@9000"))
    rx = DtmfReceiver()
    events = []
    for f in range(sender.done_frame):
        p = sender.packet_at(f)
        if p is not None:
            events += rx.feed(7, 1000 + 160 * p.start_frame, p.payload, 0.02 * f)
    assert [(e.kind, e.digit) for e in events] == [
        (DtmfEventKind.BEGIN, "5"),
        (DtmfEventKind.END, "5"),
    ]
    assert events[-1].duration == 72000  # 9 s at 8 kHz
    # A late packet of the first segment does not start the digit again.
    assert rx.feed(7, 1000, TelephoneEvent(5, False, 10, 65440).to_bytes(), 10.0) == []


def test_receiver_joins_segments_of_65535_units_as_other_senders_cut_them() -> None:
    rx = DtmfReceiver()
    ts = 50_000
    events = rx.feed(1, ts, TelephoneEvent(2, False, 10, 65440).to_bytes(), 0.0)
    events += rx.feed(1, ts, TelephoneEvent(2, False, 10, 0xFFFF).to_bytes(), 0.02)
    events += rx.feed(1, ts + 0xFFFF, TelephoneEvent(2, True, 10, 800).to_bytes(), 0.04)
    assert [(e.kind, e.duration) for e in events] == [
        (DtmfEventKind.BEGIN, 65440),
        (DtmfEventKind.END, 0xFFFF + 800),
    ]


def test_receiver_does_not_join_a_new_press_of_the_same_key() -> None:
    rx = DtmfReceiver()
    # "1" lost its end packets; 40 ms later "1" again: two digits, not one.
    events = feed_all(rx, digit_packets(1, 100)[:4] + digit_packets(1, 100 + 640 + 320))
    assert [e.kind for e in events].count(DtmfEventKind.BEGIN) == 2


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


# On the wire, with a Clock ---------------------------------------------------------


def test_tone_length_on_the_wire_to_the_millisecond(clock: Clock) -> None:
    session, transport = make_session(clock)
    done_at: list[float] = []
    session.send_digits("12@1000").addCallback(lambda _: done_at.append(clock.seconds()))
    advance_to(clock, 3.0)
    events = [(t, p, parse_event(p.payload)) for t, p in transport.packets(101)]
    assert len(events) == 2 * 52
    for i, start in enumerate([0.0, 1.1]):  # 1 s tone, then the 100 ms gap
        digit = events[52 * i : 52 * i + 52]
        assert [t for t, _, _ in digit] == pytest.approx([start + 0.02 * k for k in range(52)])
        assert [e.duration for _, _, e in digit] == [160 * (k + 1) for k in range(50)] + [8000] * 2
        assert [e.end for _, _, e in digit] == [False] * 49 + [True] * 3
        assert [p.marker for _, p, _ in digit] == [True] + [False] * 51
        assert len({p.timestamp for _, p, _ in digit}) == 1
    assert events[52][1].timestamp - events[0][1].timestamp == round(1.1 * 8000)
    assert done_at == pytest.approx([1.1 + 51 * 0.02])  # with the last end packet
    session.close()


def test_long_tone_segments_on_the_wire(clock: Clock) -> None:
    session, transport = make_session(clock)
    session.send_digits("7@9000")
    advance_to(clock, 9.2)
    events = [(t, p, parse_event(p.payload)) for t, p in transport.packets(101)]
    assert [t for t, _, _ in events] == pytest.approx([0.02 * k for k in range(452)])
    stamps = [p.timestamp for _, p, _ in events]
    assert set(stamps[:409]) == {stamps[0]}
    assert set(stamps[409:]) == {(stamps[0] + 409 * 160) & 0xFFFFFFFF}
    assert events[408][2].duration == 65440
    assert not events[408][2].end
    assert events[409][2].duration == 160
    assert not events[409][1].marker
    assert [e.end for _, _, e in events[-3:]] == [True] * 3
    assert {e.duration for _, _, e in events[-3:]} == {6560}
    session.close()


def test_a_segment_that_overlaps_the_last_one_never_shortens_the_event() -> None:
    """Found by fuzzing (tools/fuzz.py rfc4733): a next segment stamped inside what
    the active one already covered (a sender's clock going back) made the END report
    less than the BEGIN had (448 units after a BEGIN of 12,704)."""
    rx = DtmfReceiver()
    events = rx.feed(1, 100, TelephoneEvent(5, False, 10, 12_704).to_bytes(), 0.0)
    events += rx.feed(1, 228, TelephoneEvent(5, True, 10, 320).to_bytes(), 0.02)
    assert [(e.kind, e.duration) for e in events] == [
        (DtmfEventKind.BEGIN, 12_704),
        (DtmfEventKind.END, 12_704),
    ]
