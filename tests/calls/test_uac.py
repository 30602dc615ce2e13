"""Outgoing legs through gateways on a ``task.Clock``: challenges, failover, timeouts.

The stack is real (transactions, timers); the far ends are this test, answering
the INVITEs it sees on the recording transport.
"""

from __future__ import annotations

import attrs
import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from telephony.calls.causes import Cause
from telephony.calls.leg import Leg, LegState
from telephony.calls.leg_uac import OutgoingLeg
from telephony.sip.digest import DigestAlgorithm, DigestAuthenticator, Verdict, compute_ha1
from telephony.sip.message import Request, Response
from telephony.sip.peer import Peer
from telephony.sip.uri import NameAddr, SipURI, parse_uri
from telephony.trunks.gateway import parse_gateways
from telephony.trunks.hops import SipCredentials
from telephony.trunks.plan import GatewayPlan, UriPlan
from tests.calls.test_leg import Harness, _answer, _run

NOW = 1_800_000_000.0
GW1 = Peer("udp", "10.0.0.2", 5060)
GW2 = Peer("udp", "10.0.0.3", 5060)


@attrs.define
class Locator:
    """Answers locate() from a table; counts the questions."""

    table: dict[str, tuple[Peer, ...] | Exception]
    asked: list[str] = attrs.Factory(list)
    pending: list[Deferred[tuple[Peer, ...]]] = attrs.Factory(list)
    hold: bool = False

    def locate(
        self, host: str, port: int | None, transport: str | None
    ) -> Deferred[tuple[Peer, ...]]:
        self.asked.append(host)
        if self.hold:
            d: Deferred[tuple[Peer, ...]] = Deferred()
            self.pending.append(d)
            return d
        answer = self.table[host]
        return fail(answer) if isinstance(answer, Exception) else succeed(answer)


def _leg(h: Harness, gateways: str, locator: Locator | None = None, **kw: object) -> Leg:
    plan = GatewayPlan(
        gateways=parse_gateways(gateways),
        locator=locator or Locator({}),
        digits="18001231234",
        caller_id="18004321321",
        caller_name=None,
        our_domain="example.test",
        **kw,  # type: ignore[arg-type]
    )
    leg = OutgoingLeg(
        uuid="b1",
        ctx=h.ctx,
        media=h.engine,  # type: ignore[arg-type]
        clock=h.clock,
        peer=GW1,
        request_uri=plan.first_request_uri(),
        from_=NameAddr(parse_uri("sip:18004321321@example.test")),
        to=NameAddr(plan.first_request_uri()),
        plan=plan,
    )
    leg.start()
    return leg


def _invites(h: Harness) -> list[tuple[float, Request]]:
    return [(t, m) for t, m in h.sent() if isinstance(m, Request) and m.method == "INVITE"]


def _last_invite(h: Harness) -> Request:
    return _invites(h)[-1][1]


def _challenge(invite: Request, server: DigestAuthenticator, status: int = 407) -> bytes:
    response = Response.for_request(invite, status, to_tag="gw")
    name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
    for value in server.challenges(NOW):
        response.headers.add(name, value)
    return response.to_bytes()


def _end(h: Harness, leg: Leg | None = None) -> None:
    if leg is not None:
        leg.hangup()
    _run(h.clock, h.clock.seconds() + 80)
    h.stack.stop()


def test_a_challenge_is_answered_and_the_call_goes_through(clock: Clock) -> None:
    h = Harness(clock)
    server = DigestAuthenticator(realm="carrier.test", algorithms=(DigestAlgorithm.MD5,))
    leg = _leg(h, "sip:acme:s3cret@10.0.0.2")
    first = _last_invite(h)
    assert str(first.uri) == "sip:18001231234@10.0.0.2"
    assert first.from_.uri == parse_uri("sip:18004321321@10.0.0.2"), "From: the provider's domain"
    h.stack.datagram_received(_challenge(first, server), GW1)
    second = _last_invite(h)
    assert second is not first
    assert (second.call_id, second.from_.tag) == (first.call_id, first.from_.tag)
    assert second.cseq.number == first.cseq.number + 1
    assert second.top_via.branch != first.top_via.branch
    ha1 = {DigestAlgorithm.MD5: compute_ha1(DigestAlgorithm.MD5, "acme", "carrier.test", "s3cret")}
    credentials = second.headers.get("Proxy-Authorization")
    assert server.verify("INVITE", credentials, ha1, NOW).verdict is Verdict.OK
    acks = [m for _, m in h.sent() if isinstance(m, Request) and m.method == "ACK"]
    assert len(acks) == 1, "the transaction ACKs the 407"
    h.stack.datagram_received(_answer(second, 200, b""), GW1)
    assert leg.state is LegState.ANSWERED
    ack = h.sent()[-1][1]
    assert isinstance(ack, Request)
    assert (ack.method, ack.cseq.number) == ("ACK", second.cseq.number)
    assert ack.headers.get("Proxy-Authorization") == credentials, "§13.2.2.4"
    _end(h, leg)


