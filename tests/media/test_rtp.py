"""RTP and RTCP packet codecs (RFC 3550)."""

from __future__ import annotations

import contextlib
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.errors import RTCPError, RTPError
from media.rtcp import (
    Bye,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    SenderReport,
    SourceDescription,
    build_compound,
    ntp_timestamp,
    parse_rtcp,
    rtcp_interval,
)
from media.rtp import (
    OutboundStream,
    RTPHeaderExtension,
    RTPPacket,
    pack_rtp,
    parse_rtp,
    parse_rtp_fields,
)


def test_parse_minimal_packet_fields() -> None:
    data = bytes.fromhex("80e0 1234 0000abcd deadbeef") + b"\xff" * 160
    p = parse_rtp(data)
    assert (p.payload_type, p.marker, p.sequence, p.timestamp, p.ssrc) == (
        0x60,
        True,
        0x1234,
        0xABCD,
        0xDEADBEEF,
    )
    assert p.payload == b"\xff" * 160
    assert p.csrcs == ()
    assert p.extension is None
    assert p.to_bytes() == data


def test_csrc_extension_and_padding_round_trip() -> None:
    p = RTPPacket(
        payload_type=8,
        sequence=65535,
        timestamp=2**32 - 1,
        ssrc=1,
        payload=b"abc",
        marker=False,
        csrcs=(7, 9),
        extension=RTPHeaderExtension(0xBEDE, b"\x10\x01\x00\x00"),
        padding=5,
    )
    data = p.to_bytes()
    assert data[0] == 0x80 | 0x20 | 0x10 | 2
    assert len(data) == 12 + 8 + 4 + 4 + 3 + 5
    assert data[-1] == 5
    assert parse_rtp(data) == p


@given(
    pt=st.integers(0, 127),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 2**32 - 1),
    ssrc=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=200),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 2**32 - 1), max_size=15),
    padding=st.integers(0, 255),
)
def test_round_trip_property(
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    payload: bytes,
    marker: bool,
    csrcs: list[int],
    padding: int,
) -> None:
    p = RTPPacket(pt, seq, ts, ssrc, payload, marker, tuple(csrcs), None, padding)
    if marker and 72 <= pt <= 76:
        # Indistinguishable from RTCP SR..APP on a multiplexed port (RFC 5761 §4).
        with pytest.raises(RTPError, match="RTCP packet type"):
            parse_rtp(p.to_bytes())
    else:
        assert parse_rtp(p.to_bytes()) == p


@given(st.binary(max_size=64))
def test_parser_never_raises_anything_but_rtperror(data: bytes) -> None:
    with contextlib.suppress(RTPError):
        parse_rtp(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x00\x00", "header: need at least 12 bytes, got 3"),
        (bytes.fromhex("40000000000000000000000000"), "version: must be 2, got 1"),
        (bytes.fromhex("82000000000000000000000000000000"), "csrc count: 2 CSRCs overrun"),
        (bytes.fromhex("90000000000000000000000000"), "extension: header overruns"),
        (bytes.fromhex("900000000000000000000000beef0002"), "extension: length 2 words overruns"),
        (
            bytes.fromhex("a0000000000000000000000000"),
            "padding: P bit set but the padding count is 0",
        ),
        (bytes.fromhex("a0000000000000000000000009"), "padding: count 9 overruns"),
        (bytes.fromhex("80c8000000000000000000000000"), "is an RTCP packet type"),
        (b"\x80" + bytes(1500), "packet: at most 1500 bytes"),
    ],
)
def test_malformed_packets_name_field_and_rule(data: bytes, message: str) -> None:
    with pytest.raises(RTPError, match=message):
        parse_rtp(data)


def test_constructor_validates_ranges() -> None:
    with pytest.raises(RTPError, match="payload type: must be 0-127, got 128"):
        RTPPacket(128, 0, 0, 0)
    with pytest.raises(RTPError, match="sequence: must be 0-65535"):
        RTPPacket(0, 70000, 0, 0)
    with pytest.raises(RTPError, match="csrc: at most 15"):
        RTPPacket(0, 0, 0, 0, csrcs=range(16))
    with pytest.raises(RTPError, match="extension: data must be whole 32-bit words"):
        RTPHeaderExtension(1, b"abc")


def test_pack_rtp_matches_object_serialisation() -> None:
    assert (
        pack_rtp(0, 5, 160, 42, b"x" * 160, True)
        == RTPPacket(0, 5, 160, 42, b"x" * 160, True).to_bytes()
    )


def test_outbound_stream_numbers_and_wraps() -> None:
    s = OutboundStream(ssrc=7, sequence=65534, timestamp=2**32 - 160)
    packets = [
        parse_rtp(s.packet(0, s.timestamp_at(160 * i), b"\xff" * 160, i == 0)) for i in range(3)
    ]
    assert [p.sequence for p in packets] == [65534, 65535, 0]
    assert [p.timestamp for p in packets] == [2**32 - 160, 0, 160]
    assert [p.marker for p in packets] == [True, False, False]
    assert {p.ssrc for p in packets} == {7}
    assert (s.packets_sent, s.octets_sent) == (3, 480)


