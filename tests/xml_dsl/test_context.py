"""The Dial and Conference runners against a RunContext built from fakes: what they
use of the execution is the context's public hooks, and nothing else."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from tests.xml_dsl.fakes import FakeCall, FakeFetcher
from xml_dsl._dialing import run_conference, run_dial
from xml_dsl._values import Method
from xml_dsl.context import RunContext
from xml_dsl.control import (
    ConferenceExit,
    ConferenceResult,
    DialEnd,
    DialStatus,
    RecordMode,
    RecordResult,
    RecordSpec,
)
from xml_dsl.executor import Execution, Limits
from xml_dsl.verbs import Conference, Dial, FileFormat, Number, Play, Record, Response


class Hooks:
    """Records what a runner asks of its context."""

    def __init__(self, armed: Record | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.armed = armed

    def context(self, call: FakeCall, clock: Clock, limits: Limits | None = None) -> RunContext:
        return RunContext(
            call=call,
            fetcher=FakeFetcher(),
            clock=clock,
            limits=limits or Limits(),
            answered=self.answered,
            reached_caller=lambda: self.calls.append(("reached", None)),
            params=lambda extra: {"CallUUID": call.call_uuid, **extra},
            notify=lambda url, method, params: self.calls.append(("notify", (url, dict(params)))),
            fetch_prompts=self.fetch_prompts,
            after=self.after,
            recorded=lambda verb: lambda result: self.calls.append(("recorded", result.url)),
            armed_dial_record=lambda: self.armed,
        )

    def answered(self) -> Deferred[None]:
        self.calls.append(("answered", None))
        return succeed(None)

    def fetch_prompts(self, url: str, what: str) -> Deferred[tuple[Play, ...]]:
        self.calls.append(("fetch_prompts", (url, what)))
        return succeed((Play(url),))

    def after(
        self, action: str | None, method: Method, redirect: bool, extra: Mapping[str, str]
    ) -> Deferred[Response | None]:
        self.calls.append(("after", (action, dict(extra))))
        return succeed(None)

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.calls]


def test_dial_uses_the_context_clock_limits_and_hooks() -> None:
    clock = Clock()
    call = FakeCall(clock)
    armed = Record(start_on_dial_answer=True, file_format=FileFormat.WAV)
    hooks = Hooks(armed)
    verb = Dial((Number("123"),), confirm_sound="http://app.example/confirm")
    ctx = hooks.context(call, clock, Limits(default_ring_timeout=7))
    d = Deferred.fromCoroutine(run_dial(ctx, verb))
    (attempt,) = call.dials
    assert attempt.spec.timeout == 7  # no Dial timeout: the context's limit
    assert attempt.spec.record == RecordSpec.of(armed, RecordMode.DIAL)
    assert [p.url for p in attempt.spec.confirm_prompts] == ["http://app.example/confirm"]
    clock.advance(7)  # the ring timeout runs on the context's clock
    assert attempt.ended == [DialEnd.NO_ANSWER]
    assert d.result.status is DialStatus.NO_ANSWER  # type: ignore[attr-defined]
    assert hooks.kinds() == ["reached", "fetch_prompts"]
    assert clock.getDelayedCalls() == []


def test_conference_answers_reports_and_requests_its_action_through_the_context() -> None:
    clock = Clock()
    call = FakeCall(clock)
    hooks = Hooks()
    verb = Conference(
        "room",
        wait_sound="http://app.example/wait",
        callback_url="http://app.example/cb",
        action="http://app.example/next",
    )
    d = Deferred.fromCoroutine(run_conference(hooks.context(call, clock), verb))
    ((spec, _on_event, joined),) = call.conferences
    assert [p.url for p in spec.wait_prompts] == ["http://app.example/wait"]
    joined.callback(ConferenceResult("conf-1", "m-1", exit=ConferenceExit.KICKED))
    assert d.result is None  # type: ignore[attr-defined]
    assert hooks.kinds() == ["answered", "fetch_prompts", "after"]
    action, extra = hooks.calls[-1][1]
    assert action == "http://app.example/next"
    assert extra["ConferenceName"] == "room"


def test_a_full_room_asks_for_no_action() -> None:
    clock = Clock()
    call = FakeCall(clock)
    hooks = Hooks()
    d = Deferred.fromCoroutine(run_conference(hooks.context(call, clock), Conference("room")))
    call.conferences[0][2].callback(ConferenceResult("c", "m", exit=ConferenceExit.FULL))
    assert d.result is None  # type: ignore[attr-defined]
    assert hooks.kinds() == ["answered"]


def test_the_executor_hands_runners_its_own_hooks() -> None:
    clock = Clock()
    call = FakeCall(clock)
    execution = Execution(call, FakeFetcher(), clock=clock)
    ctx = execution.context
    assert ctx.call is call
    assert ctx.clock is clock
    assert ctx.call_uuid == call.call_uuid
    assert ctx.armed_dial_record() is None
    assert ctx.params({"X": "1"})["X"] == "1"
    recorded = RecordResult("http://rec.example/1", "r1", 1, 1000, 2000)
    ctx.recorded(Record(callback_url="http://app.example/rec"))(recorded)
    (url, _method, params) = execution.fetcher.notified[0]  # type: ignore[attr-defined]
    assert url == "http://app.example/rec"
    assert params["RecordUrl"] == "http://rec.example/1"
