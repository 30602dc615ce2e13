"""A UDP port tuned for RTP: one datagram per readiness event.

Twisted's ``udp.Port.doRead`` reads until the socket is empty, which for a
voice stream (one packet every 20 ms) means two ``recvfrom`` calls per packet,
the second failing with ``EAGAIN`` and raising an exception.  The epoll and
poll reactors are level-triggered: a socket with more datagrams queued is
reported again on the next poll, so reading one datagram per event loses
nothing and saves that syscall and exception on every packet (about 12 % of
a core at 1,000 streams, see ``docs/benchmarks.md``).
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import base, error, udp
from twisted.internet.interfaces import IListeningPort
from twisted.internet.posixbase import PosixReactorBase
from twisted.internet.protocol import DatagramProtocol
from twisted.python import log

__all__ = ("MAX_DATAGRAM", "RTPPort", "listen_rtp")

#: Receive buffer per datagram, in bytes: larger datagrams are truncated to
#: this and then rejected as oversized RTP.
MAX_DATAGRAM = 2048


class RTPPort(udp.Port):
    """``udp.Port`` reading at most one datagram each time the socket is readable.

    It also closes its socket when binding fails (``udp.Port`` leaves it to the
    garbage collector, with a ResourceWarning, each time a port of the range
    is taken) and does not log a line per port opened.
    """

    def _bindSocket(self) -> None:
        skt = self.createInternetSocket()
        try:
            skt.bind((self.interface, self.port))
        except OSError as e:
            skt.close()
            raise error.CannotListenError(self.interface, self.port, e) from None
        self._realPortNumber = skt.getsockname()[1]
        self.connected = 1
        self.socket = skt
        self.fileno = skt.fileno  # type: ignore[method-assign]

    def doRead(self) -> None:
        """Read one datagram; never lets the protocol's exception reach the reactor."""
        try:
            data, addr = self.socket.recvfrom(self.maxPacketSize)
        except OSError as se:
            no = se.args[0]
            if no in udp._sockErrReadIgnore:
                return
            if no in udp._sockErrReadRefuse:
                if self._connectedAddr:
                    self.protocol.connectionRefused()
                return
            raise
        if self.addressFamily == socket.AF_INET6:
            addr = addr[:2]
        try:
            self.protocol.datagramReceived(data, addr)
        except BaseException:
            log.err()

    def connectionLost(self, reason: Any = None) -> None:
        """``udp.Port.connectionLost`` without its "(UDP Port N Closed)" line: a call
        closes four ports, and those lines cost a tenth of the server's time per call."""
        self._realPortNumber = None
        self.maxThroughput = -1
        base.BasePort.connectionLost(self, reason)
        self.protocol.doStop()
        self.socket.close()
        del self.socket
        del self.fileno


def listen_rtp(
    reactor: Any, port: int, protocol: DatagramProtocol, interface: str
) -> IListeningPort:
    """Listen on ``port`` with :class:`RTPPort` on a level-triggered POSIX reactor,
    else with the reactor's own ``listenUDP``."""
    if isinstance(reactor, PosixReactorBase):
        p = RTPPort(port, protocol, interface, MAX_DATAGRAM, reactor)
        p.startListening()
        return p
    return reactor.listenUDP(port, protocol, interface=interface, maxPacketSize=MAX_DATAGRAM)
