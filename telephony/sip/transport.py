"""The Twisted edge of the SIP stack: UDP and TCP transports.

Each delivers the bytes it reads, with a :class:`~telephony.sip.peer.Peer`, to the
:class:`~telephony.sip.stack.SipStack`, and implements
:class:`~telephony.sip.peer.ITransport` for what the stack sends.  On TCP, responses
go back on the connection the request used.  A new transport (TLS, WebSocket) only
has to do the same; nothing above this module changes.  This is the one module of
the SIP stack that touches sockets and the reactor.
"""

from __future__ import annotations

import itertools
import socket
from typing import Any

from twisted.internet import endpoints, protocol
from twisted.internet.error import InvalidAddressError
from twisted.internet.interfaces import IAddress, IDelayedCall, IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from telephony.sip.errors import SipParseError
from telephony.sip.message import StreamParser
from telephony.sip.peer import ITransport, Peer
from telephony.sip.stack import SipStack

__all__ = (
    "CONNECT_TIMEOUT",
    "MESSAGE_READ_TIMEOUT",
    "StreamProtocol",
    "StreamTransportFactory",
    "UDPTransport",
)

log = Logger()


#: Kernel buffer asked for the SIP UDP socket, each way, in bytes.  The default
#: (about 200 KiB, which the kernel charges at some 2 KiB per small datagram) holds
#: only about a hundred requests: a pause of a few tens of milliseconds at a few
#: thousand requests a second overflowed it, and each dropped REGISTER cost its
#: phone a 500 ms retransmission (measured: 262 drops in 20,000 logins at 2,000/s).
#: The kernel caps it at ``net.core.rmem_max`` / ``wmem_max``.
UDP_SOCKET_BUFFER = 4 * 1024 * 1024
#: Most datagrams queued before they are sent without waiting for the iteration's end.
UDP_BURST = 64
#: Most peer addresses remembered as valid (then the set starts again).
MAX_CHECKED_ADDRESSES = 65_536
#: Seconds a TCP connection we open to a peer (a gateway) may take to be made.
CONNECT_TIMEOUT = 5.0
#: Messages held for one peer while our connection to it is being made [ours]: a
#: request and its retransmissions, and a few more; past that they are dropped.
MAX_WAITING_MESSAGES = 64
#: Seconds a TCP peer has to send a whole message once its first byte arrived, and
#: to send its first message once it connected (Kamailio's ``tcp_msg_read_timeout``
#: default).  A connection that misses it is closed: a peer that trickles a message
#: (or never sends one) cannot hold a connection and its buffer for ever.
MESSAGE_READ_TIMEOUT = 20.0
#: TCP connections accepted from one IP address at once [ours]: a few hundred phones
#: behind one NAT fit; one host cannot take every connection the server accepts
#: (``StreamTransportFactory.max_connections``).
MAX_CONNECTIONS_PER_SOURCE = 256


@implementer(ITransport)
class UDPTransport(protocol.DatagramProtocol):
    """SIP over UDP: every datagram to the stack; sends go where the peer says."""

    def __init__(self, stack: SipStack) -> None:
        self.stack = stack
        #: The receive buffer the kernel granted (bytes, as it reports it), once listening.
        self.receive_buffer = 0
        self._outbox: list[tuple[bytes, Peer]] | None = None
        #: Hosts Port.write has accepted (IP addresses), sent to directly since.
        self._addresses: set[str] = set()

    def startProtocol(self) -> None:
        """Ask for :data:`UDP_SOCKET_BUFFER` each way; keep what was granted."""
        sock = getattr(self.transport, "socket", None)
        if sock is None:
            return
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, UDP_SOCKET_BUFFER)
            except OSError as exc:
                log.warn("SIP UDP socket buffer not enlarged: {error}", error=exc)
        self.receive_buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.stack.datagram_received(datagram, Peer("udp", addr[0], addr[1]))

    def send(self, data: bytes, peer: Peer) -> None:
        """Queue a datagram; what is queued leaves at the start of the next reactor
        iteration (or at :data:`UDP_BURST` datagrams), all together.

        Requests arrive in batches (one readiness event, many datagrams; a commit of
        many bindings) and their answers then leave back to back, so a peer process
        is woken once per burst instead of once per datagram: on the benchmark's VM
        a send to a sleeping reader costs the sender about 12 µs more.  The delay is
        at most the rest of the current iteration.
        """
        if self.transport is None:
            return
        outbox = self._outbox
        if outbox is None:
            outbox = self._outbox = []
            self.stack.clock.callLater(0, self._flush)
        outbox.append((data, peer))
        if len(outbox) >= UDP_BURST:
            self._flush()

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, None
        for data, peer in outbox or ():
            self._write(data, peer)

    def _write(self, data: bytes, peer: Peer) -> None:
        transport = self.transport
        if transport is None:
            return
        host = peer.host
        sock = getattr(transport, "socket", None)
        try:
            if sock is None or host not in self._addresses:
                # Port.write checks that the host is an IP address (a name would be
                # resolved, blocking, by sendto); each host is checked once.
                transport.write(data, (host, peer.port))
                if sock is not None:
                    if len(self._addresses) >= MAX_CHECKED_ADDRESSES:
                        self._addresses.clear()
                    self._addresses.add(host)
            else:
                sock.sendto(data, (host, peer.port))
        except (OSError, InvalidAddressError) as exc:
            log.warn(
                "UDP send to {host}:{port} failed: {error}",
                host=peer.host,
                port=peer.port,
                error=exc,
            )


