"""Hostile peers against the SIP stack, with time on a ``task.Clock``: floods from one
source, TCP connections that never finish a message.  What is kept for them must stay
bounded, and the state they leave must go away on time.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from telephony.sip.core import SipCore
from telephony.sip.guard import SourceGuard, parse_networks
from telephony.sip.message import Request, StreamParser, parse_datagram
from telephony.sip.peer import Peer
from telephony.sip.stack import ServerTransactionHandle, SipStack
from telephony.sip.transport import (
    MAX_CONNECTIONS_PER_SOURCE,
    MESSAGE_READ_TIMEOUT,
    StreamProtocol,
    StreamTransportFactory,
)
from tests.sip.helpers import RecordingTransport, request_bytes

FLOODER = Peer("udp", "198.51.100.7", 5060)
OTHER = Peer("udp", "192.0.2.10", 5060)


class _NoRegistrar:
    def handle(self, request: Request, txn: ServerTransactionHandle) -> None:
        raise AssertionError("no REGISTER in these tests")


def _core(clock: Clock) -> tuple[SipCore, SipStack, RecordingTransport]:
    core = SipCore(
        registrar=_NoRegistrar(),  # type: ignore[arg-type]
        guard=SourceGuard(exempt=parse_networks("")),
        blocked_user_agents="",
    )
    stack = SipStack(core, clock=clock)
    transport = RecordingTransport(clock)
    stack.transports["udp"] = transport
    return core, stack, transport


def test_a_banned_flood_leaves_no_transaction_behind(clock: Clock) -> None:
    """10,000 OPTIONS from one address: the first 30 are answered, then the source is
    banned and dropped in silence; a dropped request must not leave its server
    transaction waiting forever for an answer that never comes (a non-INVITE server
    transaction has no timer before its answer, RFC 3261 Figure 8)."""
    core, stack, transport = _core(clock)
    for i in range(10_000):
        data = request_bytes("OPTIONS", f"z9hG4bKflood{i}", call_id=f"flood-{i}")
        stack.datagram_received(data, FLOODER)
    assert len(transport.sent) == 30
    assert core.counters["dropped"] == 10_000 - 30
    assert stack.transaction_count <= 30  # the 30 answers, kept for Timer J
    # Someone else is served meanwhile.
    stack.datagram_received(request_bytes("OPTIONS", "z9hG4bKok", call_id="ok"), OTHER)
    assert parse_datagram(transport.sent[-1][1]).call_id == "ok"
    clock.advance(32)
    assert stack.transaction_count == 0
    stack.stop()


def test_a_banned_invite_flood_leaves_no_transaction_behind(clock: Clock) -> None:
    core, stack, _ = _core(clock)
    core.calls = lambda request, txn: txn.respond(486)
    for i in range(200):
        data = request_bytes("INVITE", f"z9hG4bKinv{i}", call_id=f"inv-{i}")
        stack.datagram_received(data, FLOODER)
    assert core.counters["dropped"] == 200 - 30
    clock.advance(64)  # Timer H for the 30 answered ones (no ACK came)
    assert stack.transaction_count == 0
    stack.stop()


# -- TCP peers that never finish a message -------------------------------------------------


def _tcp(clock: Clock) -> tuple[SipStack, StreamTransportFactory, RecordingTransport]:
    _, stack, udp = _core(clock)
    factory = StreamTransportFactory(stack)
    stack.transports["tcp"] = factory
    return stack, factory, udp


def _accept(
    factory: StreamTransportFactory, host: str = "198.51.100.7", port: int = 40000
) -> tuple[StreamProtocol, StringTransport]:
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
    proto = factory.buildProtocol(transport.getPeer())
    assert proto is not None
    proto.makeConnection(transport)
    return proto, transport


def _close_all(stack: SipStack, factory: StreamTransportFactory) -> None:
    for proto in list(factory.connections.values()):
        proto.connectionLost()
    stack.stop()


def _tcp_options(call_id: str) -> bytes:
    return request_bytes("OPTIONS", f"z9hG4bK{call_id}", call_id=call_id, transport="TCP")


def test_a_connection_that_never_sends_is_closed_after_the_read_timeout(clock: Clock) -> None:
    stack, factory, _ = _tcp(clock)
    _, transport = _accept(factory)
    clock.advance(MESSAGE_READ_TIMEOUT - 0.001)
    assert not transport.disconnecting
    clock.advance(0.001)
    assert transport.disconnected, "aborted, not closed politely"
    assert factory.read_timeouts == 1
    _close_all(stack, factory)


def test_a_message_trickled_a_byte_a_second_is_cut_off(clock: Clock) -> None:
    """Slowloris: every byte keeps the connection busy, none completes a message.
    The deadline runs from the message's first byte, not from the last one."""
    stack, factory, _ = _tcp(clock)
    proto, transport = _accept(factory)
    data = _tcp_options("slow")
    for i in range(len(data)):
        if transport.disconnecting:
            break
        proto.dataReceived(data[i : i + 1])
        clock.advance(1)
    assert transport.disconnected
    assert i == MESSAGE_READ_TIMEOUT  # bytes 0..19 came, then the deadline struck
    assert transport.value() == b"", "no answer: the request never completed"
    _close_all(stack, factory)