def test_a_challenged_bye_is_answered_too(clock: Clock) -> None:
    h = Harness(clock)
    server = DigestAuthenticator(realm="carrier.test", algorithms=(DigestAlgorithm.MD5,))
    leg = _leg(h, "sip:acme:s3cret@10.0.0.2")
    h.stack.datagram_received(_answer(_last_invite(h), 200, b""), GW1)
    leg.hangup()
    bye = h.sent()[-1][1]
    assert isinstance(bye, Request)
    assert bye.method == "BYE"
    h.stack.datagram_received(_challenge(bye, server, 401), GW1)
    again = h.sent()[-1][1]
    assert isinstance(again, Request)
    assert (again.method, again.cseq.number) == ("BYE", bye.cseq.number + 1)
    assert again.headers.get("Authorization")
    _end(h)


@pytest.mark.parametrize("gateways", ["sip:acme:wrong@10.0.0.2", "sip:10.0.0.2"])
def test_refused_or_missing_credentials_end_with_sip_auth_failed(
    clock: Clock, gateways: str
) -> None:
    h = Harness(clock)
    server = DigestAuthenticator(realm="carrier.test")
    leg = _leg(h, gateways)
    h.stack.datagram_received(_challenge(_last_invite(h), server), GW1)
    if "wrong" in gateways:
        h.stack.datagram_received(_challenge(_last_invite(h), server), GW1)
        assert len(_invites(h)) == 2, "one authenticated try, not a loop"
    else:
        assert len(_invites(h)) == 1
    assert leg.end_info is not None
    assert (leg.end_info.cause, leg.end_info.sip_status) == (Cause.SIP_AUTH_FAILED, 407)
    assert leg.end_info.cause.cause_name == "sip_auth_failed"
    _end(h)


def test_a_number_with_its_own_credentials_uses_them(clock: Clock) -> None:
    h = Harness(clock)
    server = DigestAuthenticator(realm="carrier.test", algorithms=(DigestAlgorithm.MD5,))
    _leg(h, "sip:acme:gateway@10.0.0.2", credentials=SipCredentials("per-number", "numberpw"))
    h.stack.datagram_received(_challenge(_last_invite(h), server), GW1)
    ha1 = {
        DigestAlgorithm.MD5: compute_ha1(
            DigestAlgorithm.MD5, "per-number", "carrier.test", "numberpw"
        )
    }
    credentials = _last_invite(h).headers.get("Proxy-Authorization")
    assert server.verify("INVITE", credentials, ha1, NOW).verdict is Verdict.OK
    _end(h)


@pytest.mark.parametrize("status", [503, 500, 408])
def test_failover_to_the_next_gateway(clock: Clock, status: int) -> None:
    h = Harness(clock)
    leg = _leg(h, "sip:10.0.0.2;name=first, sip:10.0.0.3;name=second;prefix=9")
    first = _last_invite(h)
    h.stack.datagram_received(_answer(first, status), GW1)
    second = _last_invite(h)
    assert h.transport.sent[-1][2] == GW2
    assert str(second.uri) == "sip:918001231234@10.0.0.3"
    assert (second.call_id, second.cseq.number) == (first.call_id, first.cseq.number + 1)
    h.stack.datagram_received(_answer(second, 180), GW2)
    assert leg.state is LegState.RINGING
    h.stack.datagram_received(_answer(second, 200, b""), GW2)
    assert leg.state is LegState.ANSWERED
    assert leg.peer == GW2, "in-dialog requests go where it answered"
    _end(h, leg)


def test_busy_does_not_fail_over(clock: Clock) -> None:
    h = Harness(clock)
    leg = _leg(h, "sip:10.0.0.2, sip:10.0.0.3")
    h.stack.datagram_received(_answer(_last_invite(h), 486), GW1)
    assert len(_invites(h)) == 1
    assert leg.end_info is not None
    assert (leg.end_info.cause, leg.end_info.sip_status) == (Cause.BUSY, 486)
    _end(h)


