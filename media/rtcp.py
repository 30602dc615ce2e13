"""RTCP (RFC 3550 §6): compound packets, reception statistics, report timing.

Sans-IO: :func:`parse_rtcp` and :func:`build_compound` convert between bytes
and frozen packet objects; :class:`ReceptionStats` implements the sequence
tracking of RFC 3550 Appendix A.1, the loss figures of A.3 and the interarrival
jitter of §6.4.1 / A.8, all from numbers the session passes in (sequence,
timestamp, arrival time), never from a clock of its own.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable, Sequence

import attrs

from media.errors import RTCPError

__all__ = (
    "RTCP_MIN_INTERVAL",
    "Bye",
    "RTCPPacket",
    "ReceiverReport",
    "ReceptionStats",
    "ReportBlock",
    "SenderReport",
    "SourceDescription",
    "SourceTable",
    "build_compound",
    "ntp_timestamp",
    "parse_rtcp",
    "reports_for",
    "rtcp_interval",
)

#: Nominal RTCP report interval in seconds (RFC 3550 §6.2: at least 5 s).
RTCP_MIN_INTERVAL = 5.0
#: Seconds between 1900-01-01 (NTP epoch) and 1970-01-01 (Unix epoch).
NTP_EPOCH_OFFSET = 2208988800
#: RFC 3550 A.1 constants: a jump of more than MAX_DROPOUT sequence numbers
#: forward, or MAX_MISORDER backwards, is treated as a restart of the source.
MAX_DROPOUT = 3000
MAX_MISORDER = 100
SEQ_MOD = 1 << 16

_PT_SR, _PT_RR, _PT_SDES, _PT_BYE = 200, 201, 202, 203
_COMMON = struct.Struct("!BBH")
_SR_INFO = struct.Struct("!IQIII")
_BLOCK = struct.Struct("!IIIIII")


def ntp_timestamp(unix_seconds: float) -> int:
    """The 64-bit NTP timestamp (RFC 3550 §4) of a Unix time in seconds."""
    ntp = unix_seconds + NTP_EPOCH_OFFSET
    return (int(ntp) << 32 | int((ntp % 1.0) * (1 << 32))) & 0xFFFFFFFFFFFFFFFF


def rtcp_interval(rng: random.Random, base: float = RTCP_MIN_INTERVAL) -> float:
    """A report interval, in seconds: ``base`` randomised by x0.5-1.5 (RFC 3550 §6.3.1)."""
    return base * (0.5 + rng.random())


@attrs.frozen
class ReportBlock:
    """One reception report block (RFC 3550 §6.4.1).

    :ivar ssrc: the source this block reports on.
    :ivar fraction_lost: packets lost since the last report, as a fraction x256 (0-255).
    :ivar cumulative_lost: packets lost since the start (signed 24 bits; negative
        when duplicates arrived).
    :ivar highest_sequence: extended highest sequence number received (cycles << 16 | seq).
    :ivar jitter: interarrival jitter, in timestamp units.
    :ivar last_sr: middle 32 bits of the NTP timestamp of the last SR received (0 if none).
    :ivar delay_since_last_sr: delay since that SR, in units of 1/65536 s.
    """

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    last_sr: int = 0
    delay_since_last_sr: int = 0

    def to_bytes(self) -> bytes:
        """Serialise the 24-byte block."""
        lost = max(-0x800000, min(0x7FFFFF, self.cumulative_lost)) & 0xFFFFFF
        return _BLOCK.pack(
            self.ssrc,
            (self.fraction_lost & 0xFF) << 24 | lost,
            self.highest_sequence & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.last_sr & 0xFFFFFFFF,
            self.delay_since_last_sr & 0xFFFFFFFF,
        )

    @classmethod
    def from_bytes(cls, data: bytes, offset: int) -> ReportBlock:
        """Parse a block at ``offset`` (the caller has checked the length)."""
        ssrc, word, high, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        lost = word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, word >> 24, lost, high, jitter, lsr, dlsr)


@attrs.frozen
class SenderReport:
    """An SR (PT 200): what we sent, plus reception report blocks.

    :ivar ntp_time: 64-bit NTP timestamp of the report.
    :ivar rtp_time: the RTP timestamp corresponding to ``ntp_time``.
    :ivar packet_count: packets sent since the start.
    :ivar octet_count: payload octets sent since the start.
    """

    ssrc: int
    ntp_time: int
    rtp_time: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()


@attrs.frozen
class ReceiverReport:
    """An RR (PT 201): reception report blocks from a source that did not send."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@attrs.frozen
class SourceDescription:
    """An SDES (PT 202) packet reduced to the CNAME of each chunk (RFC 3550 §6.5)."""

    cnames: tuple[tuple[int, str], ...]


@attrs.frozen
class Bye:
    """A BYE (PT 203): these sources are leaving."""

    ssrcs: tuple[int, ...]
    reason: str = ""


RTCPPacket = SenderReport | ReceiverReport | SourceDescription | Bye


