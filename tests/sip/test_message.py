"""Messages: parsing, framing (UDP and streams), serializing, responses (RFC 3261 §7, §18.3)."""

from __future__ import annotations

import random

import pytest

import telephony.sip.message as message_module
from telephony.sip._grammar import split_commas
from telephony.sip.errors import SipParseError
from telephony.sip.headers import (
    _CANONICAL_NAMES,
    COMPACT_FORMS,
    CSeq,
    Headers,
    Via,
    canonical_name,
    parse_contacts,
    parse_cseq,
    parse_via,
)
from telephony.sip.message import (
    MAX_HEAD_BYTES,
    MAX_MESSAGE_BYTES,
    Request,
    Response,
    StreamParser,
    parse_datagram,
    reason_phrase,
)
from telephony.sip.uri import SipURI, parse_name_addr, parse_uri

CRLF = "\r\n"


def wire(*lines: str, body: str | bytes = b"", length: int | None = None) -> bytes:
    """A message from header lines; Content-Length is added unless *length* is -1."""
    raw = body.encode() if isinstance(body, str) else body
    head = list(lines)
    if length != -1:
        head.append(f"Content-Length: {len(raw) if length is None else length}")
    return (CRLF.join(head) + CRLF + CRLF).encode() + raw


def register(*extra: str, body: str | bytes = b"", length: int | None = None) -> bytes:
    return wire(
        "REGISTER sip:example.test SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport",
        "Max-Forwards: 70",
        'From: "Alice" <sip:alice@example.test>;tag=1928301774',
        "To: <sip:alice@example.test>",
        "Call-ID: a84b4c76e66710@pc33.example.test",
        "CSeq: 314159 REGISTER",
        "Contact: <sip:alice@192.0.2.10:5060>;expires=3600",
        *extra,
        body=body,
        length=length,
    )


def request(data: bytes) -> Request:
    message = parse_datagram(data)
    assert isinstance(message, Request)
    return message


def response(data: bytes) -> Response:
    message = parse_datagram(data)
    assert isinstance(message, Response)
    return message


# -- parsing -------------------------------------------------------------------------


def test_register_fields() -> None:
    req = request(register())
    assert req.method == "REGISTER"
    assert isinstance(req.uri, SipURI)
    assert str(req.uri) == "sip:example.test"
    assert req.version == "SIP/2.0"
    assert req.call_id == "a84b4c76e66710@pc33.example.test"
    assert req.cseq == CSeq(314159, "REGISTER")
    assert req.top_via.branch == "z9hG4bK776asdhds"
    assert req.top_via.param("rport") == ""
    assert req.from_.tag == "1928301774"
    assert req.from_.display == "Alice"
    assert req.to.tag is None
    assert req.body == b""
    [contact] = parse_contacts(req.headers) or []
    assert contact.param("expires") == "3600"


