"""A refused caller is told the cause in a ``Reason`` header (RFC 3326).

Found by the calls interop test (issue 6): with its answer_url down and no fallback,
a phone got only ``480 Temporarily Unavailable``, which does not say why.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.task import Clock

from telephony.calls.causes import Cause
from telephony.calls.leg import Leg, LegState, SipContext
from telephony.calls.leg_uas import IncomingLeg
from telephony.sip.message import Request, Response
from telephony.sip.peer import Peer
from telephony.sip.stack import ServerTransactionHandle
from tests.sip.helpers import make_stack, request_bytes

PHONE = Peer("udp", "10.0.0.1", 5060)


class _NoMedia:
    """Rejecting a call never touches media."""

    def create_session(self, **kwargs: Any) -> Any:
        raise AssertionError("no media for a refused call")


def _refused(clock: Clock, refuse: Any) -> Response:
    legs: list[Leg] = []

    def respond(request: Request, txn: ServerTransactionHandle) -> None:
        leg = IncomingLeg(
            request,
            txn,
            uuid="leg",
            ctx=ctx,
            media=_NoMedia(),
            clock=clock,  # type: ignore[arg-type]
        )
        legs.append(leg)
        refuse(leg)

    stack, transport, _ = make_stack(clock, respond)
    ctx = SipContext(stack, "127.0.0.1:5060", "sip:telephony@127.0.0.1:5060", "example.test")
    invite = request_bytes(
        "INVITE", "z9hG4bKinv", uri="sip:1800@example.test",
        extra="Contact: <sip:alice@10.0.0.1:5060>\r\n",
    )  # fmt: skip
    stack.datagram_received(invite, PHONE)
    (leg,) = legs
    assert leg.state is LegState.ENDED
    (response,) = [m for m in transport.messages() if isinstance(m, Response)]
    clock.advance(64)  # let the INVITE server transaction time out
    return response


@pytest.mark.parametrize(
    ("cause", "status", "text"),
    [
        (Cause.URL_UNREACHABLE, 480, "Error Reaching Application URL"),
        (Cause.BUSY, 486, "Busy Line"),
        (Cause.NO_APPLICATION, 480, "No Application"),
    ],
)
def test_hangup_of_an_unanswered_call_names_its_cause(
    clock: Clock, cause: Cause, status: int, text: str
) -> None:
    response = _refused(clock, lambda leg: leg.hangup(cause))
    assert response.status == status
    assert response.headers.get("Reason") == f'SIP;cause={status};text="{text}"'


def test_reject_with_a_status_names_the_cause_it_maps_to(clock: Clock) -> None:
    response = _refused(clock, lambda leg: leg.reject(503, "Service Unavailable (no media ports)"))
    assert response.status == 503
    assert response.reason == "Service Unavailable (no media ports)"
    assert response.headers.get("Reason") == 'SIP;cause=503;text="Call Failed"'
