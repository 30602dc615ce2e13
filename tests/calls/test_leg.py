"""Call legs on a ``task.Clock``: 2xx retransmission, CANCEL, session timers, UAC flows."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.task import Clock

from media import parse_sdp
from media.sdp import Origin, answer_offer
from telephony.calls.causes import Cause
from telephony.calls.leg import Leg, LegState, SipContext
from telephony.calls.leg_uac import OutgoingLeg
from telephony.calls.leg_uas import IncomingLeg
from telephony.sip.message import Request, Response, parse_datagram
from telephony.sip.peer import Peer
from telephony.sip.stack import ServerTransactionHandle
from telephony.sip.uri import NameAddr, SipURI, parse_uri
from tests.calls.fakes import FakeMediaEngine, sdp_offer
from tests.sip.helpers import make_stack, request_bytes

PHONE = Peer("udp", "10.0.0.1", 5060)
FAR = Peer("udp", "10.0.0.2", 5060)


def _run(clock: Clock, until: float) -> None:
    """Step to every pending call, exactly, up to *until*."""
    while True:
        pending = [c.getTime() for c in clock.getDelayedCalls()]
        nxt = min(pending, default=until)
        if nxt >= until:
            clock.advance(max(0.0, until - clock.seconds()))
            return
        clock.advance(nxt - clock.seconds())


class Harness:
    """A stack whose TU makes an incoming Leg of each INVITE."""

    def __init__(self, clock: Clock, *, min_se: int = 90) -> None:
        self.clock = clock
        self.engine = FakeMediaEngine()
        self.legs: list[Leg] = []
        self.stack, self.transport, self.handler = make_stack(clock, self._respond)
        self.handler.on_ack = lambda request: self.legs[-1].handle_ack(request)
        self.ctx = SipContext(
            self.stack,
            "127.0.0.1:5060",
            "sip:telephony@127.0.0.1:5060",
            "example.test",
            min_se=min_se,
        )

    def _respond(self, request: Request, txn: ServerTransactionHandle) -> None:
        if request.method == "INVITE" and not request.to.tag:
            self.legs.append(
                IncomingLeg(
                    request,
                    txn,
                    uuid=f"leg{len(self.legs)}",
                    ctx=self.ctx,
                    media=self.engine,
                    clock=self.clock,
                )
            )  # type: ignore[arg-type]
        elif request.method == "CANCEL":
            self.legs[-1].cancelled(txn)
        else:
            self.legs[-1].handle_request(request, txn)

    def invite(self, extra: str = "") -> Leg:
        self.stack.datagram_received(
            request_bytes(
                "INVITE",
                "z9hG4bKinv1",
                uri="sip:1800@example.test",
                body=sdp_offer(),
                extra="Contact: <sip:alice@10.0.0.1:5060>\r\nContent-Type: application/sdp\r\n"
                + extra,
            ),
            PHONE,
        )
        return self.legs[-1]

    def sent(self) -> list[Any]:
        return [(round(t, 6), parse_datagram(d)) for t, d, _ in self.transport.sent]

    def responses(self, status: int) -> list[float]:
        return [t for t, m in self.sent() if isinstance(m, Response) and m.status == status]


def test_answer_retransmits_the_2xx_until_the_ack(clock: Clock) -> None:
    h = Harness(clock)
    leg = h.invite()
    leg.answer()
    assert leg.state is LegState.ANSWERED
    _run(clock, 4.0)
    assert h.responses(200) == [0.0, 0.5, 1.5, 3.5]
    ok = next(m for _, m in h.sent() if isinstance(m, Response) and m.status == 200)
    assert parse_sdp(ok.body).media[0].port == h.engine.sessions[0].local_address[1]
    assert ok.to.tag == leg.local_tag
    h.stack.datagram_received(
        request_bytes(
            "ACK", "z9hG4bKack", uri="sip:telephony@127.0.0.1:5060", to_tag=leg.local_tag
        ),
        PHONE,
    )
    _run(clock, 40.0)
    assert h.responses(200) == [0.0, 0.5, 1.5, 3.5], "no retransmission after the ACK"
    assert leg.state is LegState.ANSWERED
    leg.hangup()
    _run(clock, 80.0)
    h.stack.stop()


def test_no_ack_ends_the_call_with_bye_at_64_t1(clock: Clock) -> None:
    h = Harness(clock)
    leg = h.invite()
    leg.answer()
    _run(clock, 31.9)
    assert leg.state is LegState.ANSWERED
    _run(clock, 32.1)
    assert leg.state is LegState.ENDED
    assert leg.end_info is not None
    assert leg.end_info.cause is Cause.ACK_TIMEOUT
    assert [m.method for _, m in h.sent() if isinstance(m, Request)] == ["BYE"]
    assert h.responses(200)[-1] <= 32.0
    assert h.engine.sessions[0].closed
    _run(clock, 80.0)
    h.stack.stop()


def test_cancel_while_ringing_gets_487(clock: Clock) -> None:
    h = Harness(clock)
    leg = h.invite()
    leg.ring()
    h.stack.datagram_received(
        request_bytes("CANCEL", "z9hG4bKinv1", uri="sip:1800@example.test"), PHONE
    )
    statuses = [m.status for _, m in h.sent() if isinstance(m, Response)]
    assert statuses == [180, 200, 487]
    assert leg.end_info is not None
    assert (leg.end_info.cause, leg.end_info.source) == (Cause.ORIGINATOR_CANCEL, "Caller")
    _run(clock, 80.0)
    h.stack.stop()


def test_reject_busy_and_too_small_session(clock: Clock) -> None:
    h = Harness(clock)
    leg = h.invite()
    leg.hangup(Cause.BUSY)
    assert [m.status for _, m in h.sent() if isinstance(m, Response)] == [486]
    h2 = Harness(clock)
    small = h2.invite("Supported: timer\r\nSession-Expires: 30\r\n")
    small.answer()
    reply = [m for _, m in h2.sent() if isinstance(m, Response)][-1]
    assert (reply.status, reply.headers.get("Min-SE")) == (422, "90")
    _run(clock, 80.0)
    h.stack.stop()
    h2.stack.stop()


def test_session_expires_unrefreshed_sends_bye(clock: Clock) -> None:
    h = Harness(clock, min_se=10)
    leg = h.invite("Supported: timer\r\nSession-Expires: 30;refresher=uac\r\n")
    leg.answer()
    ok = next(m for _, m in h.sent() if isinstance(m, Response) and m.status == 200)
    assert ok.headers.get("Session-Expires") == "30;refresher=uac"
    assert ok.headers.get("Require") == "timer"
    leg._acked = True  # the ACK itself is covered above
    _run(clock, 19.9)
    assert leg.state is LegState.ANSWERED
    _run(clock, 20.1)  # 30 - min(32, 30/3) = 20 s
    assert leg.state is LegState.ENDED
    assert leg.end_info is not None
    assert leg.end_info.cause is Cause.SESSION_TIMEOUT
    assert [m.method for _, m in h.sent() if isinstance(m, Request)] == ["BYE"]
    _run(clock, 80.0)
    h.stack.stop()


def _outgoing(h: Harness) -> Leg:
    leg = OutgoingLeg(
        uuid="b1",
        ctx=h.ctx,
        media=h.engine,
        clock=h.clock,
        peer=FAR,  # type: ignore[arg-type]
        request_uri=SipURI("sip", "18001231234", "10.0.0.2"),
        from_=NameAddr(parse_uri("sip:18004321321@example.test")),
        to=NameAddr(SipURI("sip", "18001231234", "10.0.0.2")),
    )
    leg.start()
    return leg


def _answer(invite: Request, status: int, body: bytes = b"") -> bytes:
    response = Response.for_request(invite, status, to_tag="far")
    response.headers.add("Contact", "<sip:gw@10.0.0.2:5060>")
    if body:
        response.headers.add("Content-Type", "application/sdp")
        response.body = body
    return response.to_bytes()


def test_outgoing_leg_is_acked_and_answered(clock: Clock) -> None:
    h = Harness(clock)
    leg = _outgoing(h)
    invite = h.sent()[0][1]
    assert isinstance(invite, Request)
    assert invite.headers.get("Session-Expires") == "1800"
    offer = parse_sdp(invite.body)
    answer, _ = answer_offer(offer, Origin("gw", 2, 1, "10.0.0.2"), address="10.0.0.2", port=31000)
    h.stack.datagram_received(_answer(invite, 180), FAR)
    assert leg.state is LegState.RINGING
    h.stack.datagram_received(_answer(invite, 200, answer.to_bytes()), FAR)
    assert leg.state is LegState.ANSWERED
    ack = h.sent()[-1][1]
    assert isinstance(ack, Request)
    assert (ack.method, ack.cseq.number, str(ack.uri)) == (
        "ACK",
        invite.cseq.number,
        "sip:gw@10.0.0.2:5060",
    )
    assert h.engine.sessions[0].negotiated is not None
    h.stack.datagram_received(_answer(invite, 200, answer.to_bytes()), FAR)  # retransmitted 2xx
    assert [m.method for _, m in h.sent() if isinstance(m, Request)].count("ACK") == 2
    leg.hangup()
    assert h.sent()[-1][1].method == "BYE"
    _run(clock, 80.0)
    h.stack.stop()


@pytest.mark.parametrize(
    ("status", "cause"), [(486, Cause.BUSY), (404, Cause.NOT_FOUND), (503, Cause.FAILED)]
)
def test_outgoing_failures(clock: Clock, status: int, cause: Cause) -> None:
    h = Harness(clock)
    leg = _outgoing(h)
    invite = h.sent()[0][1]
    assert isinstance(invite, Request)
    h.stack.datagram_received(_answer(invite, status), FAR)
    assert leg.end_info is not None
    assert (leg.end_info.cause, leg.end_info.sip_status) == (cause, status)
    _run(clock, 80.0)
    h.stack.stop()


def test_cancel_waits_for_a_provisional(clock: Clock) -> None:
    h = Harness(clock)
    leg = _outgoing(h)
    invite = h.sent()[0][1]
    assert isinstance(invite, Request)
    leg.cancel()
    assert [m.method for _, m in h.sent() if isinstance(m, Request)] == ["INVITE"], (
        "no CANCEL before a 1xx"
    )
    h.stack.datagram_received(_answer(invite, 180), FAR)
    cancel = h.sent()[-1][1]
    assert isinstance(cancel, Request)
    assert (cancel.method, cancel.top_via.branch) == ("CANCEL", invite.top_via.branch)
    h.stack.datagram_received(_answer(invite, 487), FAR)
    assert leg.end_info is not None
    assert leg.end_info.cause is Cause.ORIGINATOR_CANCEL
    _run(clock, 80.0)
    h.stack.stop()


def test_a_hangup_before_any_answer_still_cancels_once_the_peer_speaks(clock: Clock) -> None:
    h = Harness(clock)
    leg = _outgoing(h)
    invite = h.sent()[0][1]
    assert isinstance(invite, Request)
    leg.hangup(Cause.ORIGINATOR_CANCEL)
    assert leg.state is LegState.ENDED
    h.stack.datagram_received(_answer(invite, 100), FAR)
    methods = [m.method for _, m in h.sent() if isinstance(m, Request)]
    assert methods == ["INVITE", "CANCEL"], "the held CANCEL goes out on the first provisional"
    h.stack.datagram_received(_answer(invite, 180), FAR)
    assert [m.method for _, m in h.sent() if isinstance(m, Request)].count("CANCEL") == 1
    _run(clock, 80.0)
    h.stack.stop()


def test_owners_hear_of_the_end_before_the_media_closes(clock: Clock) -> None:
    """What runs on the leg (a Speak) must be cancelled as a hangup, not failed by its
    closing session: so the leg's ``ended`` fires while the media is still open."""
    h = Harness(clock)
    leg = h.invite()
    leg.answer()
    session = h.engine.sessions[0]
    seen: list[bool] = []
    leg.ended.addCallback(lambda end: seen.append(session.closed))
    h.stack.datagram_received(
        request_bytes(
            "BYE", "z9hG4bKbye", uri="sip:telephony@127.0.0.1:5060", cseq=2, to_tag=leg.local_tag
        ),
        PHONE,
    )
    assert leg.state is LegState.ENDED
    assert seen == [False]
    assert session.closed
    _run(clock, 80.0)
    h.stack.stop()
