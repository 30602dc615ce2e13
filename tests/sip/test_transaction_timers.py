"""Transaction state machines driven through the stack on a ``task.Clock``, to the ms."""

from __future__ import annotations

import pytest
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from telephony.sip.headers import Headers
from telephony.sip.ids import new_branch
from telephony.sip.message import Request, Response, parse_datagram
from telephony.sip.peer import Peer
from telephony.sip.uri import parse_uri
from tests.sip.helpers import make_stack, request_bytes

PHONE = Peer("udp", "10.0.0.1", 5060)
PHONE_TCP = Peer("tcp", "10.0.0.1", 5060)


def _outgoing(method: str) -> Request:
    headers = Headers()
    headers.add("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch={new_branch()};rport")
    headers.add("Max-Forwards", "70")
    headers.add("From", "<sip:server@example.test>;tag=s1")
    headers.add("To", "<sip:bob@10.0.0.1>")
    headers.add("Call-ID", "out-1")
    headers.add("CSeq", f"1 {method}")
    return Request(method, parse_uri("sip:bob@10.0.0.1:5060"), headers)


def _reply(request: Request, status: int, to_tag: str = "far") -> bytes:
    return Response.for_request(request, status, to_tag=to_tag).to_bytes()


def _advance_until(clock: Clock, end: float) -> None:
    """Step the clock from one pending call to the next, exactly, up to *end*."""
    while True:
        pending = [c.getTime() for c in clock.getDelayedCalls()]
        nxt = min(pending, default=end)
        if nxt >= end:
            clock.advance(max(0.0, end - clock.seconds()))
            return
        clock.advance(nxt - clock.seconds())


def test_client_invite_retransmits_on_timer_a_and_gives_up_at_b(clock: Clock) -> None:
    stack, transport, _ = make_stack(clock)
    d = stack.send_request(_outgoing("INVITE"), PHONE)
    _advance_until(clock, 40)
    assert transport.times() == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    result = d.result
    assert (result.status, result.reason) == (408, "Request Timeout")
    assert stack.transaction_count == 0


def test_cancelling_a_client_invite_abandons_it(clock: Clock) -> None:
    """What failover does to a gateway that never answered: no more retransmissions,
    nothing kept, and a late answer is a stray."""
    stack, transport, _ = make_stack(clock)
    request = _outgoing("INVITE")
    d = stack.send_request(request, PHONE)
    _advance_until(clock, 4)
    d.cancel()
    failures: list[Failure] = []
    d.addErrback(failures.append)
    _advance_until(clock, 40)
    assert transport.times() == [0.0, 0.5, 1.5, 3.5]
    assert stack.transaction_count == 0
    assert clock.getDelayedCalls() == []
    stack.datagram_received(_reply(request, 200), PHONE)
    assert [f.check(CancelledError) for f in failures] == [CancelledError]
    assert len(transport.sent) == 4  # the late 200 matched nothing: not even an ACK


def test_client_non_invite_retransmits_capped_at_t2_and_times_out_at_f(clock: Clock) -> None:
    stack, transport, _ = make_stack(clock)
    d = stack.send_request(_outgoing("OPTIONS"), PHONE)
    _advance_until(clock, 40)
    assert transport.times() == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert d.result.status == 408
    assert stack.transaction_count == 0


def test_client_non_invite_after_provisional_retransmits_every_t2(clock: Clock) -> None:
    stack, transport, _ = make_stack(clock)
    request = _outgoing("OPTIONS")
    provisional = []
    d = stack.send_request(request, PHONE, on_response=provisional.append)
    clock.advance(0.2)
    stack.datagram_received(_reply(request, 100), PHONE)
    assert [r.status for r in provisional] == [100]
    _advance_until(clock, 10)
    # Timer E was started at 0 for 0.5 s; in Proceeding it restarts at T2.
    assert transport.times() == [0.0, 0.5, 4.5, 8.5]
    stack.datagram_received(_reply(request, 200), PHONE)
    assert d.result.status == 200
    _advance_until(clock, 10 + 5.001)
    assert stack.transaction_count == 0, "Timer K (T4) ended the transaction"


def test_client_invite_acks_a_failure_itself_and_absorbs_retransmissions(clock: Clock) -> None:
    stack, transport, _ = make_stack(clock)
    invite = _outgoing("INVITE")
    d = stack.send_request(invite, PHONE)
    clock.advance(0.1)
    stack.datagram_received(_reply(invite, 486, "busytag"), PHONE)
    assert d.result.status == 486
    ack = transport.messages()[-1]
    assert isinstance(ack, Request)
    assert ack.method == "ACK"
    assert ack.top_via.branch == invite.top_via.branch
    assert ack.to.tag == "busytag"
    assert str(ack.cseq) == "1 ACK"
    clock.advance(1)
    stack.datagram_received(_reply(invite, 486, "busytag"), PHONE)
    assert [m.method for m in transport.messages() if isinstance(m, Request)] == [
        "INVITE",
        "ACK",
        "ACK",
    ]
    _advance_until(clock, 0.1 + 32.001)
    assert stack.transaction_count == 0, "Timer D (32 s) ended the transaction"


