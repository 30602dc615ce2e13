"""Test doubles for the SIP stack: a recording transport and a scripted TU."""

from __future__ import annotations

from collections.abc import Callable

import attrs
from twisted.internet.task import Clock
from zope.interface import implementer

from telephony.sip.message import Request, Response, parse_datagram
from telephony.sip.peer import ITransport, Peer
from telephony.sip.stack import IRequestHandler, ServerTransactionHandle, SipStack


@implementer(ITransport)
@attrs.define
class RecordingTransport:
    """Keeps every send with the clock's time."""

    clock: Clock
    sent: list[tuple[float, bytes, Peer]] = attrs.Factory(list)

    def send(self, data: bytes, peer: Peer) -> None:
        self.sent.append((self.clock.seconds(), data, peer))

    def times(self) -> list[float]:
        return [round(t, 6) for t, _, _ in self.sent]

    def messages(self) -> list[Request | Response]:
        return [parse_datagram(d) for _, d, _ in self.sent]


@implementer(IRequestHandler)
@attrs.define
class ScriptedHandler:
    """Answers each new request with ``respond(request, txn)``; records what it saw."""

    respond: Callable[[Request, ServerTransactionHandle], None] | None = None
    requests: list[Request] = attrs.Factory(list)
    acks: list[Request] = attrs.Factory(list)
    handles: list[ServerTransactionHandle] = attrs.Factory(list)
    on_ack: Callable[[Request], None] | None = None

    def handle_request(self, request: Request, txn: ServerTransactionHandle) -> None:
        self.requests.append(request)
        self.handles.append(txn)
        if self.respond is not None:
            self.respond(request, txn)

    def handle_ack(self, request: Request, peer: Peer) -> None:
        self.acks.append(request)
        if self.on_ack is not None:
            self.on_ack(request)


def make_stack(
    clock: Clock, respond: Callable[[Request, ServerTransactionHandle], None] | None = None
) -> tuple[SipStack, RecordingTransport, ScriptedHandler]:
    handler = ScriptedHandler(respond)
    stack = SipStack(handler, clock=clock)
    transport = RecordingTransport(clock)
    stack.transports["udp"] = transport
    stack.transports["tcp"] = transport
    return stack, transport, handler


def request_bytes(
    method: str = "REGISTER",
    branch: str = "z9hG4bKabc",
    *,
    via_host: str = "10.0.0.1:5060",
    rport: bool = True,
    call_id: str = "call-1",
    cseq: int = 1,
    uri: str = "sip:example.test",
    extra: str = "",
    body: bytes = b"",
    transport: str = "UDP",
    to_tag: str | None = None,
) -> bytes:
    via = f"SIP/2.0/{transport} {via_host};branch={branch}" + (";rport" if rport else "")
    head = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.test>;tag=fromtag\r\n"
        f"To: <sip:alice@example.test>{';tag=' + to_tag if to_tag else ''}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body
