"""Media and document fuzz targets: SDP, RTP, RTCP, RFC 4733 events, Plivo XML.

Each raises only on a bug: an exception other than the format's own error, a value
that does not read back as itself, or a broken invariant of the receiver.
"""

from __future__ import annotations

import struct

from media.dtmf import (
    EVENT_DIGITS,
    DtmfEventKind,
    DtmfReceiver,
    TelephoneEvent,
    parse_event,
)
from media.errors import RTCPError, RTPError, SDPError
from media.rtcp import (
    Bye,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    SenderReport,
    SourceDescription,
    build_compound,
    parse_rtcp,
)
from media.rtp import parse_rtp, parse_rtp_fields
from media.sdp import Origin, answer_offer, parse_sdp
from tests.fuzz._sip import BugFoundError
from xml_dsl.errors import XMLError
from xml_dsl.parser import parse as parse_xml

__all__ = (
    "RTCP_SEEDS",
    "RTP_SEEDS",
    "SDP_SEEDS",
    "TELEPHONE_EVENT_SEEDS",
    "XML_SEEDS",
    "fuzz_rtcp",
    "fuzz_rtp",
    "fuzz_sdp",
    "fuzz_telephone_events",
    "fuzz_xml",
)

SDP_SEEDS = [
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
    b"v=0\r\no=mhandley 29739 7272939 IN IP6 2001:db8::1\r\ns=-\r\nt=0 0\r\n"
    b"m=audio 49217 RTP/AVP 18 0\r\nc=IN IP6 2001:db8::2\r\na=sendonly\r\n"
    b"m=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\nm=audio 0 RTP/AVP 8\r\n",
    b"v=0\no=- 0 0 IN IP4 0.0.0.0\ns= \nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 9 RTP/SAVPF 111\n"
    b"a=rtpmap:111 opus/48000/2\na=inactive\n",
]


def fuzz_sdp(data: bytes) -> None:
    """An SDP body: SDPError only; what parses reads back as itself, and answering it
    as the call layer does raises nothing but SDPError."""
    try:
        offer = parse_sdp(data)
    except SDPError:
        return
    again = parse_sdp(offer.to_bytes())
    if again != offer:
        raise BugFoundError(f"SDP does not read back as itself: {offer!r} / {again!r}")
    try:
        answer, negotiated = answer_offer(offer, Origin(), address="127.0.0.1", port=20000)
    except SDPError:
        return
    if parse_sdp(answer.to_bytes()) != answer:
        raise BugFoundError("our answer does not read back as itself")
    if not 0 <= negotiated.payload_type <= 127:
        raise BugFoundError(f"negotiated payload type {negotiated.payload_type}")


def _rtp(pt: int, seq: int, ts: int, payload: bytes, *, first: int = 0x80) -> bytes:
    return struct.pack("!BBHII", first, pt, seq, ts, 0x1234) + payload


_DATAGRAMS = [
    _rtp(0, 1, 160, bytes(160)),
    _rtp(0x80 | 8, 65535, 2**32 - 160, b"\xd5" * 160),
    _rtp(101, 7, 8000, b"", first=0x92)
    + b"\x00\x00\x00\x01\x00\x00\x00\x02\xbe\xde\x00\x01abcd\x05\x8a\x03\x20",
    _rtp(0, 3, 480, b"\x7f" * 10 + b"\x00\x00\x03", first=0xA0),
    _rtp(0, 2, 320, bytes(160)),
]
#: Inputs of :func:`fuzz_rtp`: datagrams, each led by its length byte.
RTP_SEEDS = [
    b"".join(bytes([len(d)]) + d for d in _DATAGRAMS),
    b"".join(bytes([len(d)]) + d for d in reversed(_DATAGRAMS)),
]


def fuzz_rtp(data: bytes) -> None:
    """RTP datagrams (the input cut into several): RTPError only; the fast path and
    the full parser agree; reception statistics of what parsed stay consistent."""
    stats: ReceptionStats | None = None
    for i, datagram in enumerate(_split(data)):
        try:
            packet = parse_rtp(datagram)
        except RTPError:
            try:
                parse_rtp_fields(datagram)
            except RTPError:
                continue
            raise BugFoundError("parse_rtp_fields accepted what parse_rtp refused") from None
        fields = parse_rtp_fields(datagram)
        full = (packet.payload_type, packet.marker, packet.sequence, packet.timestamp, packet.ssrc)
        if fields[:5] != full or bytes(fields[5]) != packet.payload:
            raise BugFoundError(f"fast and full parsers disagree on {datagram!r}")
        if stats is None:
            stats = ReceptionStats(packet.sequence)
            continue
        stats.update_sequence(packet.sequence)
        stats.update_jitter(packet.timestamp, i * 160)
        block = stats.report_block(packet.ssrc, float(i))
        if not 0 <= block.fraction_lost <= 255 or block.jitter < 0:
            raise BugFoundError(f"report block out of range: {block!r}")