def test_server_non_invite_absorbs_retransmissions_with_the_last_response(clock: Clock) -> None:
    stack, transport, handler = make_stack(clock, lambda req, txn: txn.respond(200))
    data = request_bytes()
    stack.datagram_received(data, PHONE)
    clock.advance(0.5)
    stack.datagram_received(data, PHONE)
    assert len(handler.requests) == 1, "a retransmission is not processed again"
    first, second = transport.sent
    assert first[1] == second[1]
    assert stack.counters["retransmissions"] == 1
    clock.advance(31.5 - 0.001)
    assert stack.transaction_count == 1
    clock.advance(0.001)
    assert stack.transaction_count == 0, "Timer J = 64·T1"


def test_answered_requests_each_expire_32_s_after_their_answer(clock: Clock) -> None:
    """Completed non-INVITE transactions share one deadline queue: each is still
    answered from it until its own Timer J, and processed anew after it."""
    stack, transport, handler = make_stack(clock, lambda req, txn: txn.respond(200))
    requests = [request_bytes(branch=f"z9hG4bK{n}", cseq=n + 1) for n in range(3)]
    for n, data in enumerate(requests):  # answered at 0, 0.25, 0.5 s
        clock.advance(0.25 if n else 0)
        stack.datagram_received(data, PHONE)
    assert stack.transaction_count == 3
    _advance_until(clock, 32.25 - 0.001)
    assert stack.transaction_count == 2, "the first answer went at 32 s"
    stack.datagram_received(requests[1], PHONE)
    assert len(handler.requests) == 3, "the second is still absorbed"
    assert transport.sent[-1][1] == transport.sent[1][1]
    _advance_until(clock, 32.25)
    assert stack.transaction_count == 1
    stack.datagram_received(requests[1], PHONE)
    assert len(handler.requests) == 4, "after its Timer J a request is new again"
    _advance_until(clock, 32.5)
    assert stack.transaction_count == 1, "only the new one is left"
    stack.stop()
    assert stack.transaction_count == 0
    assert clock.getDelayedCalls() == []


def test_server_non_invite_over_tcp_ends_at_once(clock: Clock) -> None:
    stack, _, _ = make_stack(clock, lambda req, txn: txn.respond(200))
    stack.message_received(parse_datagram(request_bytes(transport="TCP")), PHONE_TCP)
    clock.advance(0)
    assert stack.transaction_count == 0


def test_server_invite_failure_retransmits_on_g_until_ack(clock: Clock) -> None:
    stack, transport, _ = make_stack(clock, lambda req, txn: txn.respond(486))
    invite = request_bytes("INVITE", "z9hG4bKinv", extra="Contact: <sip:alice@10.0.0.1>\r\n")
    stack.datagram_received(invite, PHONE)
    _advance_until(clock, 12)
    assert transport.times() == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5]
    ack = request_bytes("ACK", "z9hG4bKinv", cseq=1)
    stack.datagram_received(ack, PHONE)
    _advance_until(clock, 20)
    assert len(transport.sent) == 6, "no more retransmissions once confirmed"
    assert stack.transaction_count == 0, "Timer I (T4) ended the transaction"


def test_server_invite_failure_without_ack_ends_at_h(clock: Clock) -> None:
    stack, transport, handler = make_stack(clock, lambda req, txn: txn.respond(486))
    stack.datagram_received(request_bytes("INVITE", "z9hG4bKinv2"), PHONE)
    _advance_until(clock, 31.999)
    assert stack.transaction_count == 1
    _advance_until(clock, 32.001)
    assert stack.transaction_count == 0
    assert transport.times()[-1] < 32
    assert handler.acks == []


def test_server_invite_2xx_is_accepted_and_retransmitted_invites_absorbed(clock: Clock) -> None:
    stack, transport, handler = make_stack(clock, lambda req, txn: txn.respond(200))
    invite = request_bytes("INVITE", "z9hG4bKok")
    stack.datagram_received(invite, PHONE)
    stack.datagram_received(invite, PHONE)
    assert len(handler.requests) == 1
    assert len(transport.sent) == 1, "the TU, not the transaction, retransmits a 2xx"
    stack.datagram_received(request_bytes("ACK", "z9hG4bKack2xx"), PHONE)
    assert len(handler.acks) == 1
    _advance_until(clock, 32.001)
    assert stack.transaction_count == 0, "Timer L = 64·T1"


@pytest.mark.parametrize(
    ("via_host", "rport", "expected"),
    [
        ("10.0.0.1:5060", True, ("10.0.0.99", 40000)),  # NAT: received and rport
        ("10.0.0.1:5070", False, ("10.0.0.99", 5070)),  # received only
        ("10.0.0.99:5080", False, ("10.0.0.99", 5080)),  # sent-by is the source
    ],
)
def test_responses_are_routed_by_via(
    clock: Clock, via_host: str, rport: bool, expected: tuple[str, int]
) -> None:
    stack, transport, _ = make_stack(clock, lambda req, txn: txn.respond(200))
    stack.datagram_received(
        request_bytes(via_host=via_host, rport=rport), Peer("udp", "10.0.0.99", 40000)
    )
    _, data, peer = transport.sent[0]
    assert (peer.host, peer.port) == expected
    via = parse_datagram(data).top_via
    if via_host.startswith("10.0.0.1:"):
        assert via.param("received") == "10.0.0.99"
    if rport:
        assert via.param("rport") == "40000"
    stack.stop()
