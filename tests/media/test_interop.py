"""Interop on loopback: tshark decodes our RFC 4733 events; sipp plays RFC 2833 to us."""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue

from media.g711 import Codec
from media.interfaces import DigitsEnd
from media.sdp import Direction, Negotiated
from tests.sipp import free_media_ports, free_udp_port

from .capture import CaptureSink
from .sip_uas import MinimalUAS
from .test_engine import make_engine, within

pytestmark = pytest.mark.interop


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path is not None, f"{name} is required for the interop tests (apt-get install)"
    return path


@pytest_twisted.ensureDeferred
async def test_tshark_decodes_our_1w2W_pound(tmp_path: Path) -> None:
    tshark = tool("tshark")
    engine = make_engine(tmp_path, pairs=1)
    sink = CaptureSink()
    listening = reactor.listenUDP(0, sink, interface="127.0.0.1")
    sink_port = listening.getHost().port
    session = engine.create_session()
    try:
        session.configure(
            Negotiated(Codec.PCMU, 0, 101, "127.0.0.1", sink_port, Direction.SENDRECV)
        )
        await within(session.send_digits("1w2W#"))
        await deferLater(reactor, 0.1, lambda: None)
    finally:
        session.close()
        await listening.stopListening()
    capture = tmp_path / "dtmf.pcap"
    sink.write_pcap(capture, ("127.0.0.1", sink_port))
    fields = [
        "frame.time_epoch", "rtp.p_type", "rtp.marker", "rtp.seq", "rtp.timestamp",
        "rtp.ssrc", "rtpevent.event_id", "rtpevent.end_of_event", "rtpevent.volume",
        "rtpevent.duration",
    ]  # fmt: skip
    args = ["-r", str(capture), "-d", f"udp.port=={sink_port},rtp", "-d", "rtp.pt==101,rtpevent"]
    args += ["-Y", "rtpevent", "-T", "fields", "-E", "separator=,"]
    for f in fields:
        args += ["-e", f]
    out, err, code = await getProcessOutputAndValue(tshark, args, env={"HOME": str(tmp_path)})
    assert code == 0, err.decode()
    rows = [line.split(",") for line in out.decode().splitlines() if line]
    assert len(rows) == 21, out.decode()

    def flag(text: str) -> bool:
        return text.strip().lower() in ("1", "true")

    events: dict[int, list[list[str]]] = defaultdict(list)
    for row in rows:
        assert row[1] == "101"
        events[int(row[4])].append(row)
    assert len(events) == 3
    groups = [events[ts] for ts in sorted(events, key=lambda t: float(events[t][0][0]))]
    assert [int(g[0][6]) for g in groups] == [1, 2, 11]  # '1', '2', '#'
    first = float(groups[0][0][0])
    starts = [float(g[0][0]) - first for g in groups]
    assert starts == pytest.approx([0.0, 0.7, 1.9], abs=0.005)
    for group in groups:
        assert len({row[6] for row in group}) == 1
        assert [flag(row[2]) for row in group] == [True] + [False] * 6
        assert [flag(row[7]) for row in group] == [False] * 4 + [True] * 3
        assert [int(row[9]) for row in group] == [160, 320, 480, 640, 800, 800, 800]
        assert {row[8] for row in group} == {"10"}
        assert len({row[5] for row in group}) == 1
        seqs = [int(row[3]) for row in group[-3:]]
        assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2]  # three end packets, new seqs
    # Same SSRC and sequence space as our audio.
    assert {g[0][5] for g in groups} == {f"0x{session.stream.ssrc:08x}"}


def pcap_dir() -> Path:
    for candidate in ("/usr/share/sip-tester", "/usr/share/doc/sip-tester", "/usr/share/sipp"):
        if (Path(candidate) / "dtmf_2833_1.pcap").exists():
            return Path(candidate)
    raise AssertionError("sipp's dtmf_2833_*.pcap files are missing (Debian: sip-tester)")


SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="RFC 2833 digits to a UAS">
  <send retrans="500"><![CDATA[
INVITE sip:media@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:media@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=sipp 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
]]></send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
  <send><![CDATA[
ACK sip:media@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:media@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

]]></send>
{plays}
  <send retrans="500"><![CDATA[
BYE sip:media@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:media@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""

PLAY = """  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <pause milliseconds="400"/>"""


@pytest_twisted.ensureDeferred
async def test_sipp_plays_rfc2833_digits_to_us(tmp_path: Path) -> None:
    sipp = tool("sipp")
    pcaps = pcap_dir()
    names = {"1": "1", "#": "pound", "9": "9", "*": "star", "0": "0"}
    digits = "1#9*0"
    plays = "\n".join(PLAY.format(pcap=pcaps / f"dtmf_2833_{names[d]}.pcap") for d in digits)
    scenario = tmp_path / "uac_2833.xml"
    scenario.write_text(SCENARIO.replace("{plays}", plays))

    engine = make_engine(tmp_path, pairs=1)
    session = engine.create_session()
    uas = MinimalUAS(session)
    sip = reactor.listenUDP(0, uas, interface="127.0.0.1")
    uas.port = sip.getHost().port
    collected = session.collect_digits(max_digits=5, timeout=20.0, finish_on_key="")
    sipp_port = free_udp_port()
    try:
        args = [
            f"127.0.0.1:{uas.port}", "-sf", str(scenario), "-m", "1",
            "-i", "127.0.0.1", "-mi", "127.0.0.1",
            "-mp", str(free_media_ports("127.0.0.1", avoid=sipp_port)),
            "-p", str(sipp_port), "-nostdin", "-timeout", "20s", "-timeout_error",
            "-trace_err",
        ]  # fmt: skip
        out, err, code = await getProcessOutputAndValue(sipp, args, path=str(tmp_path))
        assert code == 0, (out + err).decode(errors="replace")[-2000:]
        result = await within(collected, 5.0)
        assert (result.digits, result.reason) == (digits, DigitsEnd.MAX_DIGITS)
        assert uas.events[:1] == ["INVITE"]
        assert "BYE" in uas.events
        assert session.counters.malformed == 0
        assert session.remote is not None
    finally:
        session.close()
        await sip.stopListening()