def _header(pt: int, count: int, body: bytes) -> bytes:
    if len(body) % 4:
        body += bytes(4 - len(body) % 4)
    return _COMMON.pack(0x80 | count, pt, len(body) // 4) + body


def _encode(packet: RTCPPacket) -> bytes:
    if isinstance(packet, SenderReport):
        body = _SR_INFO.pack(
            packet.ssrc,
            packet.ntp_time,
            packet.rtp_time & 0xFFFFFFFF,
            packet.packet_count & 0xFFFFFFFF,
            packet.octet_count & 0xFFFFFFFF,
        )
        body += b"".join(b.to_bytes() for b in packet.reports)
        return _header(_PT_SR, len(packet.reports), body)
    if isinstance(packet, ReceiverReport):
        body = struct.pack("!I", packet.ssrc) + b"".join(b.to_bytes() for b in packet.reports)
        return _header(_PT_RR, len(packet.reports), body)
    if isinstance(packet, SourceDescription):
        chunks = []
        for ssrc, cname in packet.cnames:
            text = cname.encode("utf-8")[:255]
            chunk = struct.pack("!IBB", ssrc, 1, len(text)) + text + b"\0"
            chunks.append(chunk + bytes(-len(chunk) % 4))
        return _header(_PT_SDES, len(chunks), b"".join(chunks))
    reason = packet.reason.encode("utf-8")[:255]
    body = struct.pack(f"!{len(packet.ssrcs)}I", *packet.ssrcs)
    if reason:
        body += bytes((len(reason),)) + reason
    return _header(_PT_BYE, len(packet.ssrcs), body)


def build_compound(packets: Iterable[RTCPPacket]) -> bytes:
    """Serialise a compound RTCP packet (RFC 3550 §6.1).

    :param packets: an SR or RR first, then SDES (with a CNAME) and optionally BYE.
    :raises RTCPError: if the first packet is not an SR or RR.
    """
    items = list(packets)
    if not items or not isinstance(items[0], SenderReport | ReceiverReport):
        raise RTCPError("compound: must start with an SR or RR (RFC 3550 §6.1)")
    return b"".join(_encode(p) for p in items)


def _parse_blocks(data: bytes, offset: int, count: int, end: int) -> tuple[ReportBlock, ...]:
    if offset + 24 * count > end:
        raise RTCPError(f"report count: {count} blocks overrun the packet")
    return tuple(ReportBlock.from_bytes(data, offset + 24 * i) for i in range(count))


def _parse_sdes(data: bytes, offset: int, count: int, end: int) -> SourceDescription:
    cnames = []
    for _ in range(count):
        if offset + 4 > end:
            raise RTCPError("sdes: chunk overruns the packet")
        (ssrc,) = struct.unpack_from("!I", data, offset)
        offset += 4
        cname = ""
        while True:
            if offset >= end:
                raise RTCPError("sdes: item list not terminated")
            kind = data[offset]
            if kind == 0:
                offset += 4 - offset % 4  # skip the terminator and pad to 32 bits
                break
            if offset + 2 > end or offset + 2 + data[offset + 1] > end:
                raise RTCPError("sdes: item overruns the packet")
            length = data[offset + 1]
            if kind == 1:
                cname = data[offset + 2 : offset + 2 + length].decode("utf-8", "replace")
            offset += 2 + length
        cnames.append((ssrc, cname))
    return SourceDescription(tuple(cnames))


def parse_rtcp(data: bytes) -> list[RTCPPacket]:
    """Parse a compound RTCP packet.

    Packet types we do not model (APP, XR, feedback) are skipped.

    :returns: the SR, RR, SDES and BYE packets in order.
    :raises RTCPError: naming the field and rule, for a bad version, a length
        that overruns the datagram or is not a multiple of 4, a count that does
        not fit, or a compound that does not start with SR/RR.
    """
    if len(data) < 8 or len(data) % 4:
        raise RTCPError(f"compound: length must be a multiple of 4 and at least 8, got {len(data)}")
    packets: list[RTCPPacket] = []
    offset = 0
    first_type = None
    while offset < len(data):
        if offset + 4 > len(data):
            raise RTCPError("header: truncated")
        first, pt, words = _COMMON.unpack_from(data, offset)
        if first >> 6 != 2:
            raise RTCPError(f"version: must be 2, got {first >> 6}")
        end = offset + 4 + 4 * words
        if end > len(data):
            raise RTCPError(f"length: {words} words overrun the datagram")
        if first_type is None:
            first_type = pt
            if pt not in (_PT_SR, _PT_RR):
                raise RTCPError(f"compound: first packet type must be 200 or 201, got {pt}")
        count = first & 0x1F
        body = offset + 4
        if pt == _PT_SR:
            if body + 24 > end:
                raise RTCPError("sr: sender info overruns the packet")
            ssrc, ntp, rtp_ts, pkts, octets = _SR_INFO.unpack_from(data, body)
            blocks = _parse_blocks(data, body + 24, count, end)
            packets.append(SenderReport(ssrc, ntp, rtp_ts, pkts, octets, blocks))
        elif pt == _PT_RR:
            if body + 4 > end:
                raise RTCPError("rr: ssrc overruns the packet")
            (ssrc,) = struct.unpack_from("!I", data, body)
            packets.append(ReceiverReport(ssrc, _parse_blocks(data, body + 4, count, end)))
        elif pt == _PT_SDES:
            packets.append(_parse_sdes(data, body, count, end))
        elif pt == _PT_BYE:
            if body + 4 * count > end:
                raise RTCPError(f"bye: {count} sources overrun the packet")
            ssrcs = struct.unpack_from(f"!{count}I", data, body)
            reason = ""
            rpos = body + 4 * count
            if rpos < end:
                length = data[rpos]
                reason = data[rpos + 1 : min(end, rpos + 1 + length)].decode("utf-8", "replace")
            packets.append(Bye(tuple(ssrcs), reason))
        offset = end
    return packets


class ReceptionStats:
    """Reception statistics for one remote source (RFC 3550 A.1, A.3, A.8).

    :param sequence: the sequence number of the first packet received.
    """

    def __init__(self, sequence: int) -> None:
        self._reset(sequence)
        #: Middle 32 bits of the NTP time of the last SR from this source, and
        #: when (our clock, seconds) it arrived; for LSR/DLSR.
        self.last_sr = 0
        self.last_sr_arrival: float | None = None

    def _reset(self, sequence: int) -> None:
        self.base_seq = sequence
        self.max_seq = sequence
        self.bad_seq = SEQ_MOD + 1
        self.cycles = 0
        self.received = 1
        self.expected_prior = 0
        self.received_prior = 0
        self.transit: int | None = None
        #: Interarrival jitter in timestamp units, as a float (J in §6.4.1).
        self.jitter = 0.0

    def update_sequence(self, seq: int) -> bool:
        """Account for a packet's sequence number (RFC 3550 A.1 ``update_seq``).

        :returns: ``False`` if the packet should be treated as invalid (a big
            jump not yet confirmed by a second, consecutive packet).
        """
        udelta = (seq - self.max_seq) % SEQ_MOD
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += SEQ_MOD
            self.max_seq = seq
        elif udelta <= SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                # Two sequential packets after a jump: the source restarted.
                self._reset(seq)
                return True
            self.bad_seq = (seq + 1) % SEQ_MOD
            return False
        # else: duplicate or reordered packet, counted below.
        self.received += 1
        return True

    def update_jitter(self, rtp_timestamp: int, arrival_units: int) -> None:
        """Update J with one packet (§6.4.1).

        :param rtp_timestamp: the packet's RTP timestamp.
        :param arrival_units: its arrival time in the same clock-rate units.
        """
        transit = (arrival_units - rtp_timestamp) & 0xFFFFFFFF
        if self.transit is not None:
            d = abs(((transit - self.transit + 0x80000000) & 0xFFFFFFFF) - 0x80000000)
            self.jitter += (d - self.jitter) / 16.0
        self.transit = transit

    @property
    def extended_max(self) -> int:
        """Extended highest sequence number received (cycles + max_seq)."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """Packets expected since the start (A.3)."""
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (A.3); negative when duplicates arrived."""
        return self.expected - self.received

    def report_block(self, ssrc: int, now: float) -> ReportBlock:
        """Build a report block and start a new loss interval.

        :param ssrc: this source's SSRC.
        :param now: our clock, in seconds, for the DLSR field.
        """
        expected_interval = self.expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = self.expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        dlsr = 0
        if self.last_sr_arrival is not None:
            dlsr = int((now - self.last_sr_arrival) * 65536)
        return ReportBlock(
            ssrc=ssrc,
            fraction_lost=fraction,
            cumulative_lost=self.lost,
            highest_sequence=self.extended_max,
            jitter=int(self.jitter),
            last_sr=self.last_sr,
            delay_since_last_sr=dlsr,
        )


class SourceTable(dict[int, ReceptionStats]):
    """Reception statistics by SSRC, keeping at most ``limit`` sources (oldest dropped).

    :param limit: most sources tracked (a stream rarely has more than two:
        audio, and a separate SSRC some senders use for DTMF).
    """

    def __init__(self, limit: int = 8) -> None:
        super().__init__()
        self.limit = limit

    def account(self, ssrc: int, sequence: int, timestamp: int, now: float) -> None:
        """Update the statistics of ``ssrc`` with one packet arriving at ``now`` (seconds)."""
        stats = self.get(ssrc)
        if stats is None:
            if len(self) >= self.limit:
                self.pop(next(iter(self)))
            stats = self[ssrc] = ReceptionStats(sequence)
        elif not stats.update_sequence(sequence):
            return
        stats.update_jitter(timestamp, int(now * 8000))


def reports_for(stats: Sequence[tuple[int, ReceptionStats]], now: float) -> tuple[ReportBlock, ...]:
    """Report blocks for up to 31 sources (the RC field is 5 bits)."""
    return tuple(s.report_block(ssrc, now) for ssrc, s in stats[:31])
