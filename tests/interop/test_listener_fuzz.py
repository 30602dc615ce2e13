"""Mutated SIP thrown at the running server's UDP and TCP listeners.

A seeded mutator (byte flips, truncation, junk, huge headers, oversized datagrams,
bad Content-Length, broken line ends...) makes a bounded number of messages from a
few valid ones.  Afterwards the server must still answer OPTIONS on both transports,
be alive, and have logged no traceback.  Malformed requests that are readable enough
get a 400 naming the fault: a few exact cases prove that path.
"""

from __future__ import annotations

import random
import re
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from tests import rawsip
from tests.serverproc import Server, running_server

pytestmark = pytest.mark.interop

#: Fixed, so that a failure can be replayed; change it to explore.
SEED = 3261
UDP_MESSAGES = 400
TCP_CONNECTIONS = 80
#: The largest UDP payload IPv4 can carry.
MAX_DATAGRAM = 65_507
#: Wall-clock bound of each fuzzing loop, seconds.
TIME_BUDGET = 20.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("fuzz") / "var") as s:
        yield s


# -- the corpus and the mutator ----------------------------------------------------------

_SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
)


def _corpus(port: int) -> list[bytes]:
    local = ("127.0.0.1", 5099)
    uri = f"sip:127.0.0.1:{port}"
    return [
        rawsip.request("OPTIONS", uri, local=local),
        rawsip.request(
            "REGISTER",
            uri,
            local=local,
            user="fuzz",
            extra=[
                "Contact: <sip:fuzz@127.0.0.1:5099;transport=udp>;expires=60",
                'Authorization: Digest username="fuzz", realm="127.0.0.1", nonce="abc", '
                'uri="sip:127.0.0.1", response="0123", algorithm=MD5, cnonce="x", qop=auth, '
                "nc=00000001",
                "User-Agent: fuzz",
            ],
        ),
        rawsip.request(
            "INVITE",
            f"sip:someone@127.0.0.1:{port}",
            local=local,
            extra=["Contact: <sip:fuzz@127.0.0.1:5099>", "Content-Type: application/sdp"],
            body=_SDP,
        ),
        # Compact forms, folding, several Vias in one header, an escaped URI.
        (
            f"OPTIONS sip:%61lice@127.0.0.1:{port};transport=udp SIP/2.0\r\n"
            "v: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKfold1;rport,\r\n"
            " SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKfold2\r\n"
            'f: "A \\"quoted\\" name" <sip:fuzz@127.0.0.1>;tag=1\r\n'
            "t: <sip:alice@127.0.0.1>\r\n"
            "i: fold-1@127.0.0.1\r\n"
            "CSeq: 7\r\n  OPTIONS\r\n"
            "Max-Forwards: 70\r\n"
            "l: 0\r\n\r\n"
        ).encode(),
        # A response nobody asked for.
        (
            b"SIP/2.0 200 OK\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKstray\r\n"
            b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\n"
            b"Call-ID: stray@127.0.0.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        ),
    ]


Mutation = Callable[[random.Random, bytes], bytes]


def _flip(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 12)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))]