@implementer(IPushProducer)
class StreamProtocol(protocol.Protocol):
    """One TCP connection: frames messages by Content-Length, hands them to the stack.

    A message must arrive whole within :data:`MESSAGE_READ_TIMEOUT` of its first
    byte, and a connection a peer opened must bring its first message as fast, else
    the connection is aborted.  The protocol is its transport's producer: when the
    peer does not read our answers and they pile up past the transport's buffer, we
    stop reading its requests (so it cannot make us buffer more) until it reads.
    """

    def __init__(self, factory: StreamTransportFactory, *, accepted: bool = False) -> None:
        self.factory = factory
        self.parser = StreamParser()
        self.peer: Peer | None = None
        #: Opened by the peer (the first-message deadline applies), not by us.
        self.accepted = accepted
        self._deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:
        address: IAddress = self.transport.getPeer()  # type: ignore[union-attr]
        self.peer = Peer("tcp", getattr(address, "host", ""), getattr(address, "port", 0), self)
        self.factory.connection_made(self)
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        if self.accepted:
            self._arm()

    def dataReceived(self, data: bytes) -> None:
        if self.peer is None:
            return
        completed = False
        for item in self.parser.feed(data):
            completed = True
            if isinstance(item, SipParseError):
                self.factory.stack._malformed(item, self.peer)
            else:
                self.factory.stack.message_received(item, self.peer)
        if self.parser.failed:
            self._disarm()
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        if completed:
            self._disarm()  # a message arrived in time; the next one starts now
        if self.parser.buffered and self._deadline is None:
            self._arm()

    def _arm(self) -> None:
        self._deadline = self.factory.stack.clock.callLater(
            MESSAGE_READ_TIMEOUT, self._read_timed_out
        )

    def _disarm(self) -> None:
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def _read_timed_out(self) -> None:
        self._deadline = None
        self.factory.read_timeouts += 1
        peer = self.peer
        log.info(
            "Closed the TCP connection from {host}:{port}: no complete message in {t:g} s"
            " ({n} bytes buffered)",
            host=peer.host if peer else "?",
            port=peer.port if peer else 0,
            t=MESSAGE_READ_TIMEOUT,
            n=self.parser.buffered,
        )
        self.transport.abortConnection()  # type: ignore[union-attr]

    def pauseProducing(self) -> None:
        """Our answers fill the transport's buffer: stop reading the peer's requests
        (and give it :data:`MESSAGE_READ_TIMEOUT` to start reading again)."""
        self.transport.pauseProducing()  # type: ignore[union-attr]
        if self._deadline is None:
            self._arm()

    def resumeProducing(self) -> None:
        """The peer read our answers: read its requests again."""
        self.transport.resumeProducing()  # type: ignore[union-attr]
        if not self.parser.buffered:
            self._disarm()

    def stopProducing(self) -> None:
        """The connection is going away (``connectionLost`` follows)."""

    def connectionLost(self, reason: Any = None) -> None:
        # Twisted sets ``connected`` in makeConnection; nothing resets it on loss.
        self.connected = False
        self._disarm()
        self.factory.connection_lost(self)

    def write(self, data: bytes) -> None:
        """Write bytes on this connection."""
        self.transport.write(data)  # type: ignore[union-attr]


