"""RTCP reports of a session, on the clock."""

from __future__ import annotations

import random

import pytest
from twisted.internet.task import Clock

from media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    SenderReport,
    SourceDescription,
    build_compound,
    ntp_timestamp,
    parse_rtcp,
)
from media.rtcp_port import RTCPPort
from media.sdp import Direction

from .helpers import REMOTE, StampedTransport, advance_to, make_session, negotiated, rtp


def setup(clock: Clock, **kw):
    session, _rtp_transport = make_session(clock, **kw)
    port = RTCPPort(session, clock=clock, rng=random.Random(7), interval=5.0)
    transport = StampedTransport(clock)
    port.makeConnection(transport)  # type: ignore[arg-type]
    session.rtcp = port
    port.start()
    return session, port, transport


def test_reports_follow_randomised_absolute_schedule(clock: Clock) -> None:
    session, _port, transport = setup(clock)
    rng = random.Random(7)
    expected = [5.0 / 2 * (0.5 + rng.random())]
    for _ in range(3):
        expected.append(expected[-1] + 5.0 * (0.5 + rng.random()))
    advance_to(clock, expected[-1] + 0.001, step=0.5)
    times = [t for t, _, _ in transport.written]
    assert times == pytest.approx(expected, abs=1e-9)
    assert {addr for _, _, addr in transport.written} == {(REMOTE[0], REMOTE[1] + 1)}
    session.close()


def test_sender_report_counts_what_we_sent(clock: Clock) -> None:
    session, port, transport = setup(clock)
    session.datagramReceived(rtp(0, 500, 9000, b"\xff" * 160, ssrc=0xABC), REMOTE)
    session.datagramReceived(rtp(0, 502, 9320, b"\xff" * 160, ssrc=0xABC), REMOTE)  # 501 lost
    advance_to(clock, 4.0, step=0.02)
    _, data, _ = transport.written[0]
    sr, sdes = parse_rtcp(data)
    assert isinstance(sr, SenderReport)
    assert sr.ssrc == session.stream.ssrc
    sent_by_then = int(transport.written[0][0] / 0.02) + 1
    assert sr.packet_count == sent_by_then
    assert sr.octet_count == 160 * sent_by_then
    assert sr.ntp_time == ntp_timestamp(transport.written[0][0])
    assert sr.rtp_time == session.stream.timestamp_at(round(transport.written[0][0] * 8000))
    (block,) = sr.reports
    assert (block.ssrc, block.highest_sequence, block.cumulative_lost) == (0xABC, 502, 1)
    assert block.fraction_lost == 256 // 3
    assert isinstance(sdes, SourceDescription)
    assert sdes.cnames == ((session.stream.ssrc, port.cname),)
    session.close()


def test_receiver_report_when_we_do_not_send(clock: Clock) -> None:
    session, _port, transport = setup(clock, neg=negotiated(direction=Direction.RECVONLY))
    advance_to(clock, 4.0, step=0.05)
    first, _ = parse_rtcp(transport.written[0][1])
    assert isinstance(first, ReceiverReport)
    session.close()


def test_incoming_reports_feed_lsr_dlsr_and_remote_report(clock: Clock) -> None:
    session, port, transport = setup(clock)
    session.datagramReceived(rtp(0, 1, 100, b"\xff" * 160, ssrc=0xABC), REMOTE)
    about_us = ReportBlock(session.stream.ssrc, 12, 3, 1000, 40)
    peer_sr = SenderReport(0xABC, 0x0001_2345_6789_0000, 0, 1, 160, (about_us,))
    port.datagramReceived(build_compound([peer_sr]), ("127.0.0.1", 40001))
    port.datagramReceived(b"\x00junk", ("127.0.0.1", 40001))
    assert port.remote_report == about_us
    assert port.malformed == 1
    assert port.destination() == ("127.0.0.1", 40001)  # RTCP is symmetric too
    advance_to(clock, 1.0)
    port.datagramReceived(build_compound([peer_sr]), ("127.0.0.1", 40001))
    arrived = clock.seconds()
    advance_to(clock, 4.0, step=0.05)
    report = parse_rtcp(transport.written[0][1])[0]
    assert isinstance(report, SenderReport)
    (block,) = report.reports
    assert block.last_sr == 0x2345_6789
    assert block.delay_since_last_sr == int((transport.written[0][0] - arrived) * 65536)
    session.close()


def test_close_sends_bye_and_cancels_the_timer(clock: Clock) -> None:
    session, _port, transport = setup(clock)
    session.close()
    packets = parse_rtcp(transport.written[-1][1])
    assert isinstance(packets[-1], Bye)
    assert packets[-1].ssrcs == (session.stream.ssrc,)
    assert clock.getDelayedCalls() == []