def test_outbound_stream_random_starts_differ() -> None:
    starts = {(OutboundStream().ssrc, OutboundStream().next_sequence) for _ in range(5)}
    assert len(starts) == 5


# RTCP ------------------------------------------------------------------------


def test_compound_round_trip() -> None:
    block = ReportBlock(
        ssrc=0x11,
        fraction_lost=64,
        cumulative_lost=-3,
        highest_sequence=70000,
        jitter=12,
        last_sr=0xAABBCCDD,
        delay_since_last_sr=65536,
    )
    packets = [
        SenderReport(0x22, ntp_timestamp(1.5), 1234, 10, 1600, (block,)),
        SourceDescription(((0x22, "media@telephony"),)),
        Bye((0x22,), "hangup"),
    ]
    data = build_compound(packets)
    assert len(data) % 4 == 0
    assert parse_rtcp(data) == packets
    rr = [ReceiverReport(5, (block,)), SourceDescription(((5, "x"),))]
    assert parse_rtcp(build_compound(rr)) == rr


def test_ntp_timestamp_of_unix_epoch_plus_half() -> None:
    assert ntp_timestamp(0.5) == (2208988800 << 32) | (1 << 31)


def test_compound_must_start_with_report() -> None:
    with pytest.raises(RTCPError, match="must start with an SR or RR"):
        build_compound([Bye((1,))])
    sdes_first = bytes.fromhex("81ca0002 00000001 00000000")
    with pytest.raises(RTCPError, match="first packet type must be 200 or 201, got 202"):
        parse_rtcp(sdes_first)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\xc9\x00", "length must be a multiple of 4"),
        (bytes.fromhex("40c90001 00000001"), "version: must be 2, got 1"),
        (bytes.fromhex("80c90005 00000001"), "length: 5 words overrun"),
        (bytes.fromhex("81c90001 00000001"), "report count: 1 blocks overrun"),
    ],
)
def test_malformed_rtcp(data: bytes, message: str) -> None:
    with pytest.raises(RTCPError, match=message):
        parse_rtcp(data)


@given(st.binary(max_size=80))
def test_rtcp_parser_only_raises_rtcperror(data: bytes) -> None:
    with contextlib.suppress(RTCPError):
        parse_rtcp(data)


def test_reception_stats_loss_and_wrap() -> None:
    stats = ReceptionStats(65530)
    for seq in [65531, 65532, 65534, 65535, 0, 1, 3]:  # 65533 and 2 lost
        assert stats.update_sequence(seq)
    assert stats.extended_max == 65536 + 3
    assert stats.expected == 10
    assert stats.received == 8
    assert stats.lost == 2
    block = stats.report_block(9, now=0.0)
    assert block.fraction_lost == (2 << 8) // 10
    assert block.cumulative_lost == 2
    assert block.highest_sequence == 65539
    # A second interval with no loss reports fraction 0 but keeps the cumulative count.
    stats.update_sequence(4)
    assert stats.report_block(9, now=1.0).fraction_lost == 0


def test_reception_stats_restart_after_two_sequential_jumps() -> None:
    stats = ReceptionStats(100)
    assert not stats.update_sequence(20000)
    assert stats.update_sequence(20001)
    assert stats.base_seq == 20001
    assert stats.lost == 0


def test_jitter_follows_rfc3550_formula() -> None:
    stats = ReceptionStats(0)
    # Packets every 160 units, arriving with transit deltas of +80, -80, +80 ...
    arrivals = [0, 240, 320, 560, 640]
    stats.update_jitter(0, arrivals[0])
    expected = 0.0
    for i in range(1, 5):
        stats.update_jitter(160 * i, arrivals[i])
        expected += (80 - expected) / 16
    assert stats.jitter == pytest.approx(expected)
    assert stats.report_block(1, 0.0).jitter == int(expected)


def test_rtcp_interval_is_randomised_around_five_seconds() -> None:
    rng = random.Random(1)
    values = [rtcp_interval(rng) for _ in range(200)]
    assert min(values) >= 2.5
    assert max(values) <= 7.5
    assert len(set(values)) == 200


def test_sr_packet_layout() -> None:
    data = build_compound([SenderReport(1, 2, 3, 4, 5)])
    assert data[:4] == bytes.fromhex("80c80006")
    assert struct.unpack("!IQIII", data[4:]) == (1, 2, 3, 4, 5)


@given(
    st.one_of(
        st.binary(max_size=40), st.binary(min_size=12, max_size=40).map(lambda b: b"\x80" + b[1:])
    )
)
def test_fast_field_parser_agrees_with_the_full_parser(data: bytes) -> None:
    try:
        full = parse_rtp(data)
    except RTPError:
        with pytest.raises(RTPError):
            parse_rtp_fields(data)
        return
    assert parse_rtp_fields(data) == (
        full.payload_type,
        full.marker,
        full.sequence,
        full.timestamp,
        full.ssrc,
        full.payload,
    )