def _junk(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + rng.randbytes(rng.randint(1, 64)) + data[i:]


def _binary(rng: random.Random, data: bytes) -> bytes:
    return rng.randbytes(rng.randint(1, 3000))


def _huge_header(rng: random.Random, data: bytes) -> bytes:
    size = rng.choice((5_000, 20_000, 60_000))
    i = data.find(b"\r\n") + 2
    return data[:i] + b"X-Huge: " + b"a" * size + b"\r\n" + data[i:]


def _many_headers(rng: random.Random, data: bytes) -> bytes:
    i = data.find(b"\r\n") + 2
    extra = b"".join(b"X-H%d: v\r\n" % n for n in range(rng.choice((100, 1000, 4000))))
    return data[:i] + extra + data[i:]


def _oversized(rng: random.Random, data: bytes) -> bytes:
    size = rng.randint(60_000, MAX_DATAGRAM)
    head, _, _ = data.partition(b"\r\n\r\n")
    body = b"x" * max(0, size - len(head) - 40)
    head = b"\r\n".join(
        line
        for line in head.split(b"\r\n")
        if not line.lower().startswith((b"content-length", b"l:"))
    )
    return head + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def _bad_length(rng: random.Random, data: bytes) -> bytes:
    value = rng.choice((b"-1", b"abc", b"99999999999", b"4000", b"1e3", b"", b"0x10", b" 12 3"))
    lines = data.split(b"\r\n")
    lines = [
        b"Content-Length: " + value
        if line.lower().startswith((b"content-length:", b"l:"))
        else line
        for line in lines
    ]
    return b"\r\n".join(lines)


def _line_ends(rng: random.Random, data: bytes) -> bytes:
    return data.replace(b"\r\n", rng.choice((b"\n", b"\r", b"\r\r\n", b"\n\r", b"")))


def _drop_line(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\r\n")
    del lines[rng.randrange(len(lines))]
    return b"\r\n".join(lines)


def _repeat_line(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\r\n")
    i = rng.randrange(len(lines))
    lines[i:i] = [lines[i]] * rng.randint(2, 200)
    return b"\r\n".join(lines)


def _start_line(rng: random.Random, data: bytes) -> bytes:
    _, sep, rest = data.partition(b"\r\n")
    replacement = rng.choice(
        (
            b"REGISTER",
            b"INVITE sip:x SIP/3.0",
            b"\xff\xfe\x00 sip:x SIP/2.0",
            b"OPTIONS tel:+1-555 SIP/2.0",
            b"OPTIONS http://example.com/ SIP/2.0",
            b"SIP/2.0 999 Huge",
            b"SIP/2.0 abc",
            b"OPTIONS <sip:a@[::1> SIP/2.0",
            "RÉGISTER sip:ü@127.0.0.1 SIP/2.0".encode(),
            b"OPTIONS sip:" + b"a" * 5000 + b"@127.0.0.1 SIP/2.0",
        )
    )
    return replacement + sep + rest


def _nul(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data))
    return data[:i] + b"\x00" * rng.randint(1, 8) + data[i:]


def _header_value(rng: random.Random, data: bytes) -> bytes:
    """Replace one header's value with something a parser may choke on."""
    lines = data.split(b"\r\n")
    candidates = [i for i, line in enumerate(lines[1:], 1) if b":" in line]
    if not candidates:
        return data
    i = rng.choice(candidates)
    name = lines[i].split(b":", 1)[0]
    value = rng.choice(
        (
            b"",
            b"<",
            b'"unterminated',
            b"<sip:a@b>;tag",
            b";;;;",
            b"SIP/2.0/UDP",
            b"SIP/2.0/UDP [::1",
            b"SIP/2.0/UDP host:99999;rport=abc;received=",
            b"<sip:@:>",
            b"1 " + b"9" * 40 + b" REGISTER",
            b"Digest " + b"a=" * 2000,
            b'Digest username="\\',
            b"\xc3\x28\xa0\xa1",
            b"=?utf-8?q?x?=",
            b"*",
            b"<sips:[fe80::1%25eth0]:5061;maddr=239.255.255.1;lr>",
        )
    )
    lines[i] = name + b": " + value
    return b"\r\n".join(lines)


MUTATIONS: tuple[Mutation, ...] = (
    _flip,
    _truncate,
    _junk,
    _binary,
    _huge_header,
    _many_headers,
    _oversized,
    _bad_length,
    _line_ends,
    _drop_line,
    _repeat_line,
    _start_line,
    _nul,
    _header_value,
)


def _mutants(rng: random.Random, corpus: list[bytes], n: int) -> Iterator[bytes]:
    """*n* messages, each a corpus message under 1 to 3 random mutations."""
    for _ in range(n):
        data = rng.choice(corpus)
        for mutation in rng.sample(MUTATIONS, rng.randint(1, 3)):
            data = mutation(rng, data) or b"\r\n"
        yield data[:MAX_DATAGRAM]


# -- checks ------------------------------------------------------------------------------


def _options(server: Server, local: tuple[str, int], transport: str = "UDP") -> bytes:
    return rawsip.request(
        "OPTIONS", f"sip:127.0.0.1:{server.sip_port}", local=local, transport=transport
    )


def _assert_serving(server: Server) -> None:
    target = ("127.0.0.1", server.sip_port)
    with rawsip.UDPClient(target) as client:
        answer = client.exchange(_options(server, client.local), timeout=5.0)
    assert answer is not None, "no answer to OPTIONS over UDP"
    assert answer.status == 200
    answer = rawsip.tcp_exchange(target, _options(server, ("127.0.0.1", 5099), "TCP"), 5.0)
    assert answer is not None, "no answer to OPTIONS over TCP"
    assert answer.status == 200
    assert server.process.poll() is None, "the server died"
    log = server.log()
    assert "Traceback" not in log, log[-5000:]
    assert "Unhandled" not in log, log[-5000:]


def _status(server: Server, row: str) -> int:
    """A figure of the status page's SIP table."""
    with urllib.request.urlopen(f"{server.base_url}/", timeout=5) as response:
        page = response.read().decode()
    match = re.search(rf"<th>{re.escape(row)}</th><td>(\d+)</td>", page)
    assert match, page
    return int(match.group(1))


def test_udp_listener_survives_mutated_datagrams(server: Server) -> None:
    rng = random.Random(SEED)
    received, malformed = (
        _status(server, "Messages received"),
        _status(server, "Malformed messages"),
    )
    target = ("127.0.0.1", server.sip_port)
    deadline = time.monotonic() + TIME_BUDGET
    sent = 0
    with rawsip.UDPClient(target) as client:
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        for data in _mutants(rng, _corpus(server.sip_port), UDP_MESSAGES):
            if time.monotonic() > deadline:
                break
            client.send(data)
            sent += 1
            # Let the server keep up: we want them read, not dropped by a full socket
            # buffer (a 64 KB datagram takes more than half of a default one).
            time.sleep(0.02 if len(data) > 8000 else 0.002)
            if sent % 25 == 0:
                client.drain()
    assert sent == UDP_MESSAGES
    _assert_serving(server)
    # They were read (not lost in a socket buffer), and most were refused as malformed.
    assert _status(server, "Messages received") - received >= 0.95 * sent
    assert _status(server, "Malformed messages") - malformed >= 0.5 * sent


def test_tcp_listener_survives_mutated_streams(server: Server) -> None:
    rng = random.Random(SEED + 1)
    malformed = _status(server, "Malformed messages")
    target = ("127.0.0.1", server.sip_port)
    corpus = [m.replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP") for m in _corpus(server.sip_port)]
    deadline = time.monotonic() + TIME_BUDGET
    opened = 0
    for _ in range(TCP_CONNECTIONS):
        if time.monotonic() > deadline:
            break
        stream = b"".join(_mutants(rng, corpus, rng.randint(1, 4)))
        if rng.random() < 0.3:
            stream = rng.choice(corpus) + stream  # a good message first
        with socket.create_connection(target, timeout=2.0) as sock:
            opened += 1
            # Any chunking: the stream parser must not care.
            pos = 0
            try:
                while pos < len(stream):
                    step = rng.choice((1, 7, 100, 1500, len(stream)))
                    sock.sendall(stream[pos : pos + step])
                    pos += step
                sock.settimeout(0.05)
                sock.recv(65536)
            except (TimeoutError, ConnectionError):
                pass  # the server may close a stream it cannot frame
    assert opened == TCP_CONNECTIONS
    _assert_serving(server)
    assert _status(server, "Malformed messages") - malformed >= 0.5 * TCP_CONNECTIONS


# -- the 400 path ---------------------------------------------------------------------------


def _broken(server: Server, local: tuple[str, int], replace: bytes, by: bytes) -> bytes:
    data = _options(server, local)
    assert replace in data
    return data.replace(replace, by, 1)


@pytest.mark.parametrize(
    ("replace", "by", "reason"),
    [
        (b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS", "CSeq"),
        (b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE", "CSeq method"),
        (b"Max-Forwards: 70", b"Max-Forwards: many", "Max-Forwards"),
        (b"Content-Length: 0", b"Content-Length: zero", "Content-Length"),
        (b"Content-Length: 0", b"Content-Length: 40", "Content-Length"),
        (b"OPTIONS sip:", b"OPTIONS sip:<>", "URI"),
    ],
)
def test_readable_malformed_requests_get_400_over_udp(
    server: Server, replace: bytes, by: bytes, reason: str
) -> None:
    with rawsip.UDPClient(("127.0.0.1", server.sip_port)) as client:
        answer = client.exchange(_broken(server, client.local, replace, by))
    assert answer is not None
    assert answer.status == 400, answer.raw
    assert reason.lower() in answer.status_line.lower(), answer.status_line
    # Enough of the request was read to route the answer back: Via, Call-ID, CSeq.
    assert (answer.get("Via") or "").startswith("SIP/2.0/UDP 127.0.0.1:")


@pytest.mark.parametrize("size", [9_000, 30_000, 65_000])
def test_large_requests_over_udp_are_read_whole(server: Server, size: int) -> None:
    """RFC 3261 §18.1.1: up to 65,535 bytes over UDP (past any MTU, in fragments)."""
    with rawsip.UDPClient(("127.0.0.1", server.sip_port)) as client:
        data = rawsip.request(
            "OPTIONS",
            f"sip:127.0.0.1:{server.sip_port}",
            local=client.local,
            extra=["Content-Type: text/plain"],
            body=b"p" * size,  # after Content-Length: a cut datagram cannot pass
        )
        assert size < len(data) <= MAX_DATAGRAM
        answer = client.exchange(data)
    assert answer is not None, f"no answer to a {len(data)}-byte OPTIONS"
    assert answer.status == 200, answer.status_line


def test_unreadable_datagrams_get_no_answer(server: Server) -> None:
    with rawsip.UDPClient(("127.0.0.1", server.sip_port)) as client:
        for junk in (b"\x00\x01\x02garbage", b"HELLO\r\n\r\n", b"SIP/2.0 200\r\n\r\n"):
            assert client.exchange(junk, timeout=0.3) is None


def test_a_bad_message_on_tcp_gets_400_and_the_stream_goes_on(server: Server) -> None:
    target = ("127.0.0.1", server.sip_port)
    local = ("127.0.0.1", 5099)
    bad = _options(server, local, "TCP").replace(b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS")
    good = _options(server, local, "TCP")
    with socket.create_connection(target, timeout=5.0) as sock:
        sock.sendall(bad + good)
        answers = _read_responses(sock, 2)
    assert [a.status for a in answers] == [400, 200]


def test_tcp_without_content_length_gets_400_and_is_closed(server: Server) -> None:
    target = ("127.0.0.1", server.sip_port)
    data = _options(server, ("127.0.0.1", 5099), "TCP").replace(b"Content-Length: 0\r\n", b"")
    with socket.create_connection(target, timeout=5.0) as sock:
        sock.sendall(data)
        answers = _read_responses(sock, 1)
        assert [a.status for a in answers] == [400]
        assert sock.recv(100) == b"", "the connection is closed after a framing error"


def _read_responses(sock: socket.socket, n: int) -> list[rawsip.RawResponse]:
    buffer = b""
    answers = []
    while len(answers) < n:
        head, sep, rest = buffer.partition(b"\r\n\r\n")
        if sep:
            length = int(rawsip.parse_response(head + sep).get("Content-Length") or 0)
            if len(rest) >= length:
                answers.append(rawsip.parse_response(head + sep + rest[:length]))
                buffer = rest[length:]
                continue
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(answers)} answers"
        buffer += chunk
    return answers
