"""RFC 4475 (SIP Torture Test Messages), message by message.

The messages are in ``rfc4475/`` as exact bytes (see its README).  For each one this
file says what our server does with it, following the RFC's notes:

- valid messages (§3.1.1) parse, with the fields the RFC exercises read right;
- invalid ones the RFC says to reject (§3.1.2, §3.3) raise :class:`SipParseError` with
  status 400, carrying the request when a response can be routed (its top Via reads),
  so the transport answers 400; responses and unroutable requests are dropped;
- where the RFC lets a robust element accept (lwsstart, trws, baddate, badaspec) we do;
- where the RFC expects another status (505 badvers, 416 unkscm, 420 bext01, 415
  invut...), that is the TU's answer, not the parser's: the message parses and the
  test checks the fields the TU needs for it.

Every message is also fed to :class:`StreamParser` whole and byte by byte: the parser
may only ever raise or return :class:`SipParseError`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from telephony.sip.errors import SipParseError
from telephony.sip.headers import CSeq, parse_contacts
from telephony.sip.message import Request, Response, StreamParser, parse_datagram
from telephony.sip.uri import AbsoluteURI, SipURI, parse_uri

DATA = Path(__file__).parent / "rfc4475"
ALL = sorted(path.stem for path in DATA.glob("*.dat"))


def load(name: str) -> bytes:
    return (DATA / f"{name}.dat").read_bytes()


def parse(name: str) -> Request | Response:
    """Parse a message as a UDP datagram, and check a stream reads it the same way."""
    data = load(name)
    message = parse_datagram(data)
    if message.headers.get("Content-Length") is not None:
        items = StreamParser().feed(data)
        assert items, "the stream parser framed nothing"
        first = items[0]
        assert not isinstance(first, SipParseError), first.reason
        assert first.to_bytes() == message.to_bytes()
    return message


def parse_request(name: str) -> Request:
    message = parse(name)
    assert isinstance(message, Request)
    return message


def parse_response(name: str) -> Response:
    message = parse(name)
    assert isinstance(message, Response)
    return message


def rejected(name: str) -> SipParseError:
    with pytest.raises(SipParseError) as info:
        parse_datagram(load(name))
    return info.value


SDP_BODY = (
    b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
    b"t=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n"
)


def test_the_archive_is_complete() -> None:
    """§3.1.1 (13), §3.1.2 (19), §3.2 (1), §3.3 (15), §3.4 (1) messages."""
    assert len(ALL) == 49


def _outcome(items: list[Request | Response | SipParseError]) -> list[object]:
    return [i.reason if isinstance(i, SipParseError) else i.to_bytes() for i in items]


@pytest.mark.parametrize("name", ALL)
def test_parser_raises_nothing_but_sip_parse_error(name: str) -> None:
    data = load(name)
    with contextlib.suppress(SipParseError):
        parse_datagram(data)
    whole = StreamParser().feed(data)
    parser = StreamParser()
    pieces = [item for i in range(len(data)) for item in parser.feed(data[i : i + 1])]
    assert _outcome(pieces) == _outcome(whole)


@pytest.mark.parametrize("name", ALL)
def test_what_parses_serializes_and_parses_again(name: str) -> None:
    try:
        message = parse_datagram(load(name))
    except SipParseError:
        return
    again = parse_datagram(message.to_bytes())
    assert type(again) is type(message)
    assert again.call_id == message.call_id
    assert again.cseq == message.cseq
    assert again.body == message.body
    assert again.to_bytes() == message.to_bytes()


# -- §3.1.1 valid messages ----------------------------------------------------------------


def test_wsinv_short_tortuous_invite() -> None:
    """§3.1.1.1: folding, odd LWS and case, escaped quotes, compact forms, unknown headers."""
    req = parse_request("wsinv")
    assert req.method == "INVITE"
    assert str(req.uri) == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    assert req.to.tag == "1918181833n"
    assert str(req.to.uri) == "sip:vivekg@chair-dnrc.example.com"
    assert req.from_.display == 'J Rosenberg \\"'
    assert req.from_.tag == "98asjd8"
    assert req.headers.get("Max-Forwards") == "0068"
    assert req.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert req.cseq == CSeq(9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in req.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert req.headers.get("Subject") == ""
    assert req.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert req.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert req.headers.get("Route") == (
        "<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"
    )
    [contact] = parse_contacts(req.headers) or []
    assert contact.display == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert len(req.body) == 150
    assert req.body.startswith(b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\n")


def test_intmeth_wide_range_of_valid_characters() -> None:
    """§3.1.1.2: an extension method, odd URIs, escaped controls in a quoted string, UTF-8."""
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    req = parse_request("intmeth")
    assert req.method == method
    assert req.cseq == CSeq(139122385, method)
    assert isinstance(req.uri, SipURI)
    assert req.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert req.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert req.uri.host == "example.com"
    assert req.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert req.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert isinstance(req.to.uri, SipURI)
    assert req.to.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert req.from_.display == "token1~` token2'+_ token3*%!.-"
    assert req.from_.params == (
        ("fromParam''~+*_!.-%", '"работающий"'),
        ("tag", "_token~1'+`*%!-."),
    )
    assert req.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert req.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    assert req.body == b""


def test_esc01_valid_use_of_escapes() -> None:
    """§3.1.1.3: escapes are kept; the URIs equal their unescaped forms where §19.1.4 says."""
    req = parse_request("esc01")
    assert isinstance(req.uri, SipURI)
    assert req.uri.user == "sips%3Auser%40example.com"
    assert req.uri.user_unescaped == "sips:user@example.com"
    assert req.uri.host == "example.net"
    assert isinstance(req.to.uri, SipURI)
    assert req.to.uri.aor() == "sip:user@example.com"
    assert isinstance(req.from_.uri, SipURI)
    assert req.from_.uri.user_unescaped == "I have spaces"
    assert req.call_id == "esc01.239409asdfakjkn23onasd0-3234"
    assert req.headers.get("Content-Type") == "application/sdp"
    [contact] = parse_contacts(req.headers) or []
    assert isinstance(contact.uri, SipURI)
    assert contact.uri.params == (("%6C%72", None), ("n%61me", "v%61lue%25%34%31"))
    # Escaped unreserved characters equal themselves (§19.1.4); "%25" is an escaped "%",
    # which is not unreserved, so it stays an escape and "%34%31" become "41".
    assert contact.uri == parse_uri("sip:caller@host5.example.net;lr;name=value%2541")
    assert contact.uri != parse_uri("sip:caller@host5.example.net;lr;name=valueA")
    assert len(req.body) == 150


def test_escnull_escaped_nuls() -> None:
    """§3.1.1.4: %00 is legal; the two contacts are different."""
    req = parse_request("escnull")
    assert isinstance(req.to.uri, SipURI)
    assert req.to.uri.aor() == "sip:null-\x00-null@example.com"
    one, two = parse_contacts(req.headers) or []
    assert isinstance(one.uri, SipURI)
    assert isinstance(two.uri, SipURI)
    assert (one.uri.user, two.uri.user) == ("%00", "%00%00")
    assert one.uri != two.uri


def test_esc02_percent_that_is_not_an_escape() -> None:
    """§3.1.1.5: RE%47IST%45R is an unknown method, not REGISTER; C%6Fntact no Contact."""
    req = parse_request("esc02")
    assert req.method == "RE%47IST%45R"
    assert req.cseq == CSeq(29344, "RE%47IST%45R")
    assert req.to.display == "%Z%45"
    assert req.top_via.branch == "z9hG4bK209%fzsnel234"
    contacts = parse_contacts(req.headers) or []
    assert [str(c.uri) for c in contacts] == [
        "sip:alias1@host1.example.com",
        "sip:alias3@host3.example.com",
    ]
    assert req.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_no_lws_between_display_name_and_bracket() -> None:
    """§3.1.1.6."""
    req = parse_request("lwsdisp")
    assert req.from_.display == "caller"
    assert req.from_.tag == "323"


def test_longreq_long_values() -> None:
    """§3.1.1.7: long values, 34 Vias under every spelling of Via and v."""
    req = parse_request("longreq")
    assert req.to.display == "I have a user name of " + "extreme" * 10 + " proportion"
    assert isinstance(req.to.uri, SipURI)
    assert req.to.uri.port == 6000
    assert req.to.uri.param("unknownparam1") == "very" + "long" * 20 + "value"
    assert req.to.uri.param("very" + "long" * 25 + "ParameterNameWithNoValue") == ""
    assert req.from_.tag == "12" + "982" * 50 + "424"
    assert req.call_id == "longreq.one" + "really" * 20 + "longcallid"
    assert len(req.vias) == 34
    assert [v.host for v in req.vias[:3]] == [
        "sip33.example.com",
        "sip32.example.com",
        "sip31.example.com",
    ]
    assert req.top_via.branch is None
    assert req.vias[-1].param("received") == "192.0.2.5"
    assert req.vias[-1].branch == "very" + "long" * 50 + "branchvalue"
    assert len(req.body) == 150


def test_dblreq_extra_octets_in_a_datagram() -> None:
    """§3.1.1.8: Content-Length 0, so the INVITE after the REGISTER is ignored (UDP)."""
    req = parse_request("dblreq")
    assert req.method == "REGISTER"
    assert req.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    assert req.body == b""
    [contact] = parse_contacts(req.headers) or []
    assert str(contact.uri) == "sip:j.user@host.example.com"


def test_semiuri_semicolon_in_user_part() -> None:
    """§3.1.1.9: ';par=...' is part of the user, not a URI parameter."""
    req = parse_request("semiuri")
    assert isinstance(req.uri, SipURI)
    assert req.uri.user == "user;par=u%40example.net"
    assert req.uri.host == "example.com"
    assert req.uri.params == ()
    assert req.headers.values("Accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def test_transports_varied_and_unknown() -> None:
    """§3.1.1.10."""
    req = parse_request("transports")
    assert req.call_id == "transports.kijh4akdnaqjkwendsasfdj"
    assert [(v.transport, v.host) for v in req.vias] == [
        ("UDP", "t1.example.com"),
        ("SCTP", "t2.example.com"),
        ("TLS", "t3.example.com"),
        ("UNKNOWN", "t4.example.com"),
        ("TCP", "t5.example.com"),
    ]


def test_mpart01_multipart_with_binary_body() -> None:
    """§3.1.1.11: the body is bytes, kept exactly, CRLFCRLF and all."""
    req = parse_request("mpart01")
    assert req.method == "MESSAGE"
    assert req.top_via.param("rport") == ""
    assert req.top_via.port == 5070
    assert req.headers.get("Content-Type") == "multipart/mixed;boundary=7a9cbec02ceef655"
    assert len(req.body) == 553
    assert req.body.startswith(b"--7a9cbec02ceef655\r\nContent-Type: text/plain\r\n")
    assert req.body.endswith(b"\r\n--7a9cbec02ceef655--\r\n")
    assert b"\x30\x82\x01\x52\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02" in req.body


def test_unreason_unusual_reason_phrase() -> None:
    """§3.1.1.12: a UTF-8 reason phrase."""
    resp = parse_response("unreason")
    assert resp.status == 200
    assert resp.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    assert resp.cseq == CSeq(35, "INVITE")
    assert resp.to.tag == "2229"
    assert len(resp.body) == 154


def test_noreason_empty_reason_phrase() -> None:
    """§3.1.1.13."""
    resp = parse_response("noreason")
    assert (resp.status, resp.reason) == (100, "")
    assert resp.to_bytes().startswith(b"SIP/2.0 100 \r\n")


# -- §3.1.2 invalid messages -----------------------------------------------------------------

#: What the server does with each invalid message, from the RFC's notes:
#: "400": SipParseError with the request attached, so the transport answers 400.
#: "drop": SipParseError without a request: a response, or nowhere to answer.
REJECTED = {
    # §3.1.2.1: "should respond with 400".  The malformed field is the top Via itself,
    # so there is no address to answer to: logged and dropped.
    "badinv01": ("drop", "Bad Via parameter"),
    # §3.1.2.2: over UDP "should respond with 400" (a stream would wait: see below).
    "clerr": ("400", "Body shorter than Content-Length"),
    # §3.1.2.3: "should respond with an error"; a stream is closed (below).
    "ncl": ("400", "Bad Content-Length header"),
    # §3.1.2.4: "should respond with 400 due to the CSeq error".
    "scalar02": ("400", "Bad CSeq header: number above 2**31"),
    # §3.1.2.5: a response with scalar fields overflowing: drop it.
    "scalarlg": ("drop", "Bad CSeq header: number above 2**31"),
    # §3.1.2.6: "should return a 400"; we do not guess where the quote ends.
    "quotbal": ("400", "Bad display name: unterminated quoted string"),
    # §3.1.2.7: "<>" around the Request-URI: 400.
    "ltgtruri": ("400", "Bad URI"),
    # §3.1.2.8: LWS inside the Request-URI: "should respond with 400".
    "lwsruri": ("400", "Bad Request-URI: whitespace inside it"),
    # §3.1.2.11: escaped headers in the Request-URI: "acceptable to reject with 400";
    # we do, so they can never be forwarded (§19.1.1 forbids them there).
    "escruri": ("400", "Bad Request-URI: it carries URI headers"),
    # §3.1.2.15: unquoted non-token display names: "reasonable always to reject".
    "baddn": ("400", "Bad display name"),
    # §3.1.2.17: CSeq method differs from the request's: 400.
    "mismatch01": ("400", "CSeq method does not match the request method"),
    # §3.1.2.18: unknown method and a mismatching CSeq: 501 preferred, "400 also
    # acceptable"; the parser cannot tell them apart from mismatch01, so 400.
    "mismatch02": ("400", "CSeq method does not match the request method"),
    # §3.1.2.19: response code above 699: "should simply drop it".
    "bigcode": ("drop", "Bad start line"),
    # §3.3.1: From, To, Call-ID missing: "ideally respond with 400".
    "insuf": ("400", "Missing From header"),
    # §3.3.8: several values in single-value fields: 400.
    "multi01": ("400", "More than one Max-Forwards header"),
    # §3.3.9: two Content-Length: 400 over UDP (a stream is closed, below).
    "mcl01": ("400", "More than one Content-Length header"),
}


@pytest.mark.parametrize(("name", "action", "reason"), [(k, *v) for k, v in REJECTED.items()])
def test_invalid_messages_are_rejected(name: str, action: str, reason: str) -> None:
    error = rejected(name)
    assert error.status_hint == 400
    assert error.reason.startswith(reason)
    if action == "400":
        assert isinstance(error.request, Request)
        assert error.request.call_id.startswith(name) or name == "insuf"
        assert error.request.top_via.host  # where the 400 goes
    else:
        assert error.request is None


def test_clerr_on_a_stream_waits_for_the_rest() -> None:
    """§3.1.2.2: over TCP 'not much the receiving party could do but wait'."""
    parser = StreamParser()
    assert parser.feed(load("clerr")) == []
    assert not parser.failed


@pytest.mark.parametrize("name", ["ncl", "mcl01"])
def test_unframeable_stream_is_closed(name: str) -> None:
    """§3.1.2.3, §3.3.9: the framing error is not recoverable; the connection closes."""
    parser = StreamParser()
    [error] = parser.feed(load(name))
    assert isinstance(error, SipParseError)
    assert isinstance(error.request, Request)
    assert parser.failed


def test_lwsstart_multiple_spaces_in_the_request_line() -> None:
    """§3.1.2.9: "an element that is liberal ... may ignore these extra SP"; we do, and
    never send them on."""
    req = parse_request("lwsstart")
    assert (req.method, str(req.uri), req.version) == ("INVITE", "sip:user@example.com", "SIP/2.0")
    assert req.to_bytes().startswith(b"INVITE sip:user@example.com SIP/2.0\r\n")


def test_trws_trailing_spaces_in_the_request_line() -> None:
    """§3.1.2.10: likewise accepted, and written back without them."""
    req = parse_request("trws")
    assert req.version == "SIP/2.0"
    assert req.to_bytes().startswith(b"OPTIONS sip:remote-target@example.com SIP/2.0\r\n")
    assert req.top_via.host == "host1.examle.com"  # sic, in the RFC


def test_baddate_is_accepted_the_date_is_not_ours_to_read() -> None:
    """§3.1.2.12: a non-GMT Date; we do not use Date, so the request is processed."""
    req = parse_request("baddate")
    assert req.headers.get("Date") == "Fri, 01 Jan 2010 16:00:00 EST"


def test_regbadct_unbracketed_contact_with_headers_is_refused_by_the_registrar() -> None:
    """§3.1.2.13: 'reasonable to respond with 400'.  Contact is the registrar's to read:
    parse_contacts raises SipParseError, which it answers with 400."""
    req = parse_request("regbadct")
    with pytest.raises(SipParseError, match="needs <brackets>"):
        parse_contacts(req.headers)


def test_badaspec_spaces_inside_the_brackets_are_ignored() -> None:
    """§3.1.2.14: 'Elements attempting to be liberal may ignore the spaces.'"""
    req = parse_request("badaspec")
    assert req.to.display == "Watson, Thomas"
    assert str(req.to.uri) == "sip:t.watson@example.org"
    assert req.from_.display == "Bell, Alexander"


def test_badvers_parses_for_the_tu_to_answer_505() -> None:
    """§3.1.2.16: 505 Version Not Supported is the TU's answer: it needs the version and
    a readable Via to send it to."""
    req = parse_request("badvers")
    assert req.version == "SIP/7.0"
    assert req.top_via.version == "7.0"
    assert req.top_via.host == "c.example.com"
    assert req.call_id == "badvers.31417@c.example.com"


# -- §3.2 transaction layer -----------------------------------------------------------------


def test_badbranch_magic_cookie_alone() -> None:
    """§3.2.1: 'z9hG4bK' with nothing after it.  The transaction layer must match it the
    RFC 2543 way; the parser hands the branch over as is."""
    req = parse_request("badbranch")
    assert req.top_via.branch == "z9hG4bK"


# -- §3.3 application layer ------------------------------------------------------------------


def test_unkscm_unknown_request_uri_scheme_is_the_tus_416() -> None:
    """§3.3.2: 416 Unsupported URI Scheme, from the TU: the URI parses as absolute."""
    req = parse_request("unkscm")
    assert isinstance(req.uri, AbsoluteURI)
    assert (req.uri.scheme, req.uri.rest) == ("nobodyknowsthisscheme", "totallyopaquecontent")


def test_novelsc_known_but_unusual_scheme_is_the_tus_416() -> None:
    """§3.3.3."""
    req = parse_request("novelsc")
    assert isinstance(req.uri, AbsoluteURI)
    assert req.uri.scheme == "soap.beep"


def test_unksm2_other_schemes_in_to_from_contact() -> None:
    """§3.3.4: 'Parsers must not fail'; a registrar answers 400 (To is no SIP AoR)."""
    req = parse_request("unksm2")
    assert isinstance(req.to.uri, AbsoluteURI)
    assert str(req.to.uri) == "isbn:2983792873"
    assert isinstance(req.from_.uri, AbsoluteURI)
    assert req.from_.tag == "3234233"
    [contact] = parse_contacts(req.headers) or []
    assert str(contact.uri) == "name:John_Smith"


def test_bext01_unknown_extensions_are_the_tus_420() -> None:
    """§3.3.5: 420 Bad Extension with Unsupported, from the TU (Proxy-Require is for
    proxies; we are not one)."""
    req = parse_request("bext01")
    assert req.headers.values("Require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert req.headers.values("Proxy-Require") == [
        "noProxiesSupportThis",
        "norDoAnyProxiesSupportThis",
    ]
    assert req.top_via.transport == "TLS"


def test_invut_unknown_content_type_is_the_tus_415() -> None:
    """§3.3.6: 415 Unsupported Media Type, from the TU; the body is kept as bytes."""
    req = parse_request("invut")
    assert req.headers.get("Content-Type") == "application/unknownformat"
    assert req.body == b'<audio>\r\n <pcmu port="443"/>\r\n</audio>\r\n'


def test_regaut01_unknown_authorization_scheme() -> None:
    """§3.3.7: the registrar ignores what it cannot read and challenges (401)."""
    req = parse_request("regaut01")
    assert req.headers.get("Authorization") == "NoOneKnowsThisScheme opaque-data=here"
    assert req.headers.get("Content-Length") == "0"


def test_bcast_response_with_a_broadcast_via() -> None:
    """§3.3.10: parses; only a proxy forwarding responses would look past the top Via."""
    resp = parse_response("bcast")
    assert [v.host for v in resp.vias] == ["192.0.2.198", "255.255.255.255"]
    assert len(resp.body) == 154


def test_zeromf_max_forwards_zero() -> None:
    """§3.3.11: a proxy answers 483; as the UAS for OPTIONS we may answer it."""
    req = parse_request("zeromf")
    assert req.headers.get("Max-Forwards") == "0"


def test_cparam01_addr_spec_parameter_belongs_to_the_header() -> None:
    """§3.3.12: 'unknownparam' is a contact-param, not a URI parameter."""
    req = parse_request("cparam01")
    [contact] = parse_contacts(req.headers) or []
    assert isinstance(contact.uri, SipURI)
    assert contact.uri.params == ()
    assert contact.params == (("unknownparam", None),)
    assert str(contact) == "<sip:+19725552222@gw1.example.net>;unknownparam"


def test_cparam02_bracketed_parameter_belongs_to_the_uri() -> None:
    """§3.3.13."""
    req = parse_request("cparam02")
    [contact] = parse_contacts(req.headers) or []
    assert isinstance(contact.uri, SipURI)
    assert contact.uri.params == (("unknownparam", None),)
    assert contact.params == ()


def test_regescrt_contact_with_escaped_header() -> None:
    """§3.3.14: the registrar stores the contact with its escaped Route header."""
    req = parse_request("regescrt")
    [contact] = parse_contacts(req.headers) or []
    assert isinstance(contact.uri, SipURI)
    assert contact.uri.headers == "Route=%3Csip:sip.example.com%3E"
    assert str(contact.uri) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


def test_sdp01_accept_without_sdp_is_the_tus_406() -> None:
    """§3.3.15: 406 (or 400), from the TU."""
    req = parse_request("sdp01")
    assert req.headers.values("Accept") == ["text/nobodyKnowsThis"]
    assert req.headers.get("Content-Type") == "application/sdp"


# -- §3.4 backwards compatibility --------------------------------------------------------


def test_inv2543_rfc2543_invite() -> None:
    """§3.4.1: no branch, no From tag, no Max-Forwards, no Content-Length (UDP): accepted,
    the body running to the end of the datagram."""
    req = parse_request("inv2543")
    assert req.top_via.branch is None
    assert req.from_.tag is None
    assert "Max-Forwards" not in req.headers
    assert isinstance(req.to.uri, SipURI)
    assert req.to.params == (("user", "phone"),)
    assert req.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")
    assert len(req.body) == 105


def test_inv2543_cannot_be_framed_on_a_stream() -> None:
    parser = StreamParser()
    [error] = parser.feed(load("inv2543"))
    assert isinstance(error, SipParseError)
    assert parser.failed


def test_sdp_bodies_are_kept_verbatim() -> None:
    req = parse_request("lwsstart")
    assert req.body == SDP_BODY
