"""The SIP UDP transport on a real socket: kernel buffers, and sends leaving in bursts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest


def test_sip_udp_socket_gets_a_large_receive_buffer(tmp_path: Path) -> None:
    """The listening SIP socket asks the kernel for a few MiB each way (bursts of
    REGISTERs overflowed the default ~200 KiB), and the log says what it got."""
    import socket

    from twisted.internet import reactor

    from telephony.sip.transport import UDP_SOCKET_BUFFER, UDPTransport

    transport = UDPTransport(stack=None)  # type: ignore[arg-type]
    port = reactor.listenUDP(0, transport, interface="127.0.0.1")
    try:
        granted = transport.receive_buffer
        default = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with default:
            before = default.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
        # Linux reports twice what was set (its bookkeeping), capped at rmem_max.
        assert granted == 2 * min(UDP_SOCKET_BUFFER, rmem_max)
        assert granted > before or rmem_max <= before // 2
    finally:
        port.stopListening()


def test_sip_udp_sends_leave_together_at_the_end_of_the_iteration() -> None:
    """Datagrams sent while requests are handled are written at the next reactor
    iteration (Clock: advance(0)), in order, or as soon as a burst is full."""
    from twisted.internet.task import Clock

    from telephony.sip.peer import Peer
    from telephony.sip.transport import UDP_BURST, UDPTransport

    class Stack:
        clock = Clock()

    class Port:
        def __init__(self) -> None:
            self.written: list[tuple[bytes, tuple[str, int]]] = []

        def write(self, data: bytes, address: tuple[str, int]) -> None:
            self.written.append((data, address))

    transport = UDPTransport(stack=Stack())  # type: ignore[arg-type]
    port = Port()
    transport.transport = port  # type: ignore[assignment]
    peer = Peer("udp", "127.0.0.1", 5070)
    transport.send(b"one", peer)
    transport.send(b"two", peer)
    assert port.written == []
    Stack.clock.advance(0)
    assert [d for d, _ in port.written] == [b"one", b"two"]
    assert {a for _, a in port.written} == {("127.0.0.1", 5070)}
    port.written.clear()
    for i in range(UDP_BURST):
        transport.send(b"%d" % i, peer)
    assert len(port.written) == UDP_BURST  # a full burst does not wait
    Stack.clock.advance(0)
    assert len(port.written) == UDP_BURST


def test_sip_udp_sends_check_each_host_once_and_refuse_names() -> None:
    """The first send to a host goes through Port.write (which refuses a host name,
    rather than resolving it); later ones go straight to the socket."""
    from twisted.internet import reactor

    from telephony.sip.peer import Peer
    from telephony.sip.transport import UDPTransport

    class Stack:
        from twisted.internet.task import Clock

        clock = Clock()

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2)
    transport = UDPTransport(stack=Stack())  # type: ignore[arg-type]
    port = reactor.listenUDP(0, transport, interface="127.0.0.1")
    try:
        where = receiver.getsockname()
        for text in (b"first", b"second"):
            transport.send(text, Peer("udp", where[0], where[1]))
        transport.send(b"lost", Peer("udp", "localhost", where[1]))  # a name: refused
        Stack.clock.advance(0)
        assert receiver.recv(100) == b"first"
        assert receiver.recv(100) == b"second"
        receiver.settimeout(0.2)
        with pytest.raises(TimeoutError):
            receiver.recv(100)
        assert transport._addresses == {"127.0.0.1"}
    finally:
        port.stopListening()
        receiver.close()
