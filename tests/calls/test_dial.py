"""Dial on a ``task.Clock``: parallel ringing, first answer wins, results and events."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.task import Clock

from media import parse_sdp
from media.sdp import Origin, answer_offer
from telephony.calls.causes import Cause
from telephony.calls.dial import DialAttempt
from telephony.calls.leg import Leg, LegState
from telephony.sip.message import Request, Response
from telephony.sip.transport import Peer
from telephony.sip.uri import NameAddr, SipURI, parse_uri
from tests.calls.test_leg import Harness, _run
from xml_dsl import DialEnd, DialEvent, DialEventKind, DialSpec, DialStatus, Ringback
from xml_dsl.verbs import Number


@attrs.define
class FakeCall:
    leg: Leg

    def caller_id_for(self, spec: DialSpec) -> str:
        return spec.caller_id or "alice"


class Dialer:
    def __init__(self, clock: Clock, targets: tuple[Number, ...]) -> None:
        self.h = Harness(clock)
        self.a = self.h.invite()
        self.events: list[DialEvent] = []
        self.b: list[Leg] = []
        spec = DialSpec(
            targets=targets,
            timeout=30,
            time_limit=3600,
            caller_id="18004321321",
            ringback=Ringback.DEFAULT,
        )
        self.attempt = DialAttempt(FakeCall(self.a), spec, self.events.append, self._place)  # type: ignore[arg-type]
        self.attempt.start()

    def _place(self, target: Number, position: int, spec: DialSpec) -> Leg:
        peer = Peer("udp", f"10.0.1.{position}", 5060)
        leg = Leg.outgoing(
            uuid=f"b{position}",
            ctx=self.h.ctx,
            media=self.h.engine,
            clock=self.h.clock,  # type: ignore[arg-type]
            peer=peer,
            request_uri=SipURI("sip", target.number, peer.host),
            from_=NameAddr(parse_uri(f"sip:{spec.caller_id}@example.test")),
            to=NameAddr(SipURI("sip", target.number, peer.host)),
        )
        leg.start()
        self.b.append(leg)
        return leg

    def respond(self, leg: Leg, status: int, with_sdp: bool = False) -> None:
        invite = leg.invite
        response = Response.for_request(invite, status, to_tag=f"t-{leg.uuid}")
        response.headers.add("Contact", f"<sip:far@{leg.peer.host}:5060>")
        if with_sdp:
            answer, _ = answer_offer(
                parse_sdp(invite.body),
                Origin("far", 1, 1, leg.peer.host),
                address=leg.peer.host,
                port=31000,
            )
            response.headers.add("Content-Type", "application/sdp")
            response.body = answer.to_bytes()
        self.h.stack.datagram_received(response.to_bytes(), leg.peer)

    def to_a(self) -> list[int]:
        return [m.status for _, m in self.h.sent() if isinstance(m, Response)]

    def requests_to(self, leg: Leg) -> list[str]:
        return [
            parse.method
            for t, data, peer in self.h.transport.sent
            for parse in [__import__("telephony.sip.message", fromlist=["x"]).parse_datagram(data)]
            if isinstance(parse, Request) and peer.host == leg.peer.host
        ]


def test_first_answer_wins_and_the_other_is_cancelled(clock: Clock) -> None:
    d = Dialer(clock, (Number("18001110001"), Number("18001110002", send_digits="ww12")))
    one, two = d.b
    d.respond(one, 180)
    d.respond(two, 180)
    assert d.to_a().count(180) == 1, "the caller hears ringing once"
    d.respond(two, 200, with_sdp=True)
    assert d.a.answered
    assert d.to_a()[-1] == 200
    assert d.requests_to(one)[-1] == "CANCEL"
    assert [e.kind for e in d.events] == [DialEventKind.ANSWER, DialEventKind.CONNECTED]
    assert d.events[0].position == 2
    assert d.attempt.bridge is not None
    assert two.media.digits_sent == ["ww12"]  # type: ignore[union-attr]
    assert one.media.digits_sent == []  # type: ignore[union-attr]
    assert d.a.media.relaying, "the A leg's media is bridged"  # type: ignore[union-attr]
    d.respond(one, 487)
    # The B leg hangs up (its BYE handling is covered by the leg tests): the dial is
    # over, the caller stays.
    two._end(Cause.NORMAL, "Callee")
    result = d.attempt.result.result
    assert (result.status, result.b_leg_uuid, result.rang) == (DialStatus.COMPLETED, "b2", True)
    assert d.events[-1].kind is DialEventKind.HANGUP
    assert d.a.state is LegState.ANSWERED
    d.a.hangup()
    _run(clock, 80)
    d.h.stack.stop()


def test_all_busy_is_busy(clock: Clock) -> None:
    d = Dialer(clock, (Number("18001110001"), Number("18001110002")))
    for leg in d.b:
        d.respond(leg, 486)
    result = d.attempt.result.result
    assert (result.status, result.hangup_cause) == (DialStatus.BUSY, "Busy Line")
    assert not d.a.answered
    _run(clock, 80)
    d.h.stack.stop()


def test_ring_timeout_cancels_everything(clock: Clock) -> None:
    d = Dialer(clock, (Number("18001110001"),))
    (leg,) = d.b
    d.respond(leg, 180)
    d.attempt.end(DialEnd.NO_ANSWER)
    assert d.requests_to(leg)[-1] == "CANCEL"
    d.respond(leg, 487)
    result = d.attempt.result.result
    assert (result.status, result.rang) == (DialStatus.NO_ANSWER, True)
    _run(clock, 80)
    d.h.stack.stop()


def test_time_limit_hangs_up_the_bridged_leg(clock: Clock) -> None:
    d = Dialer(clock, (Number("18001110001"),))
    (leg,) = d.b
    d.respond(leg, 200, with_sdp=True)
    d.attempt.end(DialEnd.TIME_LIMIT)
    assert d.requests_to(leg)[-1] == "BYE"
    result: Any = d.attempt.result.result
    assert result.status is DialStatus.COMPLETED
    assert result.hangup_cause == "Time Limit Reached"
    d.a.hangup()
    _run(clock, 80)
    d.h.stack.stop()
