"""Property tests: mutated messages never break the parser; generated messages round-trip.

Hypothesis runs derandomized (the examples are a function of the test alone) with no
example database, so CI sees the same inputs every run; each test is bounded by
``max_examples``, the whole file by a few seconds.
"""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher

from telephony.sip.errors import SipParseError
from telephony.sip.headers import CSeq, Headers, Via, parse_contacts
from telephony.sip.message import Request, Response, StreamParser, parse_datagram
from telephony.sip.peer import Peer
from telephony.sip.stack import ServerTransactionHandle, SipStack
from telephony.sip.transport import StreamProtocol, StreamTransportFactory
from telephony.sip.uri import NameAddr, SipURI, parse_name_addr, parse_uri
from tests.fuzz._sip import SIP_SEEDS
from tests.sip.helpers import RecordingTransport, make_stack, request_bytes

FUZZ = settings(
    max_examples=500,
    deadline=1000,  # ms; generous for a loaded CI box, the mean is about 1 ms
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
#: Streams and generated messages cost more per example: fewer of them.
STREAMS = settings(FUZZ, max_examples=300)
GENERATED = settings(FUZZ, max_examples=80)
CHEAP = settings(FUZZ, max_examples=200)

#: The seeds: every RFC 4475 message (valid or not) and a few everyday ones.
SEEDS = SIP_SEEDS

#: Bytes that matter to the grammar, for insertions.
INTERESTING = [
    b"\r\n", b"\n", b"\r", b"\r\n ", b"\r\n\r\n", b" ", b"\t", b":", b";", b",", b'"', b"\\",
    b"<", b">", b"@", b"?", b"%", b"%00", b"=", b"/", b"[", b"]", b"\x00", b"\xff", b"\xc3",
    b"SIP/2.0", b"SIP/2.0/UDP ", b"sip:", b"tel:", b"Content-Length: 99999\r\n", b"l: 1\r\n",
    b"Via: SIP/2.0/UDP h;branch=z9hG4bKz\r\n", b"CSeq: 1 X\r\n", b"9" * 12, b"9" * 5000,
    "\u00b2".encode(), "\u0663".encode(), "\u00a0".encode(), "\u2028".encode(),
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed with a few byte flips, insertions, deletions, truncations, duplicated lines."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.one_of(st.sampled_from(INTERESTING), st.binary(max_size=8)))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del data[at:]
        else:
            lines = bytes(data).split(b"\r\n")
            if len(lines) > 2:
                i = draw(st.integers(1, len(lines) - 1))
                lines.insert(i, lines[i])
                data = bytearray(b"\r\n".join(lines))
    return bytes(data)


def check_round_trip(message: Request | Response) -> None:
    """A message that parsed serializes, and reads back as the same message."""
    data = message.to_bytes()
    again = parse_datagram(data)
    assert type(again) is type(message)
    if isinstance(message, Request):
        assert isinstance(again, Request)
        assert again.method == message.method
        assert str(again.uri) == str(message.uri)
    else:
        assert isinstance(again, Response)
        assert (again.status, again.reason) == (message.status, message.reason)
    assert again.call_id == message.call_id
    assert again.cseq == message.cseq
    assert again.body == message.body
    assert again.to_bytes() == data


def parse_or_error(data: bytes) -> Request | Response | SipParseError:
    try:
        return parse_datagram(data)
    except SipParseError as exc:
        return exc


def outcome(items: list[Request | Response | SipParseError]) -> list[object]:
    return [i.reason if isinstance(i, SipParseError) else i.to_bytes() for i in items]


@FUZZ
@given(mutated())
def test_mutated_datagrams_raise_nothing_but_sip_parse_error(data: bytes) -> None:
    result = parse_or_error(data)
    if not isinstance(result, SipParseError):
        check_round_trip(result)
        return
    assert 400 <= result.status_hint <= 599
    if result.request is not None:  # the transport builds its 400 from this
        assert isinstance(result.request, Request)
        response = Response.for_request(result.request, result.status_hint, result.reason, "t")
        # It copies the request's headers, broken ones included (§8.2.6.2), so it need
        # not parse again; it must be writable, with a clean status line.
        status_line = response.to_bytes().split(b"\r\n", 1)[0]
        assert status_line == f"SIP/2.0 {result.status_hint} {result.reason}".encode()


@STREAMS
@given(mutated(), st.lists(st.integers(1, 4000), max_size=8))
def test_mutated_streams_in_any_chunking(data: bytes, sizes: list[int]) -> None:
    """Fed whole or in pieces, a stream yields the same items, and never raises."""
    stream = data + b"\r\n" + data  # two in a row, a keep-alive between
    whole = StreamParser().feed(stream)
    parser = StreamParser()
    pieces: list[Request | Response | SipParseError] = []
    start = 0
    for size in [*sizes, len(stream)]:
        pieces.extend(parser.feed(stream[start : start + size]))
        start += size
    assert outcome(pieces) == outcome(whole)
    for item in whole:
        if not isinstance(item, SipParseError):
            check_round_trip(item)


@STREAMS
@given(mutated())
def test_mutated_stream_byte_by_byte(data: bytes) -> None:
    parser = StreamParser()
    pieces = [item for i in range(len(data)) for item in parser.feed(data[i : i + 1])]
    assert outcome(pieces) == outcome(StreamParser().feed(data))


@CHEAP
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    parse_or_error(data)
    StreamParser().feed(data)


@CHEAP
@given(st.text(max_size=80))
def test_field_parsers_raise_nothing_but_sip_parse_error(text: str) -> None:
    for parse in (parse_uri, parse_name_addr):
        with contextlib.suppress(SipParseError):
            parse(text)
    with contextlib.suppress(SipParseError):
        parse_contacts(Headers([("Contact", text)]))


# -- generated messages round-trip ----------------------------------------------------------

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
TOKEN_CHARS = ALNUM + "-.!%*_+`'~"
token = st.text(TOKEN_CHARS, min_size=1, max_size=12)
escape = st.integers(0, 255).map(lambda b: f"%{b:02X}")
user_chars = st.text(ALNUM + "-_.!~*'()&=+$,;?/", min_size=1)
user = st.lists(st.one_of(user_chars, escape), min_size=1, max_size=4).map("".join)
label = st.text(ALNUM, min_size=1, max_size=8)
hostname = st.lists(label, min_size=1, max_size=3).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8).map(
    lambda g: "[" + ":".join(f"{x:x}" for x in g) + "]"
)
host = st.one_of(hostname, ipv4, ipv6)
port = st.one_of(st.none(), st.integers(1, 65535))
#: uri-parameter values are paramchars only (§25.1); header parameters may be quoted.
uri_params = st.lists(st.tuples(token, st.one_of(st.none(), token)), max_size=3).map(tuple)
quoted = st.text(ALNUM + " ;,", max_size=8).map(lambda v: f'"{v}"')
params = st.lists(st.tuples(token, st.one_of(st.none(), token, quoted)), max_size=3).map(tuple)
display = st.one_of(st.none(), st.text(ALNUM + ' "\\,;<>@:éü', max_size=12))


@st.composite
def sip_uris(draw: st.DrawFn, *, headers: bool = True) -> SipURI:
    return SipURI(
        draw(st.sampled_from(["sip", "sips"])),
        draw(st.one_of(st.none(), user)),
        draw(host),
        draw(port),
        None,
        draw(uri_params),
        draw(st.sampled_from(["", "subject=x", "to=sip:a%40b&priority=urgent"])) if headers else "",
    )


@st.composite
def name_addrs(draw: st.DrawFn) -> NameAddr:
    return NameAddr(draw(sip_uris()), draw(display), draw(params))


@st.composite
def vias(draw: st.DrawFn) -> Via:
    branch = ("branch", "z9hG4bK" + draw(token))
    extras = [("rport", None), ("rport", "5060"), ("received", "192.0.2.1"), ("ttl", "1")]
    extra = draw(st.lists(st.sampled_from(extras), max_size=2))
    transport = draw(st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS"]))
    return Via(transport, draw(host), draw(port), (branch, *extra))


header_value = st.text(ALNUM + " ;,=<>@:/\"'()é\t", max_size=30).map(str.strip)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(
        st.one_of(st.sampled_from(["INVITE", "REGISTER", "OPTIONS", "ACK", "BYE"]), token)
    )
    headers = Headers()
    for via in draw(st.lists(vias(), min_size=1, max_size=3)):
        headers.add("Via", str(via))
    headers.add("Max-Forwards", str(draw(st.integers(0, 255))))
    headers.add("From", str(draw(name_addrs())))
    headers.add("To", str(draw(name_addrs())))
    headers.add("Call-ID", draw(st.text(TOKEN_CHARS + '()<>:\\/[]?{}@"', min_size=1, max_size=30)))
    headers.add("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}")
    names = st.sampled_from(["X-A", "X-Bb", "X-Long-Name", "Subject", "User-Agent"])
    for _ in range(draw(st.integers(0, 3))):
        headers.add(draw(names), draw(header_value))
    return Request(method, draw(sip_uris(headers=False)), headers, draw(st.binary(max_size=64)))


@GENERATED
@given(requests())
def test_generated_requests_round_trip(request: Request) -> None:
    again = parse_datagram(request.to_bytes())
    assert isinstance(again, Request)
    assert again.method == request.method
    assert str(again.uri) == str(request.uri)
    assert again.uri == request.uri
    assert again.call_id == request.call_id
    assert again.cseq == request.cseq
    assert again.vias == request.vias
    assert again.from_ == request.from_
    assert again.to == request.to
    assert again.body == request.body
    assert list(again.headers) == list(request.headers)  # Content-Length included


@settings(GENERATED, max_examples=40)
@given(st.lists(requests(), min_size=1, max_size=3), st.lists(st.integers(1, 200), max_size=6))
def test_generated_requests_on_a_stream(batch: list[Request], sizes: list[int]) -> None:
    stream = b"".join(r.to_bytes() for r in batch)
    parser = StreamParser()
    items: list[Request | Response | SipParseError] = []
    start = 0
    for size in [*sizes, len(stream)]:
        items.extend(parser.feed(stream[start : start + size]))
        start += size
    assert [(m.call_id, m.cseq, m.body) for m in items if isinstance(m, Request)] == [
        (r.call_id, r.cseq, r.body) for r in batch
    ]


@GENERATED
@given(requests(), st.integers(100, 699), st.text(ALNUM + " -", max_size=20), token)
def test_generated_responses_round_trip(
    request: Request, status: int, reason: str, tag: str
) -> None:
    parsed = parse_datagram(request.to_bytes())
    assert isinstance(parsed, Request)
    response = Response.for_request(parsed, status, reason or None, to_tag=tag)
    again = parse_datagram(response.to_bytes())
    assert isinstance(again, Response)
    assert (again.status, again.call_id, again.cseq) == (status, request.call_id, request.cseq)
    assert again.vias == request.vias
    assert again.from_ == request.from_
    if status > 100 and request.to.tag is None:
        assert again.to.tag == tag
    else:
        assert again.to == request.to


@settings(GENERATED, max_examples=100)
@given(sip_uris())
def test_generated_uris_round_trip(uri: SipURI) -> None:
    again = parse_uri(str(uri))
    assert isinstance(again, SipURI)
    assert again == uri
    assert str(again) == str(uri)
    assert hash(again) == hash(uri)


@settings(GENERATED, max_examples=100)
@given(name_addrs())
def test_generated_name_addrs_round_trip(value: NameAddr) -> None:
    assert parse_name_addr(str(value)) == value


@settings(GENERATED, max_examples=100)
@given(st.integers(0, 2**31 - 1), token)
def test_cseq_round_trip(number: int, method: str) -> None:
    from telephony.sip.headers import parse_cseq

    assert parse_cseq(str(CSeq(number, method))) == CSeq(number, method)


# -- the stack behind the listeners ------------------------------------------------------------


class _Failures:
    """Collects the stack's logged failures (what would otherwise only reach a log file)."""

    def __init__(self) -> None:
        self.events: list[dict[str, object]] = []

    def __call__(self, event: dict[str, object]) -> None:
        if "log_failure" in event:
            self.events.append(event)


def _answering_stack(clock: Clock) -> tuple[SipStack, RecordingTransport]:
    def respond(request: Request, txn: ServerTransactionHandle) -> None:
        txn.respond(200)

    stack, transport, _ = make_stack(clock, respond)
    return stack, transport


def _options(call_id: str, transport: str = "UDP") -> bytes:
    return request_bytes("OPTIONS", f"z9hG4bK{call_id}", call_id=call_id, transport=transport)


def _connect(proto: StreamProtocol, transport: StringTransport) -> None:
    """Connect *proto* to an in-memory transport, as the reactor does."""
    proto.makeConnection(transport)


def test_tcp_connection_is_accepted() -> None:
    clock = Clock()
    stack, _ = _answering_stack(clock)
    factory = StreamTransportFactory(stack)
    stack.transports["tcp"] = factory
    try:
        transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.9", 40001))
        proto = factory.buildProtocol(transport.getPeer())
        assert proto is not None
        proto.makeConnection(transport)
        proto.dataReceived(_options("tcp", transport="TCP"))
        assert StreamParser().feed(transport.value())
    finally:
        stack.stop()


@settings(STREAMS, max_examples=150)
@given(st.lists(mutated(), min_size=1, max_size=4))
def test_udp_stack_survives_mutated_datagrams_and_still_answers(batch: list[bytes]) -> None:
    """The issue's "no exception escapes, the server still answers", for UDP."""
    failures = _Failures()
    globalLogPublisher.addObserver(failures)
    clock = Clock()
    stack, transport = _answering_stack(clock)
    try:
        for data in batch:
            stack.datagram_received(data, Peer("udp", "192.0.2.1", 5060))
        stack.datagram_received(_options("after-fuzz"), Peer("udp", "192.0.2.9", 5060))
        answers = [parse_datagram(d) for _, d, p in transport.sent if p.host == "192.0.2.9"]
        assert [(a.call_id, getattr(a, "status", None)) for a in answers] == [("after-fuzz", 200)]
    finally:
        stack.stop()
        globalLogPublisher.removeObserver(failures)
    assert failures.events == []
    assert clock.getDelayedCalls() == []


@settings(STREAMS, max_examples=150)
@given(mutated(), st.lists(st.integers(1, 600), max_size=6))
def test_tcp_stack_survives_mutated_streams_and_still_answers(
    data: bytes, sizes: list[int]
) -> None:
    """Likewise for TCP: a framing error closes that connection only; others are served."""
    failures = _Failures()
    globalLogPublisher.addObserver(failures)
    clock = Clock()
    stack, _ = _answering_stack(clock)
    factory = StreamTransportFactory(stack)
    stack.transports["tcp"] = factory
    try:
        fuzzed = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 40000))
        proto = factory.buildProtocol(fuzzed.getPeer())
        assert proto is not None
        _connect(proto, fuzzed)
        start = 0
        for size in [*sizes, len(data)]:
            proto.dataReceived(data[start : start + size])
            start += size
        assert fuzzed.disconnecting == proto.parser.failed

        clean = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.9", 40001))
        other = factory.buildProtocol(clean.getPeer())
        assert other is not None
        _connect(other, clean)
        other.dataReceived(_options("after-fuzz", transport="TCP"))
        [answer] = StreamParser().feed(clean.value())
        assert isinstance(answer, Response)
        assert (answer.status, answer.call_id) == (200, "after-fuzz")
    finally:
        for open_proto in list(factory.connections.values()):
            open_proto.connectionLost()  # their read deadlines go with them
        stack.stop()
        globalLogPublisher.removeObserver(failures)
    assert failures.events == []
    assert clock.getDelayedCalls() == []


