"""SIP fuzz targets: the datagram and stream parsers, and the whole SIP side of the
server (stack, core, registrar with digest, location service, on an in-memory store).

Each raises only on a bug: an exception other than the parser's own error, a message
that does not read back as itself, a stream cut differently reading differently, a
failure the stack logged, or a server that no longer answers OPTIONS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from zope.interface import implementer

from telephony.auth import CredentialCache, RequestAuthenticator
from telephony.directory import Directory
from telephony.directory.bindings import BindingStore
from telephony.location import LocationService
from telephony.registrar import Registrar
from telephony.sip.core import SipCore
from telephony.sip.digest import DigestAuthenticator
from telephony.sip.errors import SipParseError
from telephony.sip.guard import SourceGuard, parse_networks
from telephony.sip.message import Request, Response, StreamParser, parse_datagram
from telephony.sip.peer import ITransport, Peer
from telephony.sip.stack import SipStack
from tests.fuzz._inline import inline_database

__all__ = ("SIP_SEEDS", "fuzz_sip_datagram", "fuzz_sip_server", "fuzz_sip_stream")

RFC4475 = Path(__file__).parent.parent / "sip" / "rfc4475"
DOMAIN = "example.test"

_REGISTER = (
    b"REGISTER sip:example.test SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK.3a1f2bc9\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:alice@example.test>;tag=8f3b2a\r\n'
    b"To: <sip:alice@example.test>\r\n"
    b"Call-ID: 5a0e3c1d@192.0.2.10\r\n"
    b"CSeq: 2 REGISTER\r\n"
    b"Contact: <sip:alice@192.0.2.10:5060;transport=udp>;expires=3600\r\n"
    b'Authorization: Digest username="alice", realm="example.test", nonce="abc", '
    b'uri="sip:example.test", response="0123456789abcdef", qop=auth, nc=00000001\r\n'
    b"Content-Length: 0\r\n\r\n"
)
_INVITE = (
    b"INVITE sip:18001231234@example.test SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK.77\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@example.test>;tag=1\r\nTo: <sip:18001231234@example.test>\r\n"
    b"Call-ID: inv-1@192.0.2.10\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@192.0.2.10>\r\n"
    b"Require: timer\r\nSession-Expires: 1800;refresher=uac\r\nSupported: timer\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: 104\r\n\r\n"
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 101\r\n"
)
_RESPONSE = (
    b"SIP/2.0 401 Unauthorized\r\n"
    b"Via: SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bKx;received=2001:db8::2;rport=4000\r\n"
    b"From: <sip:alice@example.test>;tag=8f3b2a\r\nTo: <sip:alice@example.test>;tag=srv\r\n"
    b"Call-ID: 5a0e3c1d@192.0.2.10\r\nCSeq: 2 REGISTER\r\n"
    b'WWW-Authenticate: Digest realm="example.test", nonce="n", qop="auth"\r\n'
    b"Content-Length: 5\r\n\r\nhello"
)


def _seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted(RFC4475.glob("*.dat"))] + [
        _REGISTER,
        _INVITE,
        _RESPONSE,
    ]


#: RFC 4475's 49 torture messages and three everyday messages.
SIP_SEEDS = _seeds()


class BugFoundError(AssertionError):
    """What a target raises when it finds a bug (anything else raised is one too)."""


def _check_round_trip(message: Request | Response) -> None:
    data = message.to_bytes()
    again = parse_datagram(data)
    if type(again) is not type(message) or again.to_bytes() != data:
        raise BugFoundError(f"does not read back as itself: {data[:200]!r}")
    if (again.call_id, again.cseq, again.body) != (message.call_id, message.cseq, message.body):
        raise BugFoundError("Call-ID, CSeq or body changed on a round trip")


def fuzz_sip_datagram(data: bytes) -> None:
    """A UDP datagram: a message that reads back as itself, or a SipParseError with a
    4xx/5xx hint whose request (if any) can be answered."""
    try:
        message = parse_datagram(data)
    except SipParseError as exc:
        if not 400 <= exc.status_hint <= 599:
            raise BugFoundError(f"status hint {exc.status_hint}") from exc
        if exc.request is not None:
            Response.for_request(exc.request, exc.status_hint, exc.reason, "t").to_bytes()
        return
    _check_round_trip(message)


def _outcome(items: list[Request | Response | SipParseError]) -> list[object]:
    return [i.reason if isinstance(i, SipParseError) else i.to_bytes() for i in items]


def fuzz_sip_stream(data: bytes) -> None:
    """A TCP stream: the same items whether fed whole or cut where the first byte says."""
    step = 1 + (data[0] if data else 0)
    whole = StreamParser().feed(data)
    parser = StreamParser()
    pieces = [item for i in range(0, len(data), step) for item in parser.feed(data[i : i + step])]
    if _outcome(pieces) != _outcome(whole):
        raise BugFoundError(f"chunking by {step} changed what the stream reads")
    for item in whole:
        if not isinstance(item, SipParseError):
            _check_round_trip(item)


@implementer(ITransport)
class _Sent:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Peer]] = []

    def send(self, data: bytes, peer: Peer) -> None:
        self.sent.append((data, peer))


class _Server:
    """The SIP side of the server, wired as ``telephony.sipservice`` wires it."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        db = inline_database()
        directory = Directory(db, DOMAIN, self.clock)
        directory.create_endpoint("alice", "s3cret", "Alice")
        self.location = LocationService(BindingStore(db), clock=self.clock)
        self.location.start()
        guard = SourceGuard(exempt=parse_networks("192.0.2.0/24"))
        auth = RequestAuthenticator(
            CredentialCache(directory, self.clock),
            DigestAuthenticator(realm=DOMAIN),
            guard,
            self.clock,
        )
        registrar = Registrar(domains=[DOMAIN], location=self.location, auth=auth, clock=self.clock)
        self.core = SipCore(registrar=registrar, guard=guard, blocked_user_agents="Ozeki")
        self.stack = SipStack(self.core, clock=self.clock)
        self.transport = _Sent()
        self.stack.transports["udp"] = self.transport
        self.failures: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self._observe)
        self.probes = 0

    def _observe(self, event: dict[str, Any]) -> None:
        if "log_failure" in event:
            self.failures.append(event)

    def probe(self) -> None:
        """The server must still answer an OPTIONS from someone else."""
        self.probes += 1
        call_id = f"probe-{self.probes}"
        data = (
            f"OPTIONS sip:{DOMAIN} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKp{self.probes}\r\n"
            f"From: <sip:probe@{DOMAIN}>;tag=p\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        self.transport.sent.clear()
        self.stack.datagram_received(data, Peer("udp", "192.0.2.99", 5060))
        answers = [parse_datagram(d) for d, _ in self.transport.sent]
        if [(a.call_id, getattr(a, "status", 0)) for a in answers] != [(call_id, 200)]:
            raise BugFoundError(f"OPTIONS after the input was answered with {answers!r}")


_SERVER: _Server | None = None


def fuzz_sip_server(data: bytes) -> None:
    """A datagram to the whole SIP side: nothing logged as a failure, OPTIONS still
    answered, every transaction gone once its timers ran (64·T1)."""
    global _SERVER  # one server for all inputs: building one per input is most of the cost
    if _SERVER is None:
        _SERVER = _Server()
    server = _SERVER
    server.stack.datagram_received(data, Peer("udp", "192.0.2.10", 5060))
    server.probe()
    server.clock.advance(64)
    if server.failures:
        raise BugFoundError(f"logged failure: {server.failures[0].get('log_format')}")
    if server.stack.transaction_count:
        raise BugFoundError(f"{server.stack.transaction_count} transactions outlived their timers")
