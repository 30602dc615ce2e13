"""A UDP port tuned for RTP: one datagram per readiness event.

Twisted's ``udp.Port.doRead`` reads until the socket is empty, which for a
voice stream (one packet every 20 ms) means two ``recvfrom`` calls per packet,
the second failing with ``EAGAIN`` and raising an exception.  The epoll and
poll reactors are level-triggered: a socket with more datagrams queued is
reported again on the next poll, so reading one datagram per event loses
nothing and saves that syscall and exception on every packet (about 12 % of
a core at 1,000 streams, see ``docs/benchmarks.md``).

On Linux all RTP ports of a reactor also share one :class:`RTPPoller`: an
inner ``epoll`` that the reactor watches as a single reader.  The reactor's
own dispatch costs several microseconds per ready socket (a logging context
pushed and popped, ``logPrefix``, the selectable's bookkeeping); a server
relaying tens of thousands of packets a second pays it on every packet.  The
poller drains every ready RTP socket in one loop per reactor wake-up instead.
"""

from __future__ import annotations

import contextlib
import select
import socket
import weakref
from typing import Any

from twisted.internet import base, error, udp
from twisted.internet.interfaces import IListeningPort, IReadDescriptor
from twisted.internet.posixbase import PosixReactorBase
from twisted.internet.protocol import DatagramProtocol
from twisted.python import failure, log
from zope.interface import implementer

__all__ = ("MAX_DATAGRAM", "RTPPoller", "RTPPort", "listen_rtp")

#: Receive buffer per datagram, in bytes: larger datagrams are truncated to
#: this and then rejected as oversized RTP.
MAX_DATAGRAM = 2048
#: Most ready sockets served per reactor wake-up; the rest are reported again
#: on the next one (epoll is level-triggered), so other work is not starved.
MAX_EVENTS_PER_WAKEUP = 512


@implementer(IReadDescriptor)
class RTPPoller:
    """One reactor reader standing for many RTP ports.

    An inner level-triggered ``epoll`` watches the ports' sockets; the reactor
    watches the inner epoll's descriptor, which is readable while any port has
    a datagram.  :meth:`doRead` then reads one datagram from each ready port.
    The poller joins the reactor with its first port and leaves with its last.
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        #: While :meth:`doRead` runs: the datagrams the ports' protocols send,
        #: sent together when every ready port has been read (see :meth:`doRead`).
        self.outbox: list[tuple[Any, bytes, Any, Any]] | None = None
        self._epoll = select.epoll()
        self._ports: dict[int, RTPPort] = {}
        self._reading = False

    def fileno(self) -> int:
        """The inner epoll's descriptor, which the reactor polls."""
        return self._epoll.fileno()

    def logPrefix(self) -> str:
        """For the reactor's log context."""
        return "RTPPoller"

    def add(self, port: RTPPort) -> None:
        """Watch ``port`` (idempotent)."""
        fd = port.fileno()
        if fd in self._ports:
            return
        self._epoll.register(fd, select.EPOLLIN)
        self._ports[fd] = port
        port.poller_fd = fd
        port.poller = self
        if not self._reading:
            self._reading = True
            self.reactor.addReader(self)

    def remove(self, port: RTPPort) -> None:
        """Stop watching ``port`` (idempotent)."""
        fd = port.poller_fd
        if fd is None or self._ports.get(fd) is not port:
            return
        port.poller_fd = None
        del self._ports[fd]
        with contextlib.suppress(OSError, ValueError):  # already closed
            self._epoll.unregister(fd)
        if not self._ports and self._reading:
            self._reading = False
            self.reactor.removeReader(self)

    def doRead(self) -> None:
        """Read one datagram from every ready port; a failing port is dropped, not us.

        What the protocols send meanwhile (a bridge relaying what it read) is
        queued in :attr:`outbox` and sent in one burst after the reads: a peer
        process receiving many of those datagrams is woken once per burst rather
        than once per datagram, and a wake-up costs the sender more than the
        send itself (about 12 µs against 4 on the benchmark's VM).  A burst is
        at most one poll's worth of packets, so the delay it adds is the time
        to read them.
        """
        ports = self._ports
        outbox: list[tuple[Any, bytes, Any, Any]] = []
        self.outbox = outbox
        try:
            for fd, _events in self._epoll.poll(0, MAX_EVENTS_PER_WAKEUP):
                port = ports.get(fd)
                if port is None:
                    continue
                try:
                    port.doRead()
                except BaseException:
                    log.err(None, f"RTP port {fd} failed; it stops reading")
                    self.remove(port)
                    port.connectionLost(failure.Failure())
        finally:
            self.outbox = None
            for sendto, datagram, address, counters in outbox:
                try:
                    sendto(datagram, address)
                except OSError:
                    counters.send_errors += 1  # buffer full, unreachable: the frame is lost
                else:
                    counters.sent += 1

    def connectionLost(self, reason: failure.Failure) -> None:
        """The reactor is shutting down: the ports go with it."""
        self._reading = False
        for port in list(self._ports.values()):
            self.remove(port)
            port.connectionLost(reason)


_pollers: weakref.WeakKeyDictionary[Any, RTPPoller] = weakref.WeakKeyDictionary()


def _poller_for(reactor: Any) -> RTPPoller | None:
    """The reactor's shared poller; ``None`` where there is no epoll (not Linux)."""
    if not hasattr(select, "epoll"):
        return None
    poller = _pollers.get(reactor)
    if poller is None:
        poller = _pollers[reactor] = RTPPoller(reactor)
    return poller


class RTPPort(udp.Port):
    """``udp.Port`` reading at most one datagram each time the socket is readable.

    It also closes its socket when binding fails (``udp.Port`` leaves it to the
    garbage collector, with a ResourceWarning, each time a port of the range
    is taken) and does not log a line per port opened.  It reads through the
    reactor's :class:`RTPPoller` where there is one.
    """

    #: The descriptor under which the poller watches this port, and the poller.
    poller_fd: int | None = None
    poller: RTPPoller | None = None

    def startReading(self) -> None:
        """Join the reactor's poller (or the reactor itself, without epoll)."""
        poller = _poller_for(self.reactor)
        if poller is None:
            super().startReading()
        else:
            poller.add(self)

    def stopReading(self) -> None:
        """Leave the poller that watches this port (or the reactor)."""
        poller = self.poller
        if poller is None:
            super().stopReading()
        else:
            poller.remove(self)

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
        stopped = self.__dict__.pop("d", None)  # stopListening()'s Deferred
        if stopped is not None:
            stopped.callback(None)


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
