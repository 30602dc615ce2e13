"""SIP over TCP to a peer we have no connection with (a TCP gateway): we open one.

Both ends are our own stack on the real reactor and real loopback sockets: the
"gateway" listens and answers 200 to anything; our side sends requests with
``send_request`` and must connect, send, and get the answer back on the connection
it made (RFC 3261 §18.1.1, §18.2.2).
"""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from telephony.sip.headers import Headers
from telephony.sip.ids import new_branch
from telephony.sip.message import Request, Response
from telephony.sip.peer import Peer
from telephony.sip.stack import SipStack
from telephony.sip.transport import StreamTransportFactory
from telephony.sip.uri import parse_uri
from tests.serverproc import free_port
from tests.sip.helpers import ScriptedHandler


def _stack(handler: ScriptedHandler) -> tuple[SipStack, StreamTransportFactory]:
    stack = SipStack(handler, clock=reactor)
    tcp = StreamTransportFactory(stack, reactor=reactor)
    stack.transports["tcp"] = tcp
    return stack, tcp


def _options(port: int, n: int) -> Request:
    headers = Headers()
    headers.add("Via", f"SIP/2.0/TCP 127.0.0.1:5999;branch={new_branch()};rport")
    headers.add("Max-Forwards", "70")
    headers.add("From", "<sip:us@127.0.0.1>;tag=t1")
    headers.add("To", f"<sip:gw@127.0.0.1:{port}>")
    headers.add("Call-ID", f"tcp-out-{n}")
    headers.add("CSeq", f"{n} OPTIONS")
    return Request("OPTIONS", parse_uri(f"sip:gw@127.0.0.1:{port};transport=tcp"), headers)


@pytest_twisted.ensureDeferred
async def test_we_connect_send_and_hear_the_answer_on_our_connection() -> None:
    gateway_handler = ScriptedHandler(lambda request, txn: txn.respond(200))
    gateway, gateway_tcp = _stack(gateway_handler)
    listening = reactor.listenTCP(0, gateway_tcp, interface="127.0.0.1")
    port = listening.getHost().port
    ours, our_tcp = _stack(ScriptedHandler())
    try:
        peer = Peer("tcp", "127.0.0.1", port)
        # Two requests before the connection is made: both wait for it, in order.
        first = ours.send_request(_options(port, 1), peer)
        second = ours.send_request(_options(port, 2), peer)
        answers: list[Response] = [await first, await second]
        assert [(r.status, r.cseq.number) for r in answers] == [(200, 1), (200, 2)]
        assert [r.cseq.number for r in gateway_handler.requests] == [1, 2]
        assert list(our_tcp.connections) == [("127.0.0.1", port)], "one connection, reused"
        third = await ours.send_request(_options(port, 3), peer)
        assert third.status == 200
        assert len(our_tcp.connections) == 1
    finally:
        for proto in list(our_tcp.connections.values()) + list(gateway_tcp.connections.values()):
            proto.transport.loseConnection()  # type: ignore[union-attr]
        await listening.stopListening()
        ours.stop()
        gateway.stop()
        await deferLater(reactor, 0.05, lambda: None)


@pytest_twisted.ensureDeferred
async def test_a_refused_connection_drops_what_waited_and_says_so() -> None:
    from twisted.logger import globalLogPublisher

    events: list[dict[str, object]] = []
    globalLogPublisher.addObserver(events.append)
    ours, our_tcp = _stack(ScriptedHandler())
    port = free_port()  # nothing listens there
    try:
        d: Deferred[Response] = ours.send_request(_options(port, 1), Peer("tcp", "127.0.0.1", port))
        for _ in range(100):
            if any("Cannot connect" in str(e.get("log_format")) for e in events):
                break
            await deferLater(reactor, 0.02, lambda: None)
        [event] = [e for e in events if "Cannot connect" in str(e.get("log_format"))]
        assert (event["port"], event["n"]) == (port, 1)
        assert our_tcp.connections == {}
        assert not d.called, "the transaction times out on its own timer (F) later"
        d.cancel()
        d.addErrback(lambda _: None)
    finally:
        globalLogPublisher.removeObserver(events.append)
        ours.stop()
