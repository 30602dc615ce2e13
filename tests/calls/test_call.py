"""A Call on fakes: its parameters, what it runs, what its end cancels and reports,
and the direct ringing of an endpoint, timed on a ``task.Clock``."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from twisted.internet.task import Clock

from media import Direction
from media.sdp import Origin, make_offer
from telephony.calls.call import Call
from telephony.calls.call_services import CallServices
from telephony.calls.causes import Cause
from telephony.calls.leg import LegState
from telephony.directory import Application
from telephony.directory.models import ApplicationFields
from tests.calls.fakes import (
    FakeCdrs,
    FakeFetcher,
    FakeJournal,
    FakeLeg,
    FakeSwitchboard,
    make_services,
)
from xml_dsl import Method
from xml_dsl.verbs import User

#: 2023-11-14 22:13:20 UTC: an epoch, so that the CDR's times are real dates.
EPOCH = 1_700_000_000.0
ANSWER_URL = "http://app.test/answer"
HANGUP_URL = "http://app.test/hangup"
FALLBACK_URL = "http://app.test/fallback"
NEXT_URL = "http://app.test/next"


def _app(**fields: str) -> Application:
    values = {"app_name": "test", "answer_url": ANSWER_URL, **fields}
    return Application("app-1", ApplicationFields(**values), None, "")  # type: ignore[arg-type]


@attrs.define
class Setup:
    clock: Clock
    services: CallServices
    fetcher: FakeFetcher
    cdrs: FakeCdrs
    switchboard: FakeSwitchboard
    leg: FakeLeg
    call: Call


def _setup(
    clock: Clock, tmp_path: Path, application: Application | None = None, **services: object
) -> Setup:
    clock.advance(EPOCH)
    made, fetcher, cdrs, switchboard = make_services(clock, tmp_path, **services)
    leg = FakeLeg("a-leg", clock)
    call = Call(
        services=made,
        leg=leg,  # type: ignore[arg-type]
        direction="inbound",
        caller="alice",
        called="18001231234",
        caller_name="Alice",
        application=application,
    )
    return Setup(clock, made, fetcher, cdrs, switchboard, leg, call)


def test_params_follow_the_leg(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path)
    params = dict(s.call.params())
    assert params == {
        "CallUUID": "a-leg",
        "From": "alice",
        "To": "18001231234",
        "Direction": "inbound",
        "CallStatus": "ringing",
        "CallerName": "Alice",
    }
    s.leg.answer()
    assert s.call.params()["CallStatus"] == "in-progress"
    s.leg.end(Cause.NORMAL, "Caller")
    assert s.call.params()["CallStatus"] == "completed"


def test_a_b_call_names_its_request_and_parent(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path)
    b = Call(
        services=s.services,
        leg=FakeLeg("b-leg", clock),  # type: ignore[arg-type]
        direction="outbound",
        caller="alice",
        called="sip:bob@example.test",
        request_uuid="req-1",
        parent=s.call,
    )
    b.extra_params["DialBLegStatus"] = "answer"
    params = b.params()
    assert (params["RequestUUID"], params["ALegUUID"]) == ("req-1", "a-leg")
    assert params["DialBLegStatus"] == "answer"


def test_no_application_hangs_up_with_its_cause(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path)
    s.call.run_application()
    assert s.leg.hangups == [(Cause.NO_APPLICATION, "Plivo")]
    assert s.call.execution is None
    assert s.fetcher.fetched == []


def test_the_application_is_fetched_with_the_calls_params(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path, _app(answer_method="GET"))
    s.call.run_application()
    [(url, method, params)] = s.fetcher.fetched
    assert (url, method) == (ANSWER_URL, Method.GET)
    assert (params["CallUUID"], params["CallStatus"], params["From"]) == (
        "a-leg",
        "ringing",
        "alice",
    )
    s.leg.end(Cause.NORMAL, "Caller")


def test_the_legs_end_cancels_the_document_and_ends_the_call(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path, _app())
    s.call.run_application()
    execution = s.call.execution
    assert execution is not None
    [fetching] = s.fetcher.pending
    waiting = s.call.when_ended()
    assert not waiting.called
    s.leg.end(Cause.NORMAL, "Caller")
    assert fetching.called
    assert s.fetcher.cancelled == [ANSWER_URL], "the answer_url request is cancelled"
    assert execution.called, "the execution is over"
    assert waiting.called
    assert waiting.result is None
    assert [(call, end.cause) for call, end in s.switchboard.ended] == [(s.call, Cause.NORMAL)]
    assert s.call.when_ended().called, "once over, at once"


def test_one_cdr_and_the_hangup_url_with_the_figures(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path, _app(hangup_url=HANGUP_URL, hangup_method="GET"))
    clock.advance(5.0)
    s.leg.answer()
    clock.advance(60.75)
    s.leg.end(Cause.NORMAL, "Caller")
    [record] = s.cdrs.written
    assert (record.call_uuid, record.call_status, record.app_id) == ("a-leg", "completed", "app-1")
    assert (record.start_time, record.answer_time, record.end_time) == (
        "2023-11-14 22:13:20",
        "2023-11-14 22:13:25",
        "2023-11-14 22:14:25",
    )
    assert (record.duration, record.bill_duration) == (65, 60)
    assert (record.hangup_cause_name, record.hangup_cause_code, record.hangup_source) == (
        "Normal Hangup",
        4000,
        "Caller",
    )
    assert record.sip_call_id == "a-leg@example.test"
    [(url, method, params)] = s.fetcher.notified
    assert (url, method) == (HANGUP_URL, Method.GET)
    assert params["HangupCause"] == "Normal Hangup"
    assert (params["Duration"], params["BillDuration"], params["HangupSource"]) == (
        "65",
        "60",
        "Caller",
    )
    assert params["CallStatus"] == "completed"


@pytest.mark.parametrize(
    ("cause", "status"),
    [
        (Cause.BUSY, "busy"),
        (Cause.NO_ANSWER, "no-answer"),
        (Cause.ORIGINATOR_CANCEL, "cancel"),
        (Cause.FAILED, "failed"),
        (Cause.MEDIA_FAILURE, "failed"),
    ],
)
def test_an_unanswered_calls_status(
    clock: Clock, tmp_path: Path, cause: Cause, status: str
) -> None:
    s = _setup(clock, tmp_path, _app())
    s.leg.end(cause, "Callee", 486)
    [record] = s.cdrs.written
    assert (record.call_status, record.bill_duration, record.answer_time) == (status, 0, None)
    assert s.fetcher.notified == [], "no hangup_url: nobody told"


def test_a_journaled_call_is_noted_at_its_start_and_answer(clock: Clock, tmp_path: Path) -> None:
    journal = FakeJournal()
    s = _setup(clock, tmp_path, _app(hangup_url=HANGUP_URL), journal=journal)
    [entry] = journal.started_calls
    assert (entry.call_uuid, entry.direction, entry.app_id, entry.sip_call_id) == (
        "a-leg",
        "inbound",
        "app-1",
        "a-leg@example.test",
    )
    assert (entry.started_at, entry.hangup_url, entry.hangup_method) == (EPOCH, HANGUP_URL, "POST")
    clock.advance(2.5)
    s.leg.answer()
    assert journal.answers == [("a-leg", EPOCH + 2.5)]
    s.leg.end(Cause.NORMAL, "Caller")
    assert journal.answers == [("a-leg", EPOCH + 2.5)], "the end is the CDR's, not the journal's"


def test_transfer_cancels_what_runs_and_fetches_the_new_url(clock: Clock, tmp_path: Path) -> None:
    waiting = FakeFetcher({ANSWER_URL: b'<Response><Wait length="30"/></Response>'})
    s = _setup(clock, tmp_path, _app(), fetcher=waiting)
    s.call.run_application()
    first = s.call.execution
    assert first is not None
    assert len(clock.getDelayedCalls()) == 1, "the document waits"
    s.call.transfer("http://app.test/next", Method.GET)
    assert first.called
    assert clock.getDelayedCalls() == [], "the Wait is cancelled"
    assert [(u, m) for u, m, _ in s.fetcher.fetched] == [
        (ANSWER_URL, Method.POST),
        ("http://app.test/next", Method.GET),
    ]
    assert s.leg.hangups == [], "a transfer does not hang up"
    assert s.call.execution is not first
    s.leg.end(Cause.NORMAL, "Caller")
    assert s.fetcher.cancelled == ["http://app.test/next"]


def test_a_transfer_during_the_first_fetch_runs_the_new_url(clock: Clock, tmp_path: Path) -> None:
    # The answer_url is still being fetched (FakeFetcher holds it) when the REST
    # transfer comes: its cancellation is no failure of the answer_url.
    fetcher = FakeFetcher({NEXT_URL: b'<Response><Wait length="30"/></Response>'})
    s = _setup(clock, tmp_path, _app(fallback_answer_url=FALLBACK_URL), fetcher=fetcher)
    s.call.run_application()
    first = s.call.execution
    assert first is not None
    s.call.transfer(NEXT_URL, Method.GET)
    assert first.called
    assert s.fetcher.cancelled == [ANSWER_URL]
    assert [(u, m) for u, m, _ in s.fetcher.fetched] == [
        (ANSWER_URL, Method.POST),
        (NEXT_URL, Method.GET),
    ], "no fallback_answer_url"
    assert s.leg.hangups == [], "no hangup with URL_UNREACHABLE"
    assert s.leg.state is not LegState.ENDED
    assert len(clock.getDelayedCalls()) == 1, "the new document runs (it waits)"
    s.leg.end(Cause.NORMAL, "Caller")
    assert clock.getDelayedCalls() == []
    [record] = s.cdrs.written
    assert record.hangup_cause_name == "Normal Hangup"


# -- an endpoint rung directly ---------------------------------------------------------


def test_ringing_an_endpoint_gives_up_at_the_ring_timeout_exactly(
    clock: Clock, tmp_path: Path
) -> None:
    s = _setup(clock, tmp_path, ring_timeout=25)
    b = FakeLeg("b-leg", clock)
    s.switchboard.queued.append(b)
    s.call.ring_endpoint("bob")
    [(_, target, position)] = s.switchboard.placed
    assert (target, position) == (User(uri="sip:bob@example.test"), 1)
    assert b.started == 1
    clock.advance(24.999)
    assert s.leg.hangups == []
    assert b.hangups == []
    clock.advance(0.001)
    assert b.hangups == [(Cause.NO_ANSWER, "Plivo")]
    assert s.leg.hangups == [(Cause.NO_ANSWER, "Plivo")]


def test_an_answered_endpoint_is_bridged_and_its_hangup_ends_the_call(
    clock: Clock, tmp_path: Path
) -> None:
    s = _setup(clock, tmp_path)
    b = FakeLeg("b-leg", clock)
    s.switchboard.queued.append(b)
    s.call.ring_endpoint("bob")
    b.peer_rings()
    assert s.leg.state.value == "ringing", "the caller hears it ring"
    clock.advance(10.0)
    b.peer_answers()
    assert s.leg.answered
    [limit] = clock.getDelayedCalls()
    assert limit.getTime() == EPOCH + 10.0 + 14_400, "the ring timeout gives way to the limit"
    clock.advance(600.0)
    assert (b.hangups, s.leg.hangups) == ([], []), "the bridged call outlasts the ring timeout"
    b.end(Cause.NORMAL, "Callee")
    assert s.leg.hangups == [(Cause.NORMAL, "Plivo")]
    assert (s.leg.bill_duration(), b.bill_duration()) == (600, 600)


def test_a_bridged_endpoint_call_ends_at_the_time_limit(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path)
    b = FakeLeg("b-leg", clock)
    s.switchboard.queued.append(b)
    s.call.ring_endpoint("bob")
    clock.advance(10.0)
    b.peer_answers()
    clock.advance(14_399.999)
    assert b.hangups == []
    clock.advance(0.001)
    assert b.hangups == [(Cause.TIME_LIMIT, "Plivo")]
    assert s.leg.hangups == [(Cause.NORMAL, "Plivo")]


@pytest.mark.parametrize(
    ("b_cause", "a_cause"),
    [(Cause.BUSY, Cause.BUSY), (Cause.NOT_FOUND, Cause.FAILED), (Cause.FAILED, Cause.FAILED)],
)
def test_an_endpoint_that_refuses_ends_the_call_with_the_matching_cause(
    clock: Clock, tmp_path: Path, b_cause: Cause, a_cause: Cause
) -> None:
    s = _setup(clock, tmp_path)
    b = FakeLeg("b-leg", clock)
    s.switchboard.queued.append(b)
    s.call.ring_endpoint("bob")
    b.end(b_cause, "Callee", 486)
    assert s.leg.hangups == [(a_cause, "Plivo")]
    assert clock.getDelayedCalls() == []


def test_an_endpoint_that_cannot_be_placed_fails_the_call(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path)
    s.switchboard.queued.append(Cause.NO_ANSWER)  # not registered
    s.call.ring_endpoint("bob")
    assert s.leg.hangups == [(Cause.FAILED, "Plivo")]
    assert clock.getDelayedCalls() == []


def test_the_callers_hangup_cancels_the_endpoints_leg(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path)
    b = FakeLeg("b-leg", clock)
    s.switchboard.queued.append(b)
    s.call.ring_endpoint("bob")
    b.peer_rings()
    s.leg.end(Cause.ORIGINATOR_CANCEL, "Caller")
    assert b.hangups == [(Cause.ORIGINATOR_CANCEL, "Plivo")]
    assert s.leg.hangups == [], "the caller's leg is over already"
    assert clock.getDelayedCalls() == []


def test_hold_and_resume_are_passed_on_to_the_bridged_leg(clock: Clock, tmp_path: Path) -> None:
    s = _setup(clock, tmp_path)
    b_leg = FakeLeg("b-leg", clock)
    Call(
        services=s.services,
        leg=b_leg,  # type: ignore[arg-type]
        direction="outbound",
        caller="alice",
        called="bob",
        parent=s.call,
    )
    assert b_leg.on_reoffer is not None

    def offer(version: int, direction: Direction) -> object:
        origin = Origin("phone", 7, version, "10.0.0.2")
        return make_offer(origin, address="10.0.0.2", port=31000, direction=direction)

    b_leg.on_reoffer(b_leg, offer(1, Direction.SENDRECV))  # type: ignore[arg-type]
    assert s.leg.reinvites == [], "no change of hold: nothing to pass on"
    answer = b_leg.on_reoffer(b_leg, offer(2, Direction.SENDONLY))  # type: ignore[arg-type]
    assert s.leg.reinvites == [Direction.SENDONLY]
    assert answer.media[0].direction is Direction.RECVONLY
    b_leg.on_reoffer(b_leg, offer(3, Direction.SENDRECV))  # type: ignore[arg-type]
    assert s.leg.reinvites == [Direction.SENDONLY, Direction.SENDRECV]