def test_from_and_to_follow_their_text_and_survive_via_stamping() -> None:
    """The transport stamps the Via and calls invalidate() on every request: the TU's
    From and To must not be parsed again for that, and must follow real changes."""
    req = request(register())
    to, from_ = req.to, req.from_
    req.headers.replace_first("Via", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx;received=192.0.2.1")
    req.invalidate()
    assert req.to is to
    assert req.from_ is from_
    assert req.top_via.param("received") == "192.0.2.1"
    req.headers.set("From", "<sip:carol@example.test>;tag=9")  # no invalidate() needed
    assert req.from_.tag == "9"


def test_views_are_parsed_once_and_invalidated_on_request() -> None:
    req = request(register())
    assert req.to is req.to
    assert req.from_ is req.from_
    assert req.vias is req.vias
    req.headers.set("To", "<sip:bob@example.test>;tag=x")
    req.headers.replace_first("Via", "SIP/2.0/TCP 192.0.2.99;branch=z9hG4bKnew")
    req.invalidate()
    assert req.to.tag == "x"
    assert req.top_via.host == "192.0.2.99"


def test_header_names_are_case_insensitive_and_compact_forms_expand() -> None:
    req = request(
        wire(
            "OPTIONS sip:bob@example.test SIP/2.0",
            "v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKc1",
            "f: <sip:alice@example.test>;tag=1",
            "t: <sip:bob@example.test>",
            "i: compact@192.0.2.1",
            "CSEQ: 1 OPTIONS",
            "max-forwards: 70",
            "m: <sip:alice@192.0.2.1>",
            "k: path, gruu",
            "c: text/plain",
            "x-Custom: 1",
            body="hi",
            length=-1,
        )
        + b""
    )
    assert [name for name, _ in req.headers][:5] == ["Via", "From", "To", "Call-ID", "CSeq"]
    assert req.headers.get("CALL-id") == "compact@192.0.2.1"
    assert req.headers.get("Max-Forwards") == "70"
    assert req.headers.values("Supported") == ["path", "gruu"]
    assert req.headers.get("Content-Type") == "text/plain"
    assert req.headers.get("X-CUSTOM") == "1"
    assert "contact" in req.headers
    assert req.body == b"hi"  # no Content-Length on UDP: the rest of the datagram


@pytest.mark.parametrize(("short", "full"), sorted(COMPACT_FORMS.items()))
def test_every_compact_form_has_its_full_name(short: str, full: str) -> None:
    assert canonical_name(short) == full
    assert canonical_name(short.upper()) == full
    assert canonical_name(full.upper()) == full


@pytest.mark.parametrize("name", sorted(_CANONICAL_NAMES))
def test_every_known_header_is_found_in_any_case(name: str) -> None:
    """Known names are stored in one spelling and looked up by ==: any case must map to it."""
    headers = Headers([(name.upper(), "1"), (name.lower(), "2"), (name.swapcase(), "3")])
    assert headers.get_all(name) == ["1", "2", "3"]
    assert headers.get(name.lower()) == "1"
    assert name.upper() in headers


def test_folded_headers_are_unfolded() -> None:
    req = request(
        wire(
            "OPTIONS sip:bob@example.test SIP/2.0",
            "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKf1",
            "From: <sip:alice@example.test>",
            " ;tag=folded",
            "To: <sip:bob@example.test>",
            "Call-ID:",
            "\tfolded-from-empty",
            "CSeq: 1",
            "\t OPTIONS",
            "Subject: one",
            "   two",
            "\t\tthree",
        )
    )
    assert req.from_.tag == "folded"
    assert req.call_id == "folded-from-empty"
    assert req.cseq == CSeq(1, "OPTIONS")
    assert req.headers.get("Subject") == "one two three"
    again = request(req.to_bytes())
    assert again.call_id == "folded-from-empty"
    assert again.headers.get("Subject") == "one two three"


def test_empty_lines_before_the_start_line_are_ignored() -> None:
    """§7.5: a server should ignore CRLFs before the start line."""
    assert request(b"\r\n\r\n" + register()).method == "REGISTER"


def test_bare_lf_line_ends_are_tolerated() -> None:
    req = request(register(body=b"abc").replace(b"\r\n", b"\n"))
    assert req.body == b"abc"
    assert req.call_id == "a84b4c76e66710@pc33.example.test"


def test_bare_lf_head_whose_body_holds_a_crlf_blank_line() -> None:
    """The head ends at the first blank line, of whichever kind comes first."""
    body = b"line\r\n\r\nmore"
    data = register(body=body).replace(b"\r\n", b"\n").replace(b"line\n\nmore", body)
    assert request(data).body == body


def test_crlf_head_whose_body_holds_a_bare_lf_blank_line() -> None:
    body = b"a\n\nb"
    assert request(register(body=body)).body == body


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "Empty message"),
        (b"\r\n\r\n", "Empty message"),
        (b"REGISTER sip:example.test SIP/2.0\r\n Via: x\r\n\r\n", "folding"),
        (b"REGISTER sip:example.test SIP/2.0\r\nVia x\r\n\r\n", "Bad header line"),
        (b"REGISTER sip:example.test SIP/2.0\r\nV ia: x\r\n\r\n", "Bad header line"),
        (b"REGISTER sip:example.test SIP/2.0\r\n: x\r\n\r\n", "Bad header line"),
        (b"HELLO\r\n\r\n", "Bad start line"),
        (b"SIP/2.0 20 OK\r\n\r\n", "Bad start line"),
        (b"SIP/2.0 099 Low\r\n\r\n", "Bad status code"),
        (b"SIP/2.0 700 High\r\n\r\n", "Bad status code"),
        (b"SIP/2.0 4294967301 big\r\n\r\n", "Bad start line"),
        (b"REGISTER sip:example.test HTTP/1.1\r\n\r\n", "Bad start line"),
        (b"REGISTER sip:example.test SIP/\xd9\xa2.0\r\n\r\n", "Bad start line"),
        (b"SIP/2.0 \xd9\xa2\xd9\xa0\xd9\xa0 OK\r\n\r\n", "Bad start line"),
    ],
)
def test_unreadable_messages(data: bytes, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_datagram(data)
    assert reason in info.value.reason
    assert info.value.status_hint == 400
    assert info.value.request is None


def test_oversize_datagram_is_513() -> None:
    data = register(body=b"x" * MAX_MESSAGE_BYTES)
    with pytest.raises(SipParseError) as info:
        parse_datagram(data)
    assert info.value.status_hint == 513


# -- what a 400 can be built from ------------------------------------------------------


@pytest.mark.parametrize(
    ("remove", "add", "reason"),
    [
        ("From", None, "Missing From header"),
        ("To", None, "Missing To header"),
        ("Call-ID", None, "Missing Call-ID header"),
        ("CSeq", None, "Missing CSeq header"),
        (None, "CSeq: 2 REGISTER", "More than one CSeq header"),
        (None, "Call-ID: other", "More than one Call-ID header"),
        (None, "f: <sip:mallory@example.test>;tag=2", "More than one From header"),
        (None, "To: <sip:bob@example.test>", "More than one To header"),
        (None, "Max-Forwards: 5", "More than one Max-Forwards header"),
        (None, "l: 0", "More than one Content-Length header"),
    ],
)
def test_missing_and_repeated_headers_get_400_with_the_request(
    remove: str | None, add: str | None, reason: str
) -> None:
    lines = [line for line in register(length=-1).decode().split(CRLF) if line]
    if remove:
        lines = [line for line in lines if not line.startswith(remove + ":")]
    if add:
        lines.append(add)
    with pytest.raises(SipParseError) as info:
        parse_datagram(wire(*lines))
    assert info.value.reason == reason
    assert isinstance(info.value.request, Request)
    assert info.value.request.method == "REGISTER"


def test_repeated_list_headers_are_fine() -> None:
    req = request(register("Contact: <sip:alice@192.0.2.11>", "Via: SIP/2.0/UDP proxy;branch=z9"))
    assert len(parse_contacts(req.headers) or []) == 2
    assert [v.host for v in req.vias] == ["192.0.2.10", "proxy"]


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("CSeq: 314159 REGISTER", "CSeq: 314159 INVITE", "CSeq method does not match"),
        ("CSeq: 314159 REGISTER", "CSeq: 2147483648 REGISTER", "number above 2**31"),
        ("CSeq: 314159 REGISTER", "CSeq: REGISTER", "Bad CSeq header"),
        ("To: <sip:alice@example.test>", 'To: "Alice <sip:alice@example.test>', "quoted"),
        ("REGISTER sip:example.test SIP", "REGISTER <sip:example.test> SIP", "Bad URI"),
        ("REGISTER sip:example.test SIP", "REGISTER sip:example.test; lr SIP", "Request-URI"),
        ("REGISTER sip:example.test SIP", "REGISTER sip:example.test?a=b SIP", "URI headers"),
    ],
)
def test_bad_fields_get_400_with_the_request(old: str, new: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_datagram(register().replace(old.encode(), new.encode()))
    assert reason in info.value.reason
    assert isinstance(info.value.request, Request)


@pytest.mark.parametrize(
    "via",
    ["Via: SIP/2.0/UDP", "Via: SIP/2.0/UDP 192.0.2.10;;", "Via: HTTP/1.1 example.test"],
)
def test_no_request_attached_when_the_via_is_unreadable(via: str) -> None:
    """Without a top Via there is nowhere to send a response (§18.2.2)."""
    data = register().replace(
        b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport", via.encode()
    )
    with pytest.raises(SipParseError) as info:
        parse_datagram(data)
    assert info.value.request is None


def test_request_line_with_runs_of_spaces_is_accepted_and_written_back_clean() -> None:
    req = request(
        register().replace(
            b"REGISTER sip:example.test SIP/2.0", b"REGISTER  sip:example.test   SIP/2.0"
        )
    )
    assert req.to_bytes().startswith(b"REGISTER sip:example.test SIP/2.0\r\n")


def test_other_sip_versions_parse_for_the_tu_to_answer_505() -> None:
    req = request(
        register()
        .replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1)
        .replace(b"SIP/2.0/UDP", b"SIP/3.0/UDP")
    )
    assert req.version == "SIP/3.0"
    assert req.top_via.version == "3.0"
    assert str(req.top_via).startswith("SIP/3.0/UDP ")