@implementer(ITransport)
class StreamTransportFactory(protocol.ServerFactory):
    """SIP over TCP: accepts connections and keeps them, by peer address, for reuse.

    A request to a phone registered over TCP goes back on the connection it
    registered from (found by its address, RFC 5626 style), while it stays open.
    """

    def __init__(self, stack: SipStack, max_connections: int = 10_000, reactor: Any = None) -> None:
        self.stack = stack
        self.max_connections = max_connections
        #: Makes connections to peers we have none with (a TCP gateway); None: we
        #: only answer on the connections peers open.
        self.reactor = reactor
        self.connections: dict[tuple[str, int], StreamProtocol] = {}
        #: Open connections per peer IP address (see :data:`MAX_CONNECTIONS_PER_SOURCE`).
        self.per_source: dict[str, int] = {}
        #: Connections closed for a message (or a first message) not read in time.
        self.read_timeouts = 0
        #: Connections refused: too many open in all, or from one address.
        self.refused = 0
        #: Messages waiting for a connection being made, by peer address.
        self._connecting: dict[tuple[str, int], list[bytes]] = {}
        self._ids = itertools.count()

    def buildProtocol(self, addr: IAddress) -> StreamProtocol | None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self.refused += 1
            log.warn("Refused a TCP connection: {n} already open", n=len(self.connections))
            return None
        host = getattr(addr, "host", "")
        if self.per_source.get(host, 0) >= MAX_CONNECTIONS_PER_SOURCE:
            self.refused += 1
            log.info(
                "Refused a TCP connection from {host}: {n} already open from it",
                host=host,
                n=MAX_CONNECTIONS_PER_SOURCE,
            )
            return None
        return StreamProtocol(self, accepted=True)

    def connection_made(self, proto: StreamProtocol) -> None:
        if proto.peer is not None:
            self.connections[(proto.peer.host, proto.peer.port)] = proto
            self.per_source[proto.peer.host] = self.per_source.get(proto.peer.host, 0) + 1

    def connection_lost(self, proto: StreamProtocol) -> None:
        if proto.peer is None:
            return
        host = proto.peer.host
        left = self.per_source.get(host, 0) - 1
        if left > 0:
            self.per_source[host] = left
        else:
            self.per_source.pop(host, None)
        if self.connections.get((host, proto.peer.port)) is proto:
            del self.connections[(host, proto.peer.port)]

    def send(self, data: bytes, peer: Peer) -> None:
        proto = (
            peer.connection
            if peer.connection is not None
            else self.connections.get((peer.host, peer.port))
        )
        if proto is None or not proto.connected:
            self._connect(peer, data)
            return
        proto.write(data)

    def _connect(self, peer: Peer, data: bytes) -> None:
        """Open a connection to *peer* (RFC 3261 §18.1.1) and send *data* on it; later
        messages for it wait until it is made (at most :data:`MAX_WAITING_MESSAGES`)."""
        key = (peer.host, peer.port)
        waiting = self._connecting.get(key)
        if waiting is not None:
            if len(waiting) < MAX_WAITING_MESSAGES:
                waiting.append(data)
            return
        if self.reactor is None or len(self.connections) >= self.max_connections:
            log.warn(
                "No open TCP connection to {host}:{port}; message dropped",
                host=peer.host,
                port=peer.port,
            )
            return
        self._connecting[key] = [data]
        ipv6 = ":" in peer.host
        endpoint_class = endpoints.TCP6ClientEndpoint if ipv6 else endpoints.TCP4ClientEndpoint
        endpoint = endpoint_class(self.reactor, peer.host, peer.port, timeout=CONNECT_TIMEOUT)
        d = endpoints.connectProtocol(endpoint, StreamProtocol(self))
        d.addCallbacks(
            self._connected, self._not_connected, callbackArgs=(key,), errbackArgs=(key,)
        )

    def _connected(self, proto: StreamProtocol, key: tuple[str, int]) -> None:
        for data in self._connecting.pop(key, []):
            proto.write(data)

    def _not_connected(self, failure: Any, key: tuple[str, int]) -> None:
        dropped = self._connecting.pop(key, [])
        log.warn(
            "Cannot connect to {host}:{port} over TCP ({why}); {n} message(s) dropped",
            host=key[0],
            port=key[1],
            why=failure.getErrorMessage(),
            n=len(dropped),
        )