def test_a_busy_connection_is_never_cut_while_messages_complete(clock: Clock) -> None:
    """Messages arriving in pieces that straddle them, for far longer than the timeout:
    each completed message restarts the deadline."""
    stack, factory, _ = _tcp(clock)
    proto, transport = _accept(factory)
    stream = b"".join(_tcp_options(f"busy-{i}") for i in range(100))
    step = 97  # never on a message boundary
    for start in range(0, len(stream), step):
        proto.dataReceived(stream[start : start + step])
        clock.advance(1)
    assert not transport.disconnecting
    answers = StreamParser().feed(transport.value())
    assert [a.call_id for a in answers] == [f"busy-{i}" for i in range(100)]
    assert factory.read_timeouts == 0
    # Idle between messages, after the last one: nothing pending, nothing cut.
    clock.advance(10 * MESSAGE_READ_TIMEOUT)
    assert not transport.disconnecting
    _close_all(stack, factory)


def test_connections_from_one_address_are_capped(clock: Clock) -> None:
    stack, factory, _ = _tcp(clock)
    opened = [_accept(factory, port=40000 + i)[0] for i in range(MAX_CONNECTIONS_PER_SOURCE)]
    refused = StringTransport(peerAddress=IPv4Address("TCP", "198.51.100.7", 39999))
    assert factory.buildProtocol(refused.getPeer()) is None
    assert factory.refused == 1
    _accept(factory, host="192.0.2.10")  # another address is served
    opened[0].connectionLost()
    _accept(factory, port=39999)  # room again
    assert factory.per_source == {"198.51.100.7": MAX_CONNECTIONS_PER_SOURCE, "192.0.2.10": 1}
    _close_all(stack, factory)
    assert factory.per_source == {}


def test_a_peer_that_does_not_read_our_answers_is_not_read_either(clock: Clock) -> None:
    """When the transport's write buffer is full it pauses its producer, us: we stop
    reading that peer's requests; if it does not read within the timeout, it goes."""
    stack, factory, _ = _tcp(clock)
    proto, transport = _accept(factory)
    proto.dataReceived(_tcp_options("first"))
    assert transport.producer is proto
    proto.pauseProducing()
    assert transport.producerState == "paused"
    clock.advance(MESSAGE_READ_TIMEOUT / 2)
    proto.resumeProducing()  # it read: all is well again
    assert transport.producerState == "producing"
    clock.advance(MESSAGE_READ_TIMEOUT)
    assert not transport.disconnecting
    proto.pauseProducing()
    clock.advance(MESSAGE_READ_TIMEOUT)
    assert transport.disconnected
    _close_all(stack, factory)


def test_an_empty_first_via_line_raises_nothing(clock: Clock) -> None:
    """Found by fuzzing (tools/fuzz.py sip-server): a first Via line holding only ","
    with the top Via on the next line made the Via stamping of the 400 raise
    IndexError out of datagram_received, to the reactor."""
    _, stack, _ = _core(clock)
    data = b"REGISTEV ip:example.test SIP/6.0\r\nVia:,\r\nVia: SIP/2.0/UDP 192.0.2"
    stack.datagram_received(data, OTHER)  # must not raise
    assert stack.counters["malformed"] == 1
    stack.stop()
