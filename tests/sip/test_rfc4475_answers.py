"""RFC 4475's torture messages sent to the server's whole SIP side: what it answers.

``test_rfc4475.py`` checks the parser message by message; here each message goes
through the stack, the core, the registrar and the call layer as the server wires them
(``tests/sip/inprocess.py``), and the answer must be the one the RFC asks for.  Where
the RFC names a status a UAS gives after reading the request (415, 406), the server
first authenticates, as RFC 3261 §8.2 orders it ("once a request is authenticated
... the UAS MUST inspect the method"): unauthenticated, those get the challenge (407
or 401), and signed by a real endpoint they get the RFC's status.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.rawsip import digest_authorization
from tests.sip.inprocess import SipSide

DATA = Path(__file__).parent / "rfc4475"

#: name -> (statuses answered, 100 Trying left out; the RFC's words).
EXPECTED: dict[str, tuple[list[int], str]] = {
    # §3.1.1 valid messages: processed as any other.
    "wsinv": ([481], "3.1.1.1: in-dialog INVITE (To tag) of a dialog we never had"),
    "intmeth": ([501], "3.1.1.2: 'respond with 405 or 501' to the unknown method"),
    "esc01": ([407], "3.1.1.3: a valid INVITE: authentication first"),
    "escnull": ([401], "3.1.1.4: a valid REGISTER: challenged"),
    "esc02": ([501], "3.1.1.5: RE%47IST%45R is not REGISTER: an unknown method"),
    "lwsdisp": ([200], "3.1.1.6: valid OPTIONS"),
    "longreq": ([407], "3.1.1.7: a valid INVITE, long values"),
    "dblreq": ([401], "3.1.1.8: the first REGISTER is processed, the rest ignored"),
    "semiuri": ([200], "3.1.1.9: ';' in the user part: valid OPTIONS"),
    "transports": ([200], "3.1.1.10: unknown transports in lower Vias"),
    "mpart01": ([501], "3.1.1.11: MESSAGE, a method we do not implement"),
    "unreason": ([], "3.1.1.12: a response nobody asked for: dropped"),
    "noreason": ([], "3.1.1.13: a response nobody asked for: dropped"),
    # §3.1.2 invalid messages.
    "badinv01": ([], "3.1.2.1: the Via itself is broken: no address to answer"),
    "clerr": ([400], "3.1.2.2: Content-Length larger than the datagram: 400"),
    "ncl": ([400], "3.1.2.3: negative Content-Length: an error response"),
    "scalar02": ([400], "3.1.2.4: CSeq out of range: 400"),
    "scalarlg": ([], "3.1.2.5: a response with overflowing fields: dropped"),
    "quotbal": ([400], "3.1.2.6: unterminated quoted string: 400"),
    "ltgtruri": ([400], "3.1.2.7: <> around the Request-URI: 400"),
    "lwsruri": ([400], "3.1.2.8: LWS inside the Request-URI: 400"),
    "lwsstart": ([407], "3.1.2.9: several spaces in the start line: may be accepted"),
    "trws": ([200], "3.1.2.10: trailing spaces in the start line: may be accepted"),
    "escruri": ([400], "3.1.2.11: escaped headers in the Request-URI: may be rejected"),
    "baddate": ([407], "3.1.2.12: a non-GMT Date: the element may accept"),
    "regbadct": ([401], "3.1.2.13: bad Contact: 400 after authentication (RFC 3261 §10.3)"),
    "badaspec": ([200], "3.1.2.14: spaces inside <>: may be accepted"),
    "baddn": ([400], "3.1.2.15: unquoted display name with a comma: may be rejected"),
    "badvers": ([505], "3.1.2.16: SIP/7.0: 505"),
    "mismatch01": ([400], "3.1.2.17: CSeq method differs: 400"),
    "mismatch02": ([400], "3.1.2.18: unknown method, mismatching CSeq: 400 acceptable"),
    "bigcode": ([], "3.1.2.19: status above 699: dropped"),
    # §3.2 transaction layer.
    "badbranch": ([200], "3.2.1: branch is the magic cookie alone: processed"),
    # §3.3 application layer.
    "insuf": ([400], "3.3.1: From, To, Call-ID missing: 400"),
    "unkscm": ([416], "3.3.2: unknown Request-URI scheme: 416"),
    "novelsc": ([416], "3.3.3: known but unusual scheme: 416"),
    "unksm2": ([404], "3.3.4: To with an unknown scheme: not our address of record"),
    "bext01": ([420], "3.3.5: Require: unknown extensions: 420 + Unsupported"),
    "invut": ([407], "3.3.6: unknown Content-Type: authentication first (415 below)"),
    "regaut01": ([401], "3.3.7: unknown Authorization scheme: 401"),
    "multi01": ([400], "3.3.8: several values in single-value fields: 400"),
    "mcl01": ([400], "3.3.9: two Content-Length: 400"),
    "bcast": ([], "3.3.10: a response (broadcast Via): dropped"),
    "zeromf": ([200], "3.3.11: OPTIONS with Max-Forwards 0: answered"),
    "cparam01": ([401], "3.3.12: a valid REGISTER: challenged"),
    "cparam02": ([401], "3.3.13: a valid REGISTER: challenged"),
    "regescrt": ([401], "3.3.14: a valid REGISTER: challenged"),
    "sdp01": ([407], "3.3.15: Accept without SDP: authentication first (406 below)"),
    # §3.4 backward compatibility.
    "inv2543": ([407], "3.4.1: an RFC 2543 INVITE: processed (authentication first)"),
}


def test_every_message_has_an_expected_answer() -> None:
    assert sorted(EXPECTED) == sorted(p.stem for p in DATA.glob("*.dat"))


@pytest.fixture(scope="module")
def side() -> SipSide:
    server = SipSide()
    server.signed = 0  # type: ignore[attr-defined]
    return server


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_server_answers_as_the_rfc_says(side: SipSide, name: str) -> None:
    statuses, why = EXPECTED[name]
    assert side.statuses((DATA / f"{name}.dat").read_bytes()) == statuses, why


def _signed(side: SipSide, name: str, edit: dict[bytes, bytes] | None = None) -> bytes:
    """The message from our endpoint (its From user), with its digest answer to the
    server's 407 in a Proxy-Authorization header, a branch of its own (a new
    transaction each time) and the *edit* replacements; nothing else changed."""
    data = (DATA / f"{name}.dat").read_bytes()
    data = data.replace(b"sip:caller@example.net", f"sip:{side.username}@example.com".encode())
    side.signed += 1  # type: ignore[attr-defined]
    data = data.replace(b"branch=z9hG4bK", b"branch=z9hG4bKsigned%d" % side.signed, 1)  # type: ignore[attr-defined]
    for old, new in (edit or {}).items():
        assert old in data
        data = data.replace(old, new)
    [challenge] = [r for r in side.send(data) if r.status == 407]
    header = challenge.get("Proxy-Authenticate") or ""
    params = dict(re.findall(r'(\w+)="?([^",]+)"?', header))
    auth = digest_authorization(
        params,
        username=side.username,
        password=side.password,
        method="INVITE",
        uri="sip:user@example.com",
    )
    head, sep, body = data.partition(b"\r\n\r\n")
    return head + f"\r\nProxy-Authorization: {auth}".encode() + sep + body


def test_invut_signed_gets_415_with_what_we_accept(side: SipSide) -> None:
    """§3.3.6: 'the element should respond with 415, with an Accept header'
    (RFC 3261 §8.2.3)."""
    [answer] = [r for r in side.send(_signed(side, "invut")) if r.status != 100]
    assert answer.status == 415, answer.status_line
    assert answer.get("Accept") == "application/sdp"


def test_sdp01_signed_gets_406(side: SipSide) -> None:
    """§3.3.15: Accept names no type our answer could have (SDP): 'respond with 406'."""
    [answer] = [r for r in side.send(_signed(side, "sdp01")) if r.status != 100]
    assert answer.status == 406, answer.status_line
    assert answer.get("Accept") == "application/sdp"


def test_a_signed_valid_invite_with_rfc4475s_sdp_is_taken(side: SipSide) -> None:
    """sdp01 without its Accept: a valid INVITE whose SDP also offers video with
    ``a=rtpmap:31 LPC``.  It must be taken (only 100 Trying until the application
    answers), not refused for the video stream's attribute."""
    data = _signed(side, "sdp01", {b"Accept: text/nobodyKnowsThis\r\n": b""})
    assert [r.status for r in side.send(data)] == [100]