def test_a_silent_gateway_is_abandoned_after_its_response_timeout(clock: Clock) -> None:
    h = Harness(clock)
    leg = _leg(h, "sip:10.0.0.2;response_timeout=2, sip:10.0.0.3")
    _run(clock, 1.999)
    assert [t for t, _ in _invites(h)] == [0.0, 0.5, 1.5]
    _run(clock, 2.0)
    times = [(t, h.transport.sent[i][2]) for i, (t, _) in enumerate(h.sent())]
    assert times[-1] == (2.0, GW2), "the next gateway at exactly 2 s"
    _run(clock, 5.9)  # the second gateway's own response timeout is the default, 4 s
    h.stack.datagram_received(_answer(_last_invite(h), 100), GW2)
    _run(clock, 30.0)
    to_first = [t for t, _, peer in h.transport.sent if peer == GW1]
    assert to_first == [0.0, 0.5, 1.5], "no more retransmissions to the abandoned one"
    assert leg.state is not LegState.ENDED, "a 100 Trying stops the response timer"
    _end(h, leg)


def test_every_gateway_failing_reports_the_last_failure(clock: Clock) -> None:
    h = Harness(clock)
    leg = _leg(h, "sip:10.0.0.2;response_timeout=1, sip:10.0.0.3")
    _run(clock, 1.0)
    h.stack.datagram_received(_answer(_last_invite(h), 502), GW2)
    assert leg.end_info is not None
    assert (leg.end_info.cause, leg.end_info.sip_status) == (Cause.FAILED, 502)
    _end(h)


def test_an_authenticated_invite_that_times_out_is_sip_auth_timeout(clock: Clock) -> None:
    h = Harness(clock)
    server = DigestAuthenticator(realm="carrier.test")
    leg = _leg(h, "sip:acme:pw@10.0.0.2;response_timeout=3")
    h.stack.datagram_received(_challenge(_last_invite(h), server), GW1)
    _run(clock, 3.0)
    assert leg.end_info is not None
    assert leg.end_info.cause is Cause.SIP_AUTH_TIMEOUT
    assert leg.end_info.cause.code == 4250
    _end(h)


def test_named_gateways_are_located_in_turn(clock: Clock) -> None:
    h = Harness(clock)
    locator = Locator(
        {
            "dead.example": LookupError("dead.example: NXDOMAIN"),
            "sip.carrier.example": (GW1, GW2),
        }
    )
    leg = _leg(h, "sip:dead.example, sip:sip.carrier.example", locator)
    assert locator.asked == ["dead.example", "sip.carrier.example"]
    invite = _last_invite(h)
    assert str(invite.uri) == "sip:18001231234@sip.carrier.example", "the name, not the address"
    assert h.transport.sent[-1][2] == GW1
    h.stack.datagram_received(_answer(invite, 503), GW1)
    assert h.transport.sent[-1][2] == GW2, "the carrier's second SRV target"
    h.stack.datagram_received(_answer(_last_invite(h), 503), GW2)
    assert leg.end_info is not None
    assert leg.end_info.sip_status == 503
    _end(h)


def test_nothing_located_fails_the_leg_and_says_why(clock: Clock) -> None:
    h = Harness(clock)
    locator = Locator({"dead.example": LookupError("NXDOMAIN")})
    leg = _leg(h, "sip:dead.example", locator)
    assert _invites(h) == []
    assert leg.end_info is not None
    assert (leg.end_info.cause, leg.end_info.sip_status) == (Cause.FAILED, 503)
    _end(h)


def test_a_hangup_while_dns_is_asked_sends_nothing(clock: Clock) -> None:
    h = Harness(clock)
    locator = Locator({}, hold=True)
    leg = _leg(h, "sip:slow.example", locator)
    leg.hangup()
    assert leg.state is LegState.ENDED
    [pending] = locator.pending
    assert pending.called, "the lookup was cancelled"
    assert h.sent() == []
    _end(h)


def test_a_sip_uri_on_another_server_is_located(clock: Clock) -> None:
    h = Harness(clock)
    locator = Locator({"pbx.example": (GW2,)})
    uri = parse_uri("sip:bob@pbx.example")
    assert isinstance(uri, SipURI)
    plan = UriPlan(
        uri=uri,
        locator=locator,
        from_=NameAddr(parse_uri("sip:alice@example.test")),
        to=NameAddr(uri),
    )
    leg = OutgoingLeg(
        uuid="b1",
        ctx=h.ctx,
        media=h.engine,  # type: ignore[arg-type]
        clock=clock,
        peer=GW1,
        request_uri=uri,
        from_=NameAddr(parse_uri("sip:alice@example.test")),
        to=NameAddr(uri),
        plan=plan,
    )
    leg.start()
    assert str(_last_invite(h).uri) == "sip:bob@pbx.example"
    assert h.transport.sent[-1][2] == GW2
    _end(h, leg)