# -- Content-Length on UDP --------------------------------------------------------------


def test_udp_body_longer_than_content_length_is_truncated() -> None:
    """§18.3: octets past Content-Length in a datagram are discarded."""
    assert request(register(body=b"abcdef", length=3)).body == b"abc"


def test_udp_body_shorter_than_content_length_is_400() -> None:
    with pytest.raises(SipParseError) as info:
        parse_datagram(register(body=b"abc", length=10))
    assert info.value.reason == "Body shorter than Content-Length"
    assert isinstance(info.value.request, Request)


def test_short_response_body_is_an_error_without_request() -> None:
    data = wire(
        "SIP/2.0 200 OK",
        "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKr",
        "From: <sip:a@example.test>;tag=1",
        "To: <sip:a@example.test>;tag=2",
        "Call-ID: r",
        "CSeq: 1 OPTIONS",
        body=b"ab",
        length=5,
    )
    with pytest.raises(SipParseError) as info:
        parse_datagram(data)
    assert info.value.request is None


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "+3", "\u00b2", "\u0663", "1234567890", ""])
def test_bad_content_length_is_400(value: str) -> None:
    data = register(length=-1).replace(b"\r\n\r\n", f"\r\nContent-Length: {value}\r\n\r\n".encode())
    with pytest.raises(SipParseError) as info:
        parse_datagram(data)
    assert "Content-Length" in info.value.reason
    assert isinstance(info.value.request, Request)


