"""The RTCP edge of a session: reports on port + 1 (RFC 3550 §6).

Every randomised interval (5 s x0.5-1.5; the first one halved, §6.2) the port
sends a compound packet: an SR if we sent RTP since the last report, else an
RR, each with a reception block per remote source (loss, jitter, LSR/DLSR),
plus an SDES CNAME; closing sends a BYE.  Incoming SRs feed LSR/DLSR, and
blocks about our SSRC are kept as :attr:`RTCPPort.remote_report`: what the
peer says it receives from us.  Report times are computed from the previous
report's scheduled time (``next = previous + interval``), not from when the
timer happened to fire.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import DatagramProtocol

from media.errors import RTCPError
from media.rtcp import (
    RTCP_MIN_INTERVAL,
    Bye,
    ReceiverReport,
    ReportBlock,
    RTCPPacket,
    SenderReport,
    SourceDescription,
    build_compound,
    ntp_timestamp,
    parse_rtcp,
    reports_for,
    rtcp_interval,
)

if TYPE_CHECKING:
    from media.session import RTPSession

__all__ = ("RTCPPort",)


#: Randomises report intervals (RFC 3550 §6.3.1): jitter, not security.
_JITTER = random.Random()  # noqa: S311


class RTCPPort(DatagramProtocol):
    """RTCP for one :class:`~media.session.RTPSession`.

    :param session: the RTP session reported on.
    :param clock: schedules reports; its ``seconds()`` also stamps SRs (the
        real reactor's clock is wall-clock time, as NTP timestamps need).
    :param rng: randomises intervals (seeded in tests).
    :param interval: the nominal interval in seconds.
    """

    noisy = False

    def __init__(
        self,
        session: RTPSession,
        *,
        clock: IReactorTime,
        rng: random.Random | None = None,
        interval: float = RTCP_MIN_INTERVAL,
    ) -> None:
        self.session = session
        self.clock = clock
        self.rng = rng or _JITTER  # one generator for all: seeding one per call costs a syscall
        self.interval = interval
        self.cname = f"telephony-{session.stream.ssrc:08x}"
        self.reports_sent = 0
        self.received = 0
        self.malformed = 0
        #: The latest report block the peer sent about our stream, if any.
        self.remote_report: ReportBlock | None = None
        self._remote: tuple[str, int] | None = None
        self._call: IDelayedCall | None = None
        self._next = 0.0
        self._packets_at_last_report = 0

    def start(self) -> None:
        """Schedule the first report (half an interval, randomised)."""
        if self._call is None:
            self._next = self.clock.seconds() + rtcp_interval(self.rng, self.interval / 2)
            self._call = self.clock.callLater(self._next - self.clock.seconds(), self._report)

    def destination(self) -> tuple[str, int] | None:
        """Where reports go: the peer's RTCP source if seen, else its RTP port + 1."""
        if self._remote is not None:
            return self._remote
        remote = self.session.remote
        return None if remote is None else (remote[0], remote[1] + 1)

    def _compound(self, *, bye: bool = False) -> bytes:
        session = self.session
        now = self.clock.seconds()
        stream = session.stream
        blocks = reports_for(list(session.sources.items()), now)
        first: RTCPPacket
        if stream.packets_sent > self._packets_at_last_report:
            self._packets_at_last_report = stream.packets_sent
            first = SenderReport(
                stream.ssrc,
                ntp_timestamp(now),
                session.rtp_timestamp_now(),
                stream.packets_sent,
                stream.octets_sent,
                blocks,
            )
        else:
            first = ReceiverReport(stream.ssrc, blocks)
        packets: list[RTCPPacket] = [first, SourceDescription(((stream.ssrc, self.cname),))]
        if bye:
            packets.append(Bye((stream.ssrc,), "session closed"))
        return build_compound(packets)

    def _send(self, data: bytes) -> None:
        destination = self.destination()
        if destination is not None and self.transport is not None:
            self.transport.write(data, destination)
            self.reports_sent += 1

    def _report(self) -> None:
        self._call = None
        self._send(self._compound())
        self._next += rtcp_interval(self.rng, self.interval)
        self._call = self.clock.callLater(max(0.0, self._next - self.clock.seconds()), self._report)

    def stop(self) -> None:
        """Cancel the timer and send a BYE."""
        if self._call is not None:
            self._call.cancel()
            self._call = None
            self._send(self._compound(bye=True))

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """Parse a compound packet; malformed ones are counted and dropped."""
        try:
            packets = parse_rtcp(datagram)
        except RTCPError:
            self.malformed += 1
            return
        self.received += 1
        self._remote = (addr[0], addr[1])
        now = self.clock.seconds()
        ours = self.session.stream.ssrc
        for packet in packets:
            if isinstance(packet, SenderReport | ReceiverReport):
                if isinstance(packet, SenderReport):
                    stats = self.session.sources.get(packet.ssrc)
                    if stats is not None:
                        stats.last_sr = (packet.ntp_time >> 16) & 0xFFFFFFFF
                        stats.last_sr_arrival = now
                for block in packet.reports:
                    if block.ssrc == ours:
                        self.remote_report = block
