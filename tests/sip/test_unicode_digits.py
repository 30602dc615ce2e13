"""Numbers written with digits ``int()`` refuses: '²' is a digit to ``str.isdigit()``.

Found by fuzzing (``tools/fuzz.py sip-server``): ``Max-Forwards: ²0`` passed the
``isdigit()`` check and ``int()`` raised ValueError inside the SIP core; the request
was never answered and its transaction never ended.  The same pattern stood in the
registrar (Expires), session timers, the SDP parser, the trunk registration and the
RTP port range: each now reads only ASCII digits.
"""

from __future__ import annotations

import pytest

from media.config import PortRange
from media.errors import MediaArgumentError, SDPError
from media.sdp import parse_sdp
from telephony.sip.errors import SipProtocolError
from telephony.sip.headers import Headers
from telephony.sip.message import Response
from telephony.sip.session_timer import parse_session_expires
from telephony.trunks.registration import _retry_after
from tests.rawsip import digest_authorization
from tests.sip.inprocess import SipSide

SUPERSCRIPT_TWO = "\u00b2"


def _options(max_forwards: str) -> bytes:
    return (
        "OPTIONS sip:example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.200:5060;branch=z9hG4bKsup;rport\r\n"
        "From: <sip:a@example.com>;tag=1\r\nTo: <sip:example.com>\r\nCall-ID: sup@x\r\n"
        f"CSeq: 1 OPTIONS\r\nMax-Forwards: {max_forwards}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_a_superscript_max_forwards_gets_400_and_leaves_nothing() -> None:
    side = SipSide()
    [answer] = side.send(_options(f"{SUPERSCRIPT_TWO}0"))
    assert answer.status_line == "SIP/2.0 400 Bad Max-Forwards"
    side.reactor.advance(64)
    assert side.sip.stack.transaction_count == 0


def test_a_superscript_session_expires_is_a_protocol_error() -> None:
    with pytest.raises(SipProtocolError):
        parse_session_expires(SUPERSCRIPT_TWO * 3)


@pytest.mark.parametrize(
    "line",
    [f"o=- {SUPERSCRIPT_TWO} 1 IN IP4 h", f"m=audio {SUPERSCRIPT_TWO} RTP/AVP 0"],
)
def test_superscript_numbers_in_sdp_are_sdp_errors(line: str) -> None:
    with pytest.raises(SDPError):
        parse_sdp(f"v=0\r\no=- 1 1 IN IP4 h\r\n{line}\r\n".encode())


def test_a_superscript_retry_after_from_a_gateway_is_ignored() -> None:
    response = Response(503, "Busy", Headers([("Retry-After", f"3{SUPERSCRIPT_TWO}")]))
    assert _retry_after(response) is None


def test_a_superscript_rtp_port_range_is_refused() -> None:
    with pytest.raises(MediaArgumentError):
        PortRange.parse(f"1000-2{SUPERSCRIPT_TWO}")


def test_a_superscript_expires_registers_for_the_default_time() -> None:
    """The registrar reads ``Expires: ²`` as malformed (RFC 3261 §10.3: 3600 s), not as
    a crash answered 500."""
    side = SipSide()
    uri = "sip:example.com"

    def register(cseq: int, extra: str = "") -> bytes:
        return (
            f"REGISTER {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 192.0.2.200:5060;branch=z9hG4bKexp{cseq};rport\r\n"
            f"From: <sip:{side.username}@example.com>;tag=1\r\n"
            f"To: <sip:{side.username}@example.com>\r\nCall-ID: exp@x\r\nCSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:phone@192.0.2.200>\r\nExpires: {SUPERSCRIPT_TWO}\r\n{extra}"
            "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ).encode()

    [challenge] = side.send(register(1))
    digest = digest_authorization(
        challenge.challenge(),
        username=side.username,
        password=side.password,
        method="REGISTER",
        uri=uri,
    )
    [ok] = side.send(register(2, f"Authorization: {digest}\r\n"))
    assert ok.status == 200, ok.status_line
    assert ok.get("Contact") == "<sip:phone@192.0.2.200>;expires=3600"