# -- Via, CSeq, commas -----------------------------------------------------------------------


def test_via_fields() -> None:
    via = parse_via(
        "SIP/2.0/UDP pc33.example.test:5066;branch=z9hG4bK776;received=192.0.2.4;rport=61000"
    )
    assert (via.transport, via.host, via.port) == ("UDP", "pc33.example.test", 5066)
    assert via.branch == "z9hG4bK776"
    assert via.param("received") == "192.0.2.4"
    assert via.param("rport") == "61000"
    assert via.param("RPORT") == "61000"
    assert via.param("maddr") is None


def test_via_rport_flag_and_stamping() -> None:
    """RFC 3581: a bare ;rport is a request to fill in the source port."""
    via = parse_via("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa;rport")
    assert via.param("rport") == ""
    stamped = via.with_params(rport="40000", received="192.0.2.99")
    assert str(stamped) == "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa;rport=40000;received=192.0.2.99"
    assert parse_via(str(stamped)) == stamped


def test_via_ipv6_sent_by_and_received() -> None:
    """RFC 5118 §4.5: a bracketed sent-by; received holds the bare address."""
    via = parse_via("SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKas3;received=2001:db8::9:255")
    assert (via.host, via.port) == ("[2001:db8::9:1]", 5070)
    assert via.param("received") == "2001:db8::9:255"


def test_via_without_branch_is_rfc2543() -> None:
    via = parse_via("SIP/2.0/UDP iftgw.example.com")
    assert via.branch is None
    assert via.port is None
    assert via.version == "2.0"


