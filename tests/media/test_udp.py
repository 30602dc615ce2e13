"""The RTP ports' shared poller, on the real reactor and real loopback sockets."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import deferLater

from media.udp import RTPPoller, RTPPort, _poller_for, listen_rtp

pytestmark = pytest.mark.skipif(not hasattr(__import__("select"), "epoll"), reason="Linux only")


class _Counting(DatagramProtocol):
    def __init__(self, fail: bool = False) -> None:
        self.received: list[bytes] = []
        self.fail = fail

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.received.append(datagram)
        if self.fail:
            raise RuntimeError("a protocol bug")


def _poller() -> RTPPoller:
    poller = _poller_for(reactor)
    assert poller is not None
    return poller


@pytest_twisted.ensureDeferred
async def test_one_reactor_reader_serves_every_rtp_port() -> None:
    protocols = [_Counting() for _ in range(3)]
    ports = [listen_rtp(reactor, 0, p, "127.0.0.1") for p in protocols]
    poller = _poller()
    try:
        assert all(isinstance(p, RTPPort) for p in ports)
        rtp_readers = [r for r in reactor.getReaders() if isinstance(r, (RTPPort, RTPPoller))]
        assert rtp_readers == [poller]  # the ports are not the reactor's readers
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sender:
            for round_ in range(4):
                for port in ports:
                    sender.sendto(b"x%d" % round_, ("127.0.0.1", port.getHost().port))
            for _ in range(100):
                if all(len(p.received) == 4 for p in protocols):
                    break
                await deferLater(reactor, 0.01, lambda: None)
        assert [p.received for p in protocols] == [[b"x0", b"x1", b"x2", b"x3"]] * 3
    finally:
        for port in ports:
            await port.stopListening()
    assert poller not in reactor.getReaders()  # the last port took the poller out


@pytest_twisted.ensureDeferred
async def test_a_protocol_error_is_logged_and_the_port_keeps_reading() -> None:
    bad, good = _Counting(fail=True), _Counting()
    ports = [listen_rtp(reactor, 0, p, "127.0.0.1") for p in (bad, good)]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for _ in range(2):
                for port in ports:
                    sender.sendto(b"y", ("127.0.0.1", port.getHost().port))
            for _ in range(100):
                if len(good.received) == 2 and len(bad.received) == 2:
                    break
                await deferLater(reactor, 0.01, lambda: None)
        assert (len(bad.received), len(good.received)) == (2, 2)
    finally:
        for port in ports:
            await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_failing_port_is_dropped_without_stopping_the_others() -> None:
    """A socket error the port cannot handle: that port is closed, the rest go on."""
    victim, other = _Counting(), _Counting()
    ports = [listen_rtp(reactor, 0, p, "127.0.0.1") for p in (victim, other)]
    poller = _poller()
    broken = ports[0]
    assert isinstance(broken, RTPPort)
    victim_port = broken.getHost().port

    def recvfrom(_size: int) -> Any:
        raise OSError(9, "simulated EBADF")

    real_socket = broken.socket
    fake = {"recvfrom": staticmethod(recvfrom), "close": real_socket.close}
    broken.socket = type("S", (), fake)()
    lost: Deferred[None] = Deferred()
    broken.protocol.doStop = lambda: lost.callback(None)  # type: ignore[method-assign]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"z", ("127.0.0.1", victim_port))
            await lost
            sender.sendto(b"z", ("127.0.0.1", ports[1].getHost().port))
            for _ in range(100):
                if other.received:
                    break
                await deferLater(reactor, 0.01, lambda: None)
        assert other.received == [b"z"]
        assert broken.poller_fd is None
        assert poller in reactor.getReaders()
    finally:
        await ports[1].stopListening()


def test_sends_queued_during_a_poll_leave_after_every_read() -> None:
    """What the protocols send while the poller reads goes out in one burst at the
    end, in order; a failed send is counted on its session's counters."""
    events: list[str] = []

    class Counters:
        sent = 0
        send_errors = 0

    counters = Counters()
    poller = RTPPoller(reactor)

    class Port:
        def __init__(self, name: str) -> None:
            self.name = name

        def doRead(self) -> None:
            events.append(f"read {self.name}")
            assert poller.outbox is not None
            poller.outbox.append((send, self.name.encode(), ("127.0.0.1", 9), counters))

    def send(data: bytes, address: tuple[str, int]) -> None:
        events.append(f"send {data.decode()}")
        if data == b"b":
            raise OSError("buffer full")

    ports = {10: Port("a"), 11: Port("b"), 12: Port("c")}

    class ReadyEpoll:
        def poll(self, timeout: float, most: int) -> list[tuple[int, int]]:
            return [(fd, 1) for fd in ports]

    poller._epoll.close()
    poller._ports = ports  # type: ignore[assignment]
    poller._epoll = ReadyEpoll()  # type: ignore[assignment]
    poller.doRead()
    assert events == ["read a", "read b", "read c", "send a", "send b", "send c"]
    assert (counters.sent, counters.send_errors) == (2, 1)
    assert poller.outbox is None  # sessions send at once outside a poll