_VIA_PIECES = st.sampled_from(
    [
        "SIP/2.0/UDP ", "SIP/2.0/tcp ", "sip/2.0/UDP ", "SIP / 2.0 / UDP ", "SIP/3.0/UDP ",
        "127.0.0.1", "[::1]", "host.example.", "h-1", "-bad", ":5060", ":0", ":65536", ":7",
        ";branch=z9hG4bK1", ";rport", ";rport=", ";received=192.0.2.1", ";x=\"q;v\"", "; a = b",
        ";", ";=", " ", ",", "\t", "é", ";maddr=[::2]", ";ttl=1",
    ]
)  # fmt: skip


@FUZZ
@given(st.lists(_VIA_PIECES, min_size=1, max_size=8).map("".join))
def test_the_fast_via_path_reads_what_the_general_one_reads(value: str) -> None:
    """parse_via's shortcut for common Vias agrees with the general grammar."""
    import re

    import telephony.sip.headers as headers_module

    def outcome() -> object:
        try:
            return headers_module.parse_via(value)
        except SipParseError as exc:
            return exc.reason

    fast = outcome()
    saved = headers_module._SIMPLE_VIA
    headers_module._SIMPLE_VIA = re.compile(r"(?!)")  # never matches: the general path
    try:
        assert outcome() == fast
    finally:
        headers_module._SIMPLE_VIA = saved