def test_via_with_lws_everywhere() -> None:
    via = parse_via("SIP  /   2.0 /udp   host.example.com  ;  branch =  z9hG4bKx ;rport")
    assert (via.transport, via.host, via.branch) == ("UDP", "host.example.com", "z9hG4bKx")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP host:0",
        "SIP/2.0/UDP host:70000",
        "SIP/2.0/UDP [::1",
        "SIP/2.0/UDP host;",
        "SIP/2.0/UDP host;branch=a;;",
        "SIP/UDP host",
        "SIP/2.0/UDP ho st",
    ],
)
def test_bad_vias(value: str) -> None:
    with pytest.raises(SipParseError):
        parse_via(value)


def test_several_vias_on_one_line_and_over_lines() -> None:
    headers = Headers(
        [
            ("Via", "SIP/2.0/UDP a.example;branch=z9hG4bK1, SIP/2.0/TCP b.example;branch=z9hG4bK2"),
            ("v", "SIP/2.0/TLS c.example;branch=z9hG4bK3"),
        ]
    )
    assert [parse_via(v).host for v in headers.values("Via")] == [
        "a.example",
        "b.example",
        "c.example",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0 INVITE", CSeq(0, "INVITE")),
        ("2147483647 INVITE", CSeq(2**31 - 1, "INVITE")),
        ("0009\r\n  INVITE".replace("\r\n", ""), CSeq(9, "INVITE")),
        ("  7\tACK  ", CSeq(7, "ACK")),
        (
            "1 !interesting-Method0123456789_*+`.%indeed'~",
            CSeq(1, "!interesting-Method0123456789_*+`.%indeed'~"),
        ),
    ],
)
def test_cseq_limits(value: str, expected: CSeq) -> None:
    assert parse_cseq(value) == expected
    assert parse_cseq(str(expected)) == expected


@pytest.mark.parametrize(
    "value",
    [
        "2147483648 INVITE",
        "36893488147419103232 REGISTER",
        "9" * 5000 + " INVITE",
        "-1 INVITE",
        "\u00b2 INVITE",
        "\u0661 INVITE",
        "1",
        "INVITE",
        "1 INVITE extra",
        "1 INV@TE",
        "0x10 INVITE",
    ],
)
def test_bad_cseqs(value: str) -> None:
    with pytest.raises(SipParseError):
        parse_cseq(value)


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("a, b,c", ["a", "b", "c"]),
        ('"Doe, John" <sip:j@x>, <sip:k@x>', ['"Doe, John" <sip:j@x>', "<sip:k@x>"]),
        ("<sip:a@x;p=1,2>, <sip:b@x>", ["<sip:a@x;p=1,2>", "<sip:b@x>"]),
        ('"a \\" , b" <sip:a@x>', ['"a \\" , b" <sip:a@x>']),
        ("single", ["single"]),
        ("", []),
        (" , ,a,, ", ["a"]),
        ('Digest realm="a,b", nonce="c"', ['Digest realm="a,b"', 'nonce="c"']),
        ("a>b, c", ["a>b", "c"]),
    ],
)
def test_comma_splitting_respects_quotes_and_brackets(value: str, parts: list[str]) -> None:
    assert split_commas(value) == parts


def test_contacts_wildcard_and_lists() -> None:
    assert parse_contacts(Headers([("Contact", "*")])) is None
    with pytest.raises(SipParseError):
        parse_contacts(Headers([("Contact", "*"), ("Contact", "<sip:a@x>")]))
    contacts = parse_contacts(
        Headers([("m", '"A, B" <sip:a@x>;q=0.5, sip:b@y;expires=60'), ("Contact", "<sip:c@z>")])
    )
    assert contacts is not None
    assert [str(c.uri) for c in contacts] == ["sip:a@x", "sip:b@y", "sip:c@z"]
    assert contacts[0].display == "A, B"
    assert contacts[1].param("expires") == "60"


# -- responses ---------------------------------------------------------------------------


