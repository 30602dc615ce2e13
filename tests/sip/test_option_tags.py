"""Option tags (RFC 3261 §8.2.2.3): ``Require: timer`` is served, others get 420."""

from __future__ import annotations

from twisted.internet.task import Clock

from telephony.sip.core import SipCore
from telephony.sip.guard import SourceGuard, parse_networks
from telephony.sip.message import Request, Response
from telephony.sip.peer import Peer
from telephony.sip.stack import ServerTransactionHandle, SipStack
from tests.sip.helpers import RecordingTransport

PHONE = Peer("udp", "192.0.2.10", 5060)


class _NoRegistrar:
    def handle(self, request: Request, txn: ServerTransactionHandle) -> None:
        raise AssertionError("no REGISTER in these tests")


def _core() -> tuple[SipCore, SipStack, RecordingTransport, list[Request]]:
    clock = Clock()
    core = SipCore(
        registrar=_NoRegistrar(),  # type: ignore[arg-type]
        guard=SourceGuard(exempt=parse_networks("")),
        blocked_user_agents="",
    )
    seen: list[Request] = []
    core.calls = lambda request, txn: seen.append(request)
    stack = SipStack(core, clock=clock)
    transport = RecordingTransport(clock)
    stack.transports["udp"] = transport
    return core, stack, transport, seen


def _request(method: str, *extra: str) -> bytes:
    lines = [
        f"{method} sip:alice@example.com SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKopt1;rport",
        "Max-Forwards: 70",
        "From: <sip:bob@example.com>;tag=f1",
        "To: <sip:alice@example.com>",
        "Call-ID: opt-1",
        f"CSeq: 1 {method}",
        "Contact: <sip:bob@192.0.2.10:5060>",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def test_an_invite_that_requires_timer_reaches_the_call_layer() -> None:
    _, stack, transport, seen = _core()
    stack.datagram_received(
        _request("INVITE", "Require: timer", "Supported: timer", "Session-Expires: 1800"), PHONE
    )
    assert [r.method for r in seen] == ["INVITE"]
    assert transport.sent == []  # no 420: the call layer answers it


def test_other_required_tags_get_420_naming_only_them() -> None:
    _, stack, transport, seen = _core()
    stack.datagram_received(_request("INVITE", "Require: timer, 100rel, foo"), PHONE)
    assert seen == []
    [reply] = transport.messages()
    assert isinstance(reply, Response)
    assert (reply.status, reply.headers.get("Unsupported")) == (420, "100rel, foo")


def test_options_advertises_timer() -> None:
    _, stack, transport, _ = _core()
    stack.datagram_received(_request("OPTIONS"), PHONE)
    [reply] = transport.messages()
    assert isinstance(reply, Response)
    assert reply.status == 200
    assert reply.headers.get("Supported") == "timer"