@FUZZ
@given(
    st.lists(_VIA_PIECES, min_size=1, max_size=8).map("".join),
    st.sampled_from([Peer("udp", "192.0.2.7", 5099), Peer("udp", "127.0.0.1", 5060)]),
)
def test_the_stamped_via_view_is_what_the_stamped_text_says(value: str, peer: Peer) -> None:
    """After Via stamping (received, rport), the kept view equals a fresh parse of the text."""
    from telephony.sip.headers import parse_via
    from telephony.sip.received import stamp_via as _stamp_via

    data = (
        f"OPTIONS sip:x@example.test SIP/2.0\r\nVia: {value}\r\n"
        "From: <sip:a@example.test>;tag=1\r\nTo: <sip:x@example.test>\r\n"
        "Call-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    try:
        request = parse_datagram(data)
    except SipParseError:
        return
    assert isinstance(request, Request)
    _stamp_via(request, peer)
    stamped = request.top_via
    assert [str(v) for v in request.vias] == [
        str(parse_via(v)) for v in request.headers.values("Via")
    ]
    if stamped.param("rport") is not None:
        assert (stamped.param("rport"), stamped.param("received")) == (str(peer.port), peer.host)


_AUTH_PIECES = st.sampled_from(
    [
        "Digest ", "digest ", "Basic ", 'username="bob"', "username=bob", 'realm="example.test"',
        'nonce="abc"', 'uri="sip:x"', 'response="0f"', "algorithm=MD5", "qop=auth", "nc=00000001",
        'cnonce="c"', ", ", ",", " ", '"', "\\", 'x="a\\"b"', 'y="a,b"', "=", "z", "\n", "é",
        'opaque=""', "USERNAME=other",
    ]
)  # fmt: skip


def _parse_authorization_by_loop(value: str) -> object:
    """The loop parse_authorization used to run, kept as the reference."""
    from telephony.sip._grammar import unquote
    from telephony.sip.digest import _AUTH_PARAM, MAX_AUTHORIZATION_LENGTH, Credentials

    if len(value) > MAX_AUTHORIZATION_LENGTH:
        return None
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        match = _AUTH_PARAM.match(rest, pos)
        if not match or match.end() == pos:
            return None
        params[match.group(1).lower()] = unquote(match.group(2))
        pos = match.end()
    required = ("username", "realm", "nonce", "uri", "response")
    if any(name not in params for name in required):
        return None
    return Credentials(
        *(params[n] for n in required),
        *(params.get(n) for n in ("algorithm", "cnonce", "qop", "nc", "opaque")),
    )


@FUZZ
@given(st.lists(_AUTH_PIECES, min_size=1, max_size=14).map("".join))
def test_authorization_parsing_matches_a_param_by_param_loop(value: str) -> None:
    from telephony.sip.digest import parse_authorization

    assert parse_authorization(value) == _parse_authorization_by_loop(value)
    full = (
        'Digest username="bob", realm="example.test", nonce="abc", uri="sip:x", '
        f'response="0f", {value}'
    )
    assert parse_authorization(full) == _parse_authorization_by_loop(full)