def test_response_for_request_copies_what_8_2_6_2_says() -> None:
    req = request(register("Via: SIP/2.0/UDP proxy.example.test;branch=z9hG4bKp2", "Timestamp: 54"))
    resp = Response.for_request(req, 200, to_tag="t0")
    assert resp.headers.get_all("Via") == req.headers.get_all("Via")
    for name in ("From", "Call-ID", "CSeq"):
        assert resp.headers.get(name) == req.headers.get(name)
    assert resp.to.tag == "t0"
    assert str(resp.to.uri) == "sip:alice@example.test"
    assert resp.reason == "OK"
    assert "Timestamp" not in resp.headers
    assert "Contact" not in resp.headers
    again = response(resp.to_bytes())
    assert (again.status, again.reason, again.call_id, again.cseq) == (
        200,
        "OK",
        req.call_id,
        req.cseq,
    )
    assert again.headers.get("Content-Length") == "0"


def test_100_trying_gets_no_to_tag_but_the_timestamp() -> None:
    """§8.2.6.1: a 100 copies Timestamp; §8.2.6.2: no To tag on a 100."""
    req = request(register("Timestamp: 54"))
    trying = Response.for_request(req, 100, to_tag="t0")
    assert trying.to.tag is None
    assert trying.headers.get("Timestamp") == "54"
    assert trying.reason == "Trying"


@pytest.mark.parametrize(
    "to",
    [
        "<sip:alice@example.test>;tag=abc",
        "<sip:alice@example.test> ; TAG = abc",
        "<sip:alice@example.test>;\ttag=abc",
        "sip:alice@example.test;tag=abc",
    ],
)
def test_existing_to_tag_is_kept(to: str) -> None:
    req = request(register().replace(b"To: <sip:alice@example.test>", f"To: {to}".encode()))
    resp = Response.for_request(req, 481, to_tag="new")
    assert resp.to.tag == "abc"
    assert resp.headers.get("To") == to


def test_to_tag_is_not_fooled_by_a_display_name() -> None:
    req = request(
        register().replace(
            b"To: <sip:alice@example.test>", b'To: "x;tag=y" <sip:alice@example.test>'
        )
    )
    assert Response.for_request(req, 200, to_tag="new").to.tag == "new"


def test_for_request_of_an_unreadable_request() -> None:
    """The transport answers 400 to what it could read; that must not raise."""
    with pytest.raises(SipParseError) as info:
        parse_datagram(
            register().replace(b"To: <sip:alice@example.test>", b'To: "unterminated <sip:a@x>')
        )
    bad = info.value.request
    assert isinstance(bad, Request)
    resp = Response.for_request(bad, 400, info.value.reason, to_tag="t1")
    assert resp.headers.get("To") == '"unterminated <sip:a@x>;tag=t1'
    assert resp.to_bytes().startswith(b"SIP/2.0 400 Bad display name")


def test_reason_phrases() -> None:
    assert reason_phrase(423) == "Interval Too Brief"
    assert reason_phrase(499) == "Bad Request"
    assert reason_phrase(299) == "OK"
    assert reason_phrase(799) == "Unknown"


# -- to_bytes round trips ------------------------------------------------------------------


def test_request_round_trip_is_stable() -> None:
    original = register(body=b"v=0\r\n")
    req = request(original)
    assert req.to_bytes() == original
    assert request(req.to_bytes()).to_bytes() == original


def test_to_bytes_writes_full_names_unfolded_and_a_correct_length() -> None:
    req = request(
        wire(
            "MESSAGE sip:bob@example.test SIP/2.0",
            "v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKm",
            "f: <sip:alice@example.test>;tag=1",
            "t: <sip:bob@example.test>",
            "i: m1",
            "CSeq: 1",
            " MESSAGE",
            body="hello",
            length=99,
        ).replace(b"Content-Length: 99", b"l: 5")
    )
    req.body = b"changed body"
    data = req.to_bytes()
    assert b"\r\nVia: SIP/2.0/UDP" in data
    assert b"\r\nCall-ID: m1\r\n" in data
    assert b"\r\nCSeq: 1 MESSAGE\r\n" in data
    assert b"\r\nContent-Length: 12\r\n\r\nchanged body" in data
    assert b"\r\nl:" not in data


