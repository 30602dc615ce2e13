"""Hostile peers against the SIP stack, with time on a ``task.Clock``: floods from one
source, TCP connections that never finish a message.  What is kept for them must stay
bounded, and the state they leave must go away on time.
"""

from __future__ import annotations

from twisted.internet.task import Clock

from telephony.sip.guard import SourceGuard, parse_networks
from telephony.sip.message import Request, parse_datagram
from telephony.sip.transport import Peer, ServerTransactionHandle, SipStack
from telephony.sipcore import SipCore
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
        clock=clock,
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