def _split(data: bytes) -> list[bytes]:
    """Datagrams from one input: each is led by its length byte (at most 255 bytes)."""
    out = []
    pos = 0
    while pos < len(data) and len(out) < 64:
        size = data[pos]
        out.append(data[pos + 1 : pos + 1 + size])
        pos += 1 + size
    return out


RTCP_SEEDS = [
    build_compound(
        [
            SenderReport(1, 2**63, 160, 10, 1600, (ReportBlock(2, 3, -1, 70000, 5, 6, 7),)),
            SourceDescription(((1, "alice@example.test"),)),
            Bye((1, 2), "bye"),
        ]
    ),
    build_compound([ReceiverReport(9, ()), SourceDescription(((9, ""),))]),
]


def fuzz_rtcp(data: bytes) -> None:
    """A compound RTCP packet: RTCPError only; what parses serialises and reads back."""
    try:
        packets = parse_rtcp(data)
    except RTCPError:
        return
    try:
        encoded = build_compound(packets)
    except RTCPError:
        raise BugFoundError("a parsed compound cannot be serialised") from None
    again = parse_rtcp(encoded)
    if [type(p) for p in again] != [type(p) for p in packets]:
        raise BugFoundError("RTCP packet kinds changed on a round trip")
    for old, new in zip(packets, again, strict=True):
        if isinstance(old, SenderReport | ReceiverReport) and old != new:
            raise BugFoundError(f"report changed on a round trip: {old!r} / {new!r}")


TELEPHONE_EVENT_SEEDS = [
    # (ssrc byte, timestamp 2 bytes, arrival step byte, 4-byte payload) records.
    b"".join(
        struct.pack("!BHB", 1, 100, 20) + TelephoneEvent(5, i >= 4, 10, 160 * (i + 1)).to_bytes()
        for i in range(7)
    ),
    b"".join(
        struct.pack("!BHB", s, ts, 20) + TelephoneEvent(e, True, 7, 800).to_bytes()
        for s, ts, e in ((1, 10, 1), (1, 10, 1), (2, 900, 11), (1, 1800, 15))
    ),
]


def fuzz_telephone_events(data: bytes) -> None:
    """RFC 4733 packets into the receiver: never raises; events alternate BEGIN, END;
    an END is the digit its BEGIN named, lasting at least as long; a digit is only
    what its event code names; one whose end packets are lost ends by the timeout.

    (A key the receiver no longer remembers, :data:`REMEMBERED_EVENTS` events later,
    may begin again: its memory is bounded on purpose, and such a packet cannot come
    that late from a phone.)"""
    receiver = DtmfReceiver()
    now = 0.0
    active: tuple[str, int] | None = None  # digit and duration of the open BEGIN
    for pos in range(0, len(data) - 7, 8):
        ssrc, timestamp, step = struct.unpack_from("!BHB", data, pos)
        payload = data[pos + 4 : pos + 8]
        now += step / 1000
        try:
            parse_event(payload)
        except RTPError:
            raise BugFoundError("a 4-byte payload was refused") from None
        for event in receiver.poll(now) + receiver.feed(ssrc, timestamp, payload, now):
            if event.digit not in EVENT_DIGITS.values():
                raise BugFoundError(f"digit {event.digit!r}")
            if event.kind is DtmfEventKind.BEGIN:
                if active is not None:
                    raise BugFoundError(f"{event.digit} began while {active[0]} had not ended")
                active = (event.digit, event.duration)
            else:
                if active is None:
                    raise BugFoundError(f"{event.digit} ended without beginning")
                if event.digit != active[0] or event.duration < active[1]:
                    raise BugFoundError(f"END {event!r} does not match BEGIN {active}")
                active = None
    deadline = receiver.next_deadline()
    if deadline is not None:
        receiver.poll(deadline)
    if receiver.next_deadline() is not None:
        raise BugFoundError("an event never ends")


XML_SEEDS = [
    b'<?xml version="1.0" encoding="UTF-8"?><Response><Speak voice="WOMAN" language="en-US"'
    b' loop="2">Hello</Speak><Wait length="2"/><GetDigits action="http://127.0.0.1/a"'
    b' timeout="5" numDigits="4" finishOnKey="#"><Play>http://127.0.0.1/x.wav</Play>'
    b'</GetDigits><Hangup reason="busy"/></Response>',
    b'<Response><Dial callerId="18004321321" timeout="20" action="/d" sendDigits="ww12@200">'
    b'<Number sendDigits="1">18001231234</Number><User>sip:alice@example.test</User>'
    b'</Dial><Record maxLength="30" playBeep="true"/><DTMF>12#</DTMF>'
    b'<Redirect method="GET">http://127.0.0.1/next</Redirect><PreAnswer><Speak>x</Speak>'
    b"</PreAnswer></Response>",
    b'<Response><Speak><prosody rate="slow">a<break time="1s"/>b</prosody></Speak>'
    b'<GetInput inputType="dtmf" action="/g"/></Response>',
]


def fuzz_xml(data: bytes) -> None:
    """A Plivo XML document: a parsed Response, or XMLError naming the fault."""
    try:
        parse_xml(data)
    except XMLError as exc:
        if not str(exc):
            raise BugFoundError("an XMLError that says nothing") from exc