def test_built_request_serializes_and_parses() -> None:
    headers = Headers()
    headers.add("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKbuilt;rport")
    headers.add("Max-Forwards", "70")
    headers.add("From", "<sip:server@example.test>;tag=s1")
    headers.add("To", "<sip:bob@10.0.0.1>")
    headers.add("Call-ID", "built-1")
    headers.add("CSeq", "1 OPTIONS")
    built = Request("OPTIONS", parse_uri("sip:bob@[2001:db8::1]:5070;transport=tcp"), headers)
    again = request(built.to_bytes())
    assert str(again.uri) == "sip:bob@[2001:db8::1]:5070;transport=tcp"
    assert again.cseq == CSeq(1, "OPTIONS")


# -- streams ---------------------------------------------------------------------------------


def _stream_messages() -> list[bytes]:
    invite_body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n\r\nnot a header: x\r\n"
    return [
        register(),
        wire(
            "INVITE sip:bob@example.test SIP/2.0",
            "Via: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKi1",
            "From: <sip:alice@example.test>;tag=1",
            "To: <sip:bob@example.test>",
            "Call-ID: inv-1",
            "CSeq: 1 INVITE",
            "Content-Type: application/sdp",
            body=invite_body,
        ),
        register().replace(b"314159", b"314160"),
    ]


def _summary(items: list[Request | Response | SipParseError]) -> list[tuple[str, object, bytes]]:
    out: list[tuple[str, object, bytes]] = []
    for item in items:
        if isinstance(item, SipParseError):
            out.append(("error", item.reason, b""))
        else:
            out.append((item.call_id, item.cseq, item.body))
    return out


def _feed_in_pieces(
    data: bytes, cuts: list[int]
) -> tuple[list[Request | Response | SipParseError], StreamParser]:
    parser = StreamParser()
    items: list[Request | Response | SipParseError] = []
    start = 0
    for cut in [*cuts, len(data)]:
        items.extend(parser.feed(data[start:cut]))
        start = cut
    return items, parser


def test_stream_whole_then_byte_by_byte_then_random_chunks() -> None:
    data = b"\r\n\r\n".join(_stream_messages()) + b"\r\n"  # with keep-alives between
    whole, parser = _feed_in_pieces(data, [])
    assert not parser.failed
    assert [m.call_id for m in whole if not isinstance(m, SipParseError)] == [
        "a84b4c76e66710@pc33.example.test",
        "inv-1",
        "a84b4c76e66710@pc33.example.test",
    ]
    byte_by_byte, _ = _feed_in_pieces(data, list(range(1, len(data))))
    assert _summary(byte_by_byte) == _summary(whole)
    rng = random.Random(4475)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 12)))
        chunked, _ = _feed_in_pieces(data, cuts)
        assert _summary(chunked) == _summary(whole)


def test_stream_keep_alives_alone_yield_nothing() -> None:
    parser = StreamParser()
    for piece in (b"\r\n", b"\r\n\r\n", b"\r", b"\n", b"\n"):
        assert parser.feed(piece) == []
    assert not parser.failed
    assert _summary(parser.feed(register())) == _summary([request(register())])


def test_stream_message_needs_content_length() -> None:
    parser = StreamParser()
    [error] = parser.feed(register(length=-1))
    assert isinstance(error, SipParseError)
    assert "Missing Content-Length" in error.reason
    assert isinstance(error.request, Request)
    assert parser.failed
    assert parser.feed(register()) == []


def test_stream_bad_content_length_fails_the_stream() -> None:
    parser = StreamParser()
    [error] = parser.feed(register(length=-1).replace(b"\r\n\r\n", b"\r\nl: -999\r\n\r\n"))
    assert isinstance(error, SipParseError)
    assert parser.failed


def test_stream_waits_for_a_body_that_is_not_there_yet() -> None:
    """RFC 4475 §3.1.2.2: on a stream, a long Content-Length just means waiting."""
    parser = StreamParser()
    assert parser.feed(register(body=b"abc", length=10)) == []
    assert not parser.failed
    [message] = parser.feed(b"defghij")
    assert isinstance(message, Request)
    assert message.body == b"abcdefghij"


