"""The leg's state table, and real legs keeping to it."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock

from media import parse_sdp
from media.sdp import Origin, answer_offer
from telephony.calls.leg_state import (
    ACCEPTS,
    TRANSITIONS,
    LegEvent,
    LegState,
    Role,
    accepts,
    may_move,
)
from telephony.sip.message import Request, Response, parse_datagram
from tests.calls.test_leg import FAR, Harness, _answer, _outgoing, _run


def test_nothing_follows_the_end() -> None:
    assert TRANSITIONS[LegState.ENDED] == frozenset()
    live = [(role, event) for (role, event), states in ACCEPTS.items() if LegState.ENDED in states]
    assert live == [(Role.UAS, LegEvent.ACK)], "only a late ACK is heard after the end"


def test_every_state_is_reachable_and_the_answer_only_ends() -> None:
    reached = {LegState.NEW}
    frontier = [LegState.NEW]
    while frontier:
        for state in TRANSITIONS[frontier.pop()]:
            if state not in reached:
                reached.add(state)
                frontier.append(state)
    assert reached == set(LegState)
    assert TRANSITIONS[LegState.ANSWERED] == {LegState.ENDED}
    assert may_move(LegState.EARLY, LegState.RINGING), "a 180 after a 183"
    assert not may_move(LegState.ANSWERED, LegState.RINGING)


def test_one_sides_events_do_nothing_on_the_other() -> None:
    for event in (LegEvent.RING, LegEvent.ANSWER, LegEvent.REJECT, LegEvent.CANCELLED):
        assert not any(accepts(Role.UAC, event, state) for state in LegState)
    for event in (LegEvent.START, LegEvent.CANCEL, LegEvent.PROVISIONAL, LegEvent.FAILED):
        assert not any(accepts(Role.UAS, event, state) for state in LegState)
    assert accepts(Role.UAS, LegEvent.HANGUP, LegState.NEW)
    assert not accepts(Role.UAS, LegEvent.HANGUP, LegState.ENDED)


def _statuses(h: Harness) -> list[int]:
    return [m.status for _, m in h.sent() if isinstance(m, Response)]


def _methods(h: Harness) -> list[str]:
    return [m.method for _, m in h.sent() if isinstance(m, Request)]


def test_an_incoming_leg_rings_once_and_answers_once(clock: Clock) -> None:
    h = Harness(clock)
    leg = h.invite()
    seen: list[LegState] = []
    leg.listeners.append(lambda _, state: seen.append(state))
    leg.ring()
    leg.ring()
    leg.answer()
    leg.ring()
    leg.pre_answer()
    leg.answer()
    assert _statuses(h) == [180, 200]
    assert seen == [LegState.RINGING, LegState.ANSWERED]
    leg.hangup()
    leg.hangup()
    assert _methods(h) == ["BYE"], "one BYE: a hangup after the end is nothing"
    assert seen[-1] is LegState.ENDED
    _run(clock, 80.0)
    h.stack.stop()


def test_a_late_provisional_does_not_unanswer_an_outgoing_leg(clock: Clock) -> None:
    h = Harness(clock)
    leg = _outgoing(h)
    invite = h.sent()[0][1]
    assert isinstance(invite, Request)
    offer = parse_sdp(invite.body)
    answer, _ = answer_offer(offer, Origin("gw", 2, 1, "10.0.0.2"), address="10.0.0.2", port=31000)
    h.stack.datagram_received(_answer(invite, 200, answer.to_bytes()), FAR)
    assert leg.state is LegState.ANSWERED
    seen: list[Any] = []
    leg.listeners.append(lambda _, state: seen.append(state))
    leg.ring()  # a UAS's event: nothing on a UAC
    late = parse_datagram(_answer(invite, 180))
    assert isinstance(late, Response)
    leg._uac_response(late)  # type: ignore[attr-defined]
    assert leg.state is LegState.ANSWERED
    assert seen == []
    leg.hangup()
    _run(clock, 80.0)
    h.stack.stop()


def test_a_forbidden_move_is_not_made(clock: Clock) -> None:
    h = Harness(clock)
    leg = h.invite()
    leg.answer()
    seen: list[LegState] = []
    leg.listeners.append(lambda _, state: seen.append(state))
    leg._set_state(LegState.RINGING)
    assert leg.state is LegState.ANSWERED
    assert seen == []
    leg.hangup()
    _run(clock, 80.0)
    h.stack.stop()
