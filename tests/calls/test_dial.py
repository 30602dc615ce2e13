"""Dial on a ``task.Clock``: parallel ringing, first answer wins, results and events;
call screening (confirmSound, confirmKey, confirmTimeout); callType."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from twisted.internet.task import Clock

from media import parse_sdp
from media.sdp import Origin, answer_offer
from telephony.calls.causes import Cause
from telephony.calls.control import DigitTap
from telephony.calls.dial import DialAttempt
from telephony.calls.leg import Leg, LegState
from telephony.calls.leg_uac import OutgoingLeg
from telephony.sip.message import Request, Response
from telephony.sip.peer import Peer
from telephony.sip.uri import NameAddr, SipURI, parse_uri
from tests.calls.fakes import FakeSession
from tests.calls.test_leg import Harness, _run
from xml_dsl import DialEnd, DialEvent, DialEventKind, DialSpec, DialStatus, Ringback
from xml_dsl.verbs import CallType, Number, Play, Wait


@attrs.define
class FakeCall:
    leg: Leg

    def caller_id_for(self, spec: DialSpec) -> str:
        return spec.caller_id or "alice"


class Dialer:
    def __init__(self, clock: Clock, targets: tuple[Number, ...], **spec_fields: Any) -> None:
        self.h = Harness(clock)
        self.a = self.h.invite()
        self.events: list[DialEvent] = []
        self.b: list[Leg] = []
        spec = DialSpec(
            targets=targets,
            timeout=30,
            time_limit=3600,
            caller_id="18004321321",
            **{"ringback": Ringback.DEFAULT, **spec_fields},
        )
        self.attempt = DialAttempt(FakeCall(self.a), spec, self.events.append, self._place)  # type: ignore[arg-type]
        self.attempt.start()

    def _place(self, target: Number, position: int, spec: DialSpec) -> Leg:
        peer = Peer("udp", f"10.0.1.{position}", 5060)
        leg = OutgoingLeg(
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


@pytest.mark.parametrize(
    ("cause", "status"),
    [(Cause.SIP_AUTH_FAILED, DialStatus.FAILED), (Cause.SIP_AUTH_TIMEOUT, DialStatus.TIMEOUT)],
)
def test_gateway_authentication_failures_report_plivos_dial_status(
    clock: Clock, cause: Cause, status: DialStatus
) -> None:
    d = Dialer(clock, (Number("18001110001"),))
    [leg] = d.b
    leg._end(cause, "Callee", 407)  # what the leg's UAC reports (tests/calls/test_uac.py)
    result = d.attempt.result.result
    assert (result.status, result.hangup_cause) == (status, cause.cause_name)
    d.a.hangup()
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


# -- call screening -----------------------------------------------------------------------

CONFIRM = (Play("http://127.0.0.1:9/press-5.wav"),)


def media_of(leg: Leg) -> FakeSession:
    assert isinstance(leg.media, FakeSession)
    return leg.media


def result_of(d: Dialer) -> Any:
    assert d.attempt.result.called, "the dial is still going on"
    return d.attempt.result.result


def screened_pair(clock: Clock) -> Dialer:
    """Two numbers rung at once, each screened with the prompt and key 5."""
    pair = (Number("18001110001"), Number("18001110002"))
    return Dialer(clock, pair, confirm_prompts=CONFIRM, confirm_key="5")


def finish(d: Dialer, clock: Clock) -> None:
    for leg in (d.a, *d.b):
        leg.hangup()
    _run(clock, clock.seconds() + 80)
    d.h.stack.stop()


def test_screened_leg_is_bridged_only_after_the_confirm_key(clock: Clock) -> None:
    d = Dialer(clock, (Number("18001110001"),), confirm_prompts=CONFIRM, confirm_key="5")
    (leg,) = d.b
    d.respond(leg, 180)
    d.respond(leg, 200, with_sdp=True)
    b = media_of(leg)
    # The called party hears the prompt; the caller still hears ringback, unanswered.
    assert b.played == [["http://127.0.0.1:9/press-5.wav"]]
    assert not d.a.answered
    assert 200 not in d.to_a()
    assert d.events == []
    assert d.attempt.bridge is None
    b.press("5")
    assert d.a.answered
    assert d.to_a()[-1] == 200
    assert d.attempt.bridge is not None
    assert [e.kind for e in d.events] == [DialEventKind.ANSWER, DialEventKind.CONNECTED]
    assert b.outputs[0][2].called, "the prompt was stopped"
    assert b.stopped_outputs == 1
    assert d.attempt.winner is leg
    assert not any(isinstance(x, DigitTap) for x in b.listeners), "the key is no longer awaited"
    leg._end(Cause.NORMAL, "Callee")
    assert result_of(d).status is DialStatus.COMPLETED
    finish(d, clock)


def test_wrong_key_hangs_that_leg_up_and_the_others_keep_ringing(clock: Clock) -> None:
    d = screened_pair(clock)
    one, two = d.b
    d.respond(one, 180)
    d.respond(two, 180)
    d.respond(one, 200, with_sdp=True)
    media_of(one).press("4")
    assert d.requests_to(one)[-1] == "BYE"
    assert one.state is LegState.ENDED
    assert "CANCEL" not in d.requests_to(two), "the other target keeps ringing"
    assert not d.attempt.result.called
    assert not d.a.answered
    d.respond(two, 486)
    result = result_of(d)
    assert (result.status, result.b_leg_uuid) == (DialStatus.BUSY, None)
    assert d.events == []
    finish(d, clock)


def test_a_wrong_key_alone_fails_the_dial(clock: Clock) -> None:
    d = Dialer(clock, (Number("18001110001"),), confirm_key="5")
    (leg,) = d.b
    d.respond(leg, 200, with_sdp=True)
    media_of(leg).press("#")
    result = result_of(d)
    assert (result.status, result.hangup_cause) == (DialStatus.FAILED, "Rejected")
    assert not d.a.answered
    finish(d, clock)


def test_confirm_timeout_counts_from_the_answer(clock: Clock) -> None:
    d = Dialer(
        clock,
        (Number("18001110001"),),
        confirm_prompts=CONFIRM,
        confirm_key="5",
        confirm_timeout=10,
    )
    (leg,) = d.b
    clock.advance(3)
    d.respond(leg, 200, with_sdp=True)  # answered at 3 s, without ringing first
    assert d.to_a().count(180) == 1, "the caller hears ringback while the callee is screened"
    media_of(leg).outputs[0][2].callback(None)  # the prompt is over; now the key is awaited
    _run(clock, 12.999)
    assert leg.state is LegState.ANSWERED
    assert "BYE" not in d.requests_to(leg)
    _run(clock, 13.0)
    assert d.requests_to(leg)[-1] == "BYE"
    result = result_of(d)
    assert (result.status, result.hangup_cause) == (DialStatus.NO_ANSWER, "No Answer")
    assert not d.a.answered
    finish(d, clock)


def test_first_to_confirm_is_bridged_and_the_others_fail(clock: Clock) -> None:
    d = Dialer(
        clock,
        (Number("18001110001"), Number("18001110002"), Number("18001110003")),
        confirm_key="1",
    )
    one, two, three = d.b
    d.respond(three, 180)
    d.respond(one, 200, with_sdp=True)
    d.respond(two, 200, with_sdp=True)
    assert d.attempt.winner is None
    media_of(two).press("1")
    assert d.attempt.winner is two
    assert d.events[0].position == 2
    assert d.requests_to(one)[-1] == "BYE"
    assert d.requests_to(three)[-1] == "CANCEL"
    media_of(one).press("1")  # too late: that leg is gone
    assert d.attempt.winner is two
    assert d.a.answered
    two._end(Cause.NORMAL, "Callee")
    assert result_of(d).b_leg_uuid == "b2"
    finish(d, clock)


def test_without_a_key_the_prompts_play_then_the_leg_is_bridged(clock: Clock) -> None:
    d = Dialer(clock, (Number("18001110001"),), confirm_prompts=(Wait(2),))
    (leg,) = d.b
    d.respond(leg, 200, with_sdp=True)
    _run(clock, 1.999)
    assert not d.a.answered
    _run(clock, 2.0)
    assert d.a.answered
    assert d.attempt.winner is leg
    finish(d, clock)


def test_ring_timeout_does_not_cut_a_screening_short(clock: Clock) -> None:
    d = screened_pair(clock)
    one, two = d.b
    d.respond(one, 180)
    d.respond(two, 200, with_sdp=True)
    d.attempt.end(DialEnd.NO_ANSWER)
    assert d.requests_to(one)[-1] == "CANCEL", "the ringing target stops"
    assert two.state is LegState.ANSWERED, "the answered one is still being screened"
    assert not d.attempt.result.called
    d.respond(one, 487)
    media_of(two).press("5")
    # Bridged whole: the caller is answered and the callee stays.
    assert d.a.answered
    assert two.state is LegState.ANSWERED
    assert "BYE" not in d.requests_to(two)
    assert [e.kind for e in d.events] == [DialEventKind.ANSWER, DialEventKind.CONNECTED]
    two._end(Cause.NORMAL, "Callee")
    assert result_of(d).status is DialStatus.COMPLETED
    finish(d, clock)


def test_ring_timeout_then_no_key_is_no_answer_and_the_caller_never_answered(
    clock: Clock,
) -> None:
    d = Dialer(clock, (Number("18001110001"),), confirm_key="5", confirm_timeout=5)
    (leg,) = d.b
    d.respond(leg, 200, with_sdp=True)
    d.attempt.end(DialEnd.NO_ANSWER)
    _run(clock, 5.0)
    assert d.requests_to(leg)[-1] == "BYE"
    assert result_of(d).status is DialStatus.NO_ANSWER
    assert not d.a.answered
    finish(d, clock)


def test_caller_hangup_during_screening_hangs_the_screened_leg_up(clock: Clock) -> None:
    d = Dialer(clock, (Number("18001110001"),), confirm_prompts=CONFIRM, confirm_key="5")
    (leg,) = d.b
    d.respond(leg, 200, with_sdp=True)
    d.attempt.end(DialEnd.CALLER_HANGUP)
    assert d.requests_to(leg)[-1] == "BYE"
    assert result_of(d).status is DialStatus.NO_ANSWER
    assert media_of(leg).listeners == []
    finish(d, clock)


def test_early_media_is_cut_and_ringback_played_while_screening(clock: Clock) -> None:
    d = Dialer(clock, (Number("18001110001"),), confirm_key="5", ringback=Ringback.REAL)
    (leg,) = d.b
    d.respond(leg, 183, with_sdp=True)
    assert d.attempt.bridge is not None, "the caller hears the callee's early media"
    d.respond(leg, 200, with_sdp=True)
    assert d.attempt.bridge is None, "not while the callee is screened"
    a = media_of(d.a)
    assert [(kind, what) for kind, what, _ in a.outputs] == [("tone", "ringback")]
    media_of(leg).press("5")
    assert d.attempt.bridge is not None
    assert a.outputs[0][2].called, "the ringback tone stops at the bridge"
    finish(d, clock)


def test_whatsapp_dial_fails_without_placing_anything(clock: Clock) -> None:
    d = Dialer(clock, (Number("18001110001"),), call_type=CallType.WHATSAPP)
    assert d.b == []
    result = result_of(d)
    assert (result.status, result.rang) == (DialStatus.FAILED, False)
    assert not d.a.answered
    finish(d, clock)