def test_stream_malformed_message_does_not_stop_the_stream() -> None:
    bad = register().replace(b"CSeq: 314159 REGISTER", b"CSeq: x REGISTER")
    items = StreamParser().feed(bad + register())
    assert isinstance(items[0], SipParseError)
    assert isinstance(items[0].request, Request)
    assert isinstance(items[1], Request)


def test_stream_oversize_message_is_513_in_any_chunking() -> None:
    data = register(body=b"x" * MAX_MESSAGE_BYTES)
    for cuts in ([], list(range(1, 2000)), [500, 70000]):
        items, parser = _feed_in_pieces(data, cuts)
        assert parser.failed
        [error] = items
        assert isinstance(error, SipParseError)
        assert error.status_hint == 513
        assert isinstance(error.request, Request)


@pytest.mark.parametrize("pad", [MAX_HEAD_BYTES - 600, MAX_HEAD_BYTES + 10])
def test_stream_head_limit_does_not_depend_on_chunking(pad: int) -> None:
    data = register("X-Pad: " + "p" * pad)
    outcomes = set()
    for cuts in ([], list(range(1, len(data))), [MAX_HEAD_BYTES - 1, MAX_HEAD_BYTES + 1]):
        items, parser = _feed_in_pieces(data, cuts)
        outcomes.add((parser.failed, tuple(_summary(items))))
    assert len(outcomes) == 1
    failed, _ = outcomes.pop()
    assert failed == (len(data) - 4 > MAX_HEAD_BYTES - 4)


def test_stream_reads_both_messages_of_dblreq() -> None:
    """On a stream, the INVITE that rides in dblreq's datagram is a message of its own."""
    with open(__file__.replace("test_message.py", "rfc4475/dblreq.dat"), "rb") as f:
        data = f.read()
    items = StreamParser().feed(data)
    assert [m.method for m in items if isinstance(m, Request)] == ["REGISTER", "INVITE"]


def test_a_slow_stream_costs_no_more_than_a_fast_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each byte is searched once and the head parsed once, however the bytes arrive."""
    data = register("X-Pad: " + "p" * 8000, body=b"b" * 40000)
    heads: list[bytes] = []
    real = message_module._split_head

    def counting(head: bytes) -> object:
        heads.append(head)
        return real(head)

    monkeypatch.setattr(message_module, "_split_head", counting)
    parser = StreamParser()
    items = [item for i in range(len(data)) for item in parser.feed(data[i : i + 1])]
    assert len(heads) == 1
    assert [m.body[:1] for m in items if isinstance(m, Request)] == [b"b"]


def test_via_value_object_round_trip() -> None:
    via = Via("TCP", "[2001:db8::1]", 5061, (("branch", "z9hG4bK1"), ("rport", None)))
    assert parse_via(str(via)) == via


def test_response_for_request_shares_the_parsed_views_of_the_copied_lines() -> None:
    """The response reuses the request's parsed Via, CSeq and From: same text, same views."""
    req = parse_datagram(
        b"REGISTER sip:example.test SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1,"
        b" SIP/2.0/TCP proxy.test;branch=z9hG4bKb\r\n"
        b"From: <sip:alice@example.test>;tag=1\r\nTo: <sip:alice@example.test>\r\n"
        b"Call-ID: c1\r\nCSeq: 7 REGISTER\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(req, Request)
    resp = Response.for_request(req, 200, to_tag="t9")
    assert [str(v) for v in resp.vias] == [str(parse_via(v)) for v in resp.headers.values("Via")]
    assert resp.vias is not req.vias
    assert resp.cseq == parse_cseq(resp.headers.get("CSeq") or "")
    assert resp.from_ == parse_name_addr(resp.headers.get("From") or "")
    assert resp.to.tag == "t9"
    assert [k for k, _ in resp.headers] == ["Via", "From", "To", "Call-ID", "CSeq"]
