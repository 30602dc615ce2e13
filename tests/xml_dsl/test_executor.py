"""Documents run end to end against a fake call on a task.Clock."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from tests.xml_dsl.fakes import MEDIA_SECONDS, FakeCall, FakeFetcher
from xml_dsl import FetchError, parse
from xml_dsl.control import (
    Beep,
    DialEnd,
    DialEvent,
    DialEventKind,
    DialResult,
    DialStatus,
    EndedBy,
    HangupCause,
    Outcome,
    RecordMode,
    RecordResult,
    SpeechResult,
)
from xml_dsl.executor import MAX_REDIRECT_CHAIN, Execution, Limits, execute
from xml_dsl.interfaces import ICallControl, IDialAttempt, IFetcher

APP = "http://127.0.0.1:9/"


def run(
    clock: Clock,
    xml: bytes,
    docs: dict[str, bytes | Exception] | None = None,
    limits: Limits | None = None,
) -> tuple[FakeCall, FakeFetcher, Execution]:
    call = FakeCall(clock)
    fetcher = FakeFetcher(docs)
    ex = execute(call, fetcher, parse(xml), clock=clock, limits=limits or Limits())
    return call, fetcher, ex


def drain(clock: Clock) -> None:
    """Run every pending timer (media, pauses) to the end."""
    for _ in range(100):
        calls = clock.getDelayedCalls()
        if not calls:
            return
        clock.advance(min(c.getTime() for c in calls) - clock.seconds())
    raise AssertionError("timers keep coming")


def outcome(ex: Execution) -> Outcome:
    assert ex.done.called, "execution still running"
    results: list[Outcome] = []
    ex.done.addCallback(results.append)
    return results[0]


def test_fakes_implement_the_interfaces(clock: Clock) -> None:
    call = FakeCall(clock)
    assert verifyObject(ICallControl, call)
    assert verifyObject(IFetcher, FakeFetcher())
    assert verifyObject(IDialAttempt, call.dial(None, print))  # type: ignore[arg-type]


def test_speak_then_end_of_document_hangs_up(clock: Clock) -> None:
    call, _, ex = run(clock, b"<Response><Speak>Hello</Speak></Response>")
    assert call.names() == ["answer", "speak"]
    clock.advance(MEDIA_SECONDS)
    assert call.names() == ["answer", "speak", "hangup"]
    assert outcome(ex) == Outcome(EndedBy.DOCUMENT, HangupCause.END_OF_XML)


def test_speak_loop_repeats(clock: Clock) -> None:
    call, _, ex = run(clock, b'<Response><Speak loop="3">Hi</Speak></Response>')
    clock.pump([MEDIA_SECONDS] * 3)
    assert call.names() == ["answer", "speak", "speak", "speak", "hangup"]
    assert ex.done.called


MENU = b"""<Response>
  <GetDigits action="http://127.0.0.1:9/menu" method="GET" numDigits="1" timeout="5"
             retries="2">
    <Speak>Press 1 for sales</Speak>
  </GetDigits>
  <Speak>No input</Speak>
</Response>"""


def test_menu_digit_barges_in_and_requests_the_action(clock: Clock) -> None:
    docs = {APP + "menu": b"<Response><Play>http://127.0.0.1:9/sales.wav</Play></Response>"}
    call, fetcher, ex = run(clock, MENU, docs)
    clock.advance(1)
    call.press("1")
    assert call.cancelled == ["speak"]  # the prompt stopped at the first key
    ((url, method, params),) = fetcher.fetched
    assert (url, method.value) == (APP + "menu", "GET")
    assert params["Digits"] == "1"
    assert params["CallUUID"] == "a-leg-uuid"
    assert params["CallStatus"] == "in-progress"
    clock.advance(MEDIA_SECONDS)
    assert call.names() == ["answer", "speak", "play", "hangup"]
    assert outcome(ex).documents == 2


def test_menu_with_finish_key_and_digit_timeout(clock: Clock) -> None:
    xml = b"""<Response><GetDigits action="http://127.0.0.1:9/pin" digitTimeout="3">
      <Speak>Enter your PIN then hash</Speak></GetDigits></Response>"""
    docs = {APP + "pin": b"<Response/>"}
    call, fetcher, _ = run(clock, xml, docs)
    clock.advance(MEDIA_SECONDS)
    call.press("12")
    clock.advance(2.9)
    call.press("34#")
    assert fetcher.fetched[0][2]["Digits"] == "1234"
    call2, fetcher2, _ = run(clock, xml, docs)
    clock.advance(MEDIA_SECONDS)
    call2.press("56")
    clock.advance(3)  # digitTimeout submits what was entered
    assert fetcher2.fetched[0][2]["Digits"] == "56"


def test_menu_without_input_retries_then_goes_on(clock: Clock) -> None:
    call, fetcher, ex = run(clock, MENU)
    clock.advance(MEDIA_SECONDS)  # prompt
    clock.advance(5)  # timeout
    clock.advance(MEDIA_SECONDS)  # prompt again (retries=2)
    clock.advance(5)
    assert call.names() == ["answer", "speak", "speak", "speak"]
    assert call.ops[-1][2] == "No input"
    clock.advance(MEDIA_SECONDS)
    assert fetcher.fetched == []
    assert outcome(ex).cause is HangupCause.END_OF_XML


def test_invalid_digit_plays_the_sound_and_retries(clock: Clock) -> None:
    xml = b"""<Response><GetDigits action="http://127.0.0.1:9/a" validDigits="12"
      retries="2" invalidDigitsSound="http://127.0.0.1:9/bad.wav" numDigits="1">
      <Speak>1 or 2</Speak></GetDigits></Response>"""
    call, fetcher, _ = run(clock, xml, {APP + "a": b"<Response/>"})
    call.press("9")
    assert call.names()[-1] == "play"
    clock.advance(MEDIA_SECONDS)  # invalid sound
    assert call.names()[-1] == "speak"  # second attempt
    call.press("2")
    assert fetcher.fetched[0][2]["Digits"] == "2"


def test_redirect_chain_is_followed(clock: Clock) -> None:
    docs = {
        APP + "1": b"<Response><Redirect>http://127.0.0.1:9/2</Redirect></Response>",
        APP + "2": b'<Response><Redirect method="GET">http://127.0.0.1:9/3</Redirect></Response>',
        APP + "3": b"<Response><Hangup/></Response>",
    }
    call, fetcher, ex = run(
        clock,
        b"<Response><Redirect>http://127.0.0.1:9/1</Redirect><Speak>never</Speak></Response>",
        docs,
    )
    assert [u for u, _, _ in fetcher.fetched] == [APP + "1", APP + "2", APP + "3"]
    assert [m.value for _, m, _ in fetcher.fetched] == ["POST", "POST", "GET"]
    assert call.names() == ["hangup"]
    assert outcome(ex) == Outcome(EndedBy.DOCUMENT, HangupCause.REJECTED, documents=4)


def test_a_redirect_loop_ends_the_call_with_a_clear_error(clock: Clock) -> None:
    loop = b"<Response><Redirect>http://127.0.0.1:9/loop</Redirect></Response>"
    call, fetcher, ex = run(clock, loop, {APP + "loop": loop})
    result = outcome(ex)
    assert result.ended_by is EndedBy.ERROR
    assert result.cause is HangupCause.LIMIT_REACHED
    assert "redirect loop" in (result.error or "")
    assert len(fetcher.fetched) == MAX_REDIRECT_CHAIN
    assert call.hangups == [HangupCause.LIMIT_REACHED]


def test_a_menu_loop_is_bounded_by_the_document_limit(clock: Clock) -> None:
    menu = b"<Response><Speak>Hi</Speak><Redirect>http://127.0.0.1:9/m</Redirect></Response>"
    _, _, ex = run(clock, menu, {APP + "m": menu}, Limits(max_documents=4))
    clock.pump([MEDIA_SECONDS] * 4)
    result = outcome(ex)
    assert result.cause is HangupCause.LIMIT_REACHED
    assert "more than 4 documents" in (result.error or "")


@pytest.mark.parametrize(
    ("body", "cause", "text"),
    [
        (
            b'<Response><Dial timeout="abc"><Number>1</Number></Dial></Response>',
            HangupCause.INVALID_XML,
            'line 1: <Dial timeout="abc">: timeout must be',
        ),
        (b"<html><body>502</body></html>", HangupCause.INVALID_XML, "root element"),
        (b"\x00\x01garbage", HangupCause.INVALID_XML, "not well-formed"),
        (None, HangupCause.URL_UNREACHABLE, "HTTP status 404"),
    ],
)
def test_errors_in_a_fetched_document_end_the_call(
    clock: Clock, body: bytes | None, cause: HangupCause, text: str
) -> None:
    docs: dict[str, bytes | Exception] = {} if body is None else {APP + "next": body}
    call, _, ex = run(
        clock,
        b"<Response><Speak>a</Speak><Redirect>http://127.0.0.1:9/next</Redirect></Response>",
        docs,
    )
    clock.advance(MEDIA_SECONDS)
    result = outcome(ex)
    assert (result.ended_by, result.cause) == (EndedBy.ERROR, cause)
    assert text in (result.error or "")
    assert call.hangups == [cause]


DIAL = b"""<Response>
  <Dial action="http://127.0.0.1:9/dialed" callbackUrl="http://127.0.0.1:9/events"
        timeout="20" timeLimit="600" callerId="+15550009999" hangupOnStar="true">
    <Number sendDigits="ww123">+15551112222</Number>
    <User sipHeaders="Team=blue">sip:alice@example.com</User>
  </Dial>
</Response>"""


def test_dial_answered_then_completed_requests_the_action(clock: Clock) -> None:
    call, fetcher, ex = run(clock, DIAL, {APP + "dialed": b"<Response/>"})
    (attempt,) = call.dials
    spec = attempt.spec
    assert (spec.timeout, spec.time_limit, spec.caller_id) == (20, 600, "+15550009999")
    assert [t.send_digits for t in spec.targets] == ["ww123", None]
    assert spec.targets[1].sip_headers == (("Team", "blue"),)
    assert call.answered is False  # the call layer answers when a B leg does
    clock.advance(10)
    attempt.answer()
    assert fetcher.notified[0][2]["DialAction"] == "answer"
    clock.advance(100)
    attempt.on_event(
        DialEvent(DialEventKind.HANGUP, "b-leg-1", hangup_cause="NORMAL_CLEARING", duration=100)
    )
    attempt.result.callback(
        attempt_result := DialResult(
            DialStatus.COMPLETED,
            rang=True,
            hangup_cause="NORMAL_CLEARING",
            b_leg_uuid="b-leg-1",
            duration=100,
        )
    )
    assert attempt_result.status is DialStatus.COMPLETED
    ((url, _, params),) = fetcher.fetched
    assert url == APP + "dialed"
    assert params["DialStatus"] == "completed"
    assert params["DialBLegUUID"] == "b-leg-1"
    assert params["DialALegUUID"] == "a-leg-uuid"
    assert params["DialRingStatus"] == "true"
    assert [n[2]["DialAction"] for n in fetcher.notified] == ["answer", "hangup"]
    assert outcome(ex).cause is HangupCause.END_OF_XML


def test_dial_ring_timeout_gives_no_answer(clock: Clock) -> None:
    call, fetcher, _ = run(clock, DIAL, {APP + "dialed": b"<Response/>"})
    clock.advance(19.9)
    assert call.dials[0].ended == []
    clock.advance(0.1)
    assert call.dials[0].ended == [DialEnd.NO_ANSWER]
    assert fetcher.fetched[0][2]["DialStatus"] == "no-answer"


def test_dial_time_limit_and_hangup_on_star(clock: Clock) -> None:
    call, _, _ = run(clock, DIAL, {APP + "dialed": b"<Response/>"})
    call.dials[0].answer()
    clock.advance(600)
    assert call.dials[0].ended == [DialEnd.TIME_LIMIT]
    call2, fetcher2, _ = run(clock, DIAL, {APP + "dialed": b"<Response/>"})
    call2.dials[0].answer()
    call2.press("*")
    assert call2.dials[0].ended == [DialEnd.HANGUP_ON_STAR]
    assert fetcher2.fetched[0][2]["DialStatus"] == "completed"


def test_dial_without_action_continues_with_the_next_verb(clock: Clock) -> None:
    call, _, _ = run(
        clock, b"<Response><Dial><Number>123</Number></Dial><Speak>after</Speak></Response>"
    )
    assert call.dials[0].spec.timeout == Limits().default_ring_timeout
    call.dials[0].end(DialEnd.NO_ANSWER)
    assert call.names()[-1] == "speak"
    clock.advance(MEDIA_SECONDS)


def test_hangup_schedule_interrupts_an_endless_speak(clock: Clock) -> None:
    call, _, ex = run(
        clock, b'<Response><Hangup schedule="10"/><Speak loop="0">Please hold</Speak></Response>'
    )
    clock.advance(9.9)
    assert not ex.done.called
    clock.advance(0.1)
    assert call.hangups == [HangupCause.SCHEDULED]
    assert "speak" in call.cancelled
    assert outcome(ex).cause is HangupCause.SCHEDULED


def test_far_end_hangup_mid_speak_cancels_it_and_stops(clock: Clock) -> None:
    call, fetcher, ex = run(
        clock,
        b"<Response><Speak>One</Speak><Speak>Two</Speak>"
        b"<Redirect>http://127.0.0.1:9/x</Redirect></Response>",
    )
    clock.advance(1)
    ex.far_end_hangup()
    assert call.cancelled == ["speak"]
    assert outcome(ex) == Outcome(EndedBy.FAR_END)
    clock.advance(100)
    assert call.names() == ["answer", "speak"]  # nothing more ran, no hangup sent
    assert fetcher.fetched == []


def test_cancelling_done_is_a_far_end_hangup(clock: Clock) -> None:
    call, _, ex = run(clock, DIAL)
    ex.done.cancel()
    assert call.dials[0].ended == [DialEnd.CALLER_HANGUP]
    assert outcome(ex).ended_by is EndedBy.FAR_END


@pytest.mark.parametrize(
    ("xml", "cause"),
    [
        (b"<Response><Hangup/></Response>", HangupCause.REJECTED),
        (b'<Response><Hangup reason="busy"/></Response>', HangupCause.BUSY),
        (b"<Response><Speak>bye</Speak><Hangup/></Response>", HangupCause.NORMAL),
    ],
)
def test_hangup_causes(clock: Clock, xml: bytes, cause: HangupCause) -> None:
    call, _, ex = run(clock, xml)
    clock.advance(MEDIA_SECONDS)
    assert call.hangups == [cause]
    assert outcome(ex).cause is cause


def test_wait_first_delays_the_answer(clock: Clock) -> None:
    call, _, _ = run(
        clock, b'<Response><Wait length="3"/><Wait length="2"/><Speak>hi</Speak></Response>'
    )
    assert call.names() == []
    clock.advance(3)
    assert call.names() == ["answer"]
    clock.advance(2)
    assert call.names() == ["answer", "speak"]
    drain(clock)


def test_wait_for_silence_ends_early(clock: Clock) -> None:
    call, _, _ = run(
        clock,
        b'<Response><Speak>x</Speak><Wait length="10" silence="true" '
        b'minSilence="500"/><Speak>y</Speak></Response>',
    )
    clock.advance(MEDIA_SECONDS)
    assert call.ops[-1][2].silence_ms == 500
    clock.advance(1)
    call.waits[0].callback(None)
    assert call.ops[-1][1:] == ("speak", "y")
    drain(clock)


def test_dtmf_pauses_run_on_the_clock(clock: Clock) -> None:
    call, _, ex = run(clock, b'<Response><DTMF async="false">12w3W#</DTMF></Response>')
    clock.pump([0.5, 1.0])
    assert [(t, a) for t, n, a in call.ops if n == "dtmf"] == [(0, "12"), (0.5, "3"), (1.5, "#")]
    assert ex.done.called


def test_async_dtmf_goes_on_after_the_first_keys(clock: Clock) -> None:
    call, _, _ = run(clock, b"<Response><DTMF>1W2</DTMF><Speak>on</Speak></Response>")
    assert call.names() == ["answer", "dtmf", "speak"]
    clock.advance(1)
    assert call.names() == ["answer", "dtmf", "speak", "dtmf"]
    drain(clock)


def test_pre_answer_plays_early_media_then_the_next_verb_answers(clock: Clock) -> None:
    call, _, _ = run(
        clock,
        b"<Response><PreAnswer><Speak>early</Speak></PreAnswer><Speak>answered</Speak></Response>",
    )
    assert call.names() == ["pre_answer", "speak"]
    clock.advance(MEDIA_SECONDS)
    assert call.names() == ["pre_answer", "speak", "answer", "speak"]
    drain(clock)


RESULT = RecordResult("http://127.0.0.1:9/rec/1.mp3", "rec-1", 4200, 1000, 5200, "#")


def test_record_requests_action_and_callback(clock: Clock) -> None:
    xml = (
        b'<Response><Record action="http://127.0.0.1:9/rec" maxLength="30" '
        b'callbackUrl="http://127.0.0.1:9/ready"/></Response>'
    )
    call, fetcher, _ = run(clock, xml, {APP + "rec": b"<Response/>"})
    assert call.names() == ["answer", "beep"]
    clock.advance(0.5)
    spec, d = call.records[0]
    assert (spec.mode, spec.max_length, spec.silence_timeout) == (RecordMode.FOREGROUND, 30, 15)
    d.callback(RESULT)
    params = fetcher.fetched[0][2]
    assert params["RecordUrl"] == RESULT.url
    assert params["RecordingDuration"] == "4"
    assert params["RecordingDurationMs"] == "4200"
    assert fetcher.notified[0][0] == APP + "ready"


def test_record_session_runs_in_the_background(clock: Clock) -> None:
    call, fetcher, ex = run(
        clock,
        b'<Response><Record recordSession="true" '
        b'callbackUrl="http://127.0.0.1:9/ready"/>'
        b"<Speak>go</Speak></Response>",
    )
    assert call.names() == ["answer", "record", "speak"]
    clock.advance(MEDIA_SECONDS)
    assert ex.done.called
    call.records[0][1].callback(RESULT)
    assert fetcher.notified[0][2]["RecordingID"] == "rec-1"


def test_record_start_on_dial_answer_rides_on_the_dial(clock: Clock) -> None:
    call, fetcher, _ = run(
        clock,
        b'<Response><Record startOnDialAnswer="true" '
        b'callbackUrl="http://127.0.0.1:9/ready"/>'
        b"<Dial><User>sip:bob@example.com</User></Dial></Response>",
    )
    spec = call.dials[0].spec
    assert spec.record is not None
    assert spec.record.mode is RecordMode.DIAL
    call.dials[0].result.callback(DialResult(DialStatus.COMPLETED, recording=RESULT))
    assert fetcher.notified[0][2]["RecordUrl"] == RESULT.url


def test_get_input_dtmf_and_speech(clock: Clock) -> None:
    xml = (
        b'<Response><GetInput action="http://127.0.0.1:9/in" inputType="dtmf speech" '
        b'executionTimeout="10" hints="sales,support"><Speak>Say or press</Speak>'
        b"</GetInput><Speak>nothing</Speak></Response>"
    )
    docs = {APP + "in": b"<Response/>"}
    call, fetcher, _ = run(clock, xml, docs)
    clock.advance(MEDIA_SECONDS)
    assert call.ops[-1][2].hints == ("sales", "support")
    call.speech[0].callback(SpeechResult("sales please", 0.87))
    params = fetcher.fetched[0][2]
    assert (params["InputType"], params["Speech"], params["SpeechConfidenceScore"]) == (
        "speech",
        "sales please",
        "0.87",
    )
    call2, fetcher2, _ = run(clock, xml, docs)
    call2.press("4#")
    assert fetcher2.fetched[0][2] == {**call2.params(), "InputType": "dtmf", "Digits": "4"}
    call3, fetcher3, _ = run(clock, xml, docs)
    clock.advance(MEDIA_SECONDS)
    clock.advance(10)
    assert fetcher3.fetched == []
    assert call3.ops[-1][1:] == ("speak", "nothing")
    drain(clock)


def test_conference_reports_events_and_requests_the_action(clock: Clock) -> None:
    from xml_dsl.control import ConferenceEvent, ConferenceEventKind, ConferenceResult

    xml = (
        b'<Response><Conference callbackUrl="http://127.0.0.1:9/conf" '
        b'action="http://127.0.0.1:9/left" digitsMatch="99" enterSound="beep:1">'
        b"room-7</Conference></Response>"
    )
    call, fetcher, _ = run(clock, xml, {APP + "left": b"<Response/>"})
    spec, on_event, d = call.conferences[0]
    assert (spec.room, spec.report_digits, spec.enter_sound) == ("room-7", True, Beep.ONE)
    on_event(ConferenceEvent(ConferenceEventKind.ENTER, "conf-1", "m-1"))
    on_event(ConferenceEvent(ConferenceEventKind.DIGITS, "conf-1", "m-1", digits="9"))
    on_event(ConferenceEvent(ConferenceEventKind.DIGITS, "conf-1", "m-1", digits="9"))
    assert [n[2]["ConferenceAction"] for n in fetcher.notified] == ["enter", "digits"]
    assert fetcher.notified[1][2]["ConferenceDigitsMatch"] == "99"
    d.callback(ConferenceResult("conf-1", "m-1"))
    assert fetcher.fetched[0][2]["ConferenceUUID"] == "conf-1"


def test_conference_action_carries_the_recording_reference_only(clock: Clock) -> None:
    from xml_dsl.control import ConferenceExit, ConferenceResult, RecordResult

    xml = (
        b'<Response><Conference action="http://127.0.0.1:9/left" record="true" '
        b'transcriptionType="auto">room-8</Conference></Response>'
    )
    call, fetcher, _ = run(clock, xml, {APP + "left": b"<Response/>"})
    spec, _, d = call.conferences[0]
    assert spec.record is not None
    recording = RecordResult(url="http://h/r.wav", recording_id="r1", duration_ms=5000)
    d.callback(ConferenceResult("conf-2", "m-2", recording, ConferenceExit.KICKED))
    params = fetcher.fetched[0][2]
    assert (params["RecordUrl"], params["RecordingID"]) == ("http://h/r.wav", "r1")
    assert "RecordingDuration" not in params  # that goes to callbackUrl's record event
    drain(clock)


def test_a_full_conference_goes_on_with_the_next_verb_without_action(clock: Clock) -> None:
    from xml_dsl.control import ConferenceExit, ConferenceResult

    xml = (
        b'<Response><Conference action="http://127.0.0.1:9/left" callbackUrl="http://127.0.0.1:9/c">'
        b"room-9</Conference><Speak>the room is full</Speak></Response>"
    )
    call, fetcher, _ = run(clock, xml, {APP + "left": b"<Response/>"})
    call.conferences[0][2].callback(ConferenceResult("", "", exit=ConferenceExit.FULL))
    assert fetcher.fetched == []
    assert fetcher.notified == []
    assert call.ops[-1][1:] == ("speak", "the room is full")
    drain(clock)


def test_run_call_uses_the_fallback_url_when_the_answer_url_fails(clock: Clock) -> None:
    from xml_dsl import run_call

    call = FakeCall(clock)
    fetcher = FakeFetcher(
        {
            APP + "answer": b"<html>oops</html>",
            APP + "fallback": b"<Response><Speak>sorry</Speak></Response>",
        }
    )
    done = run_call(call, fetcher, APP + "answer", fallback_url=APP + "fallback", clock=clock)
    assert [u for u, _, _ in fetcher.fetched] == [APP + "answer", APP + "fallback"]
    assert fetcher.fetched[0][2]["CallStatus"] == "ringing"
    clock.advance(MEDIA_SECONDS)
    assert call.names() == ["answer", "speak", "hangup"]
    assert done.called


def test_run_call_without_any_document_hangs_up(clock: Clock) -> None:
    from xml_dsl import run_call

    call = FakeCall(clock)
    results: list[Outcome] = []
    run_call(call, FakeFetcher(), APP + "answer", clock=clock).addCallback(results.append)
    assert call.hangups == [HangupCause.URL_UNREACHABLE]
    assert results[0].ended_by is EndedBy.ERROR


def test_run_call_cancelled_mid_speak_is_a_far_end_hangup(clock: Clock) -> None:
    from xml_dsl import run_call

    call = FakeCall(clock)
    fetcher = FakeFetcher({APP + "answer": b"<Response><Speak>long</Speak></Response>"})
    done = run_call(call, fetcher, APP + "answer", clock=clock)
    results: list[Outcome] = []
    done.addCallback(results.append)
    done.cancel()
    assert call.cancelled == ["speak"]
    assert results == [Outcome(EndedBy.FAR_END)]
    assert call.hangups == []


#: How a pending fetch may fail when cancelled: plainly, or as a fetcher that reports
#: an aborted request as a FetchError would (not to be taken for a dead URL).
CANCELLED_FETCHES = pytest.mark.parametrize(
    "cancelled_as",
    [None, FetchError(APP + "x", "connection failed: CancelledError")],
    ids=["CancelledError", "FetchError"],
)


@CANCELLED_FETCHES
def test_run_call_cancelled_during_the_answer_fetch_is_only_a_far_end_hangup(
    clock: Clock, cancelled_as: Exception | None
) -> None:
    from xml_dsl import run_call

    call = FakeCall(clock)
    fetcher = FakeFetcher(
        {APP + "fallback": b"<Response><Speak>sorry</Speak></Response>"},
        held=[APP + "answer"],
        cancelled_as=cancelled_as,
    )
    done = run_call(call, fetcher, APP + "answer", fallback_url=APP + "fallback", clock=clock)
    results: list[Outcome] = []
    done.addCallback(results.append)
    done.cancel()
    assert fetcher.cancelled == [APP + "answer"]
    assert results == [Outcome(EndedBy.FAR_END, documents=0)]
    assert [u for u, _, _ in fetcher.fetched] == [APP + "answer"], "no fallback"
    assert call.hangups == [], "the far end is gone: nothing to hang up, no cause"
    assert call.ops == []


@CANCELLED_FETCHES
def test_run_call_cancelled_during_the_fallback_fetch_is_only_a_far_end_hangup(
    clock: Clock, cancelled_as: Exception | None
) -> None:
    from xml_dsl import run_call

    call = FakeCall(clock)
    fetcher = FakeFetcher(held=[APP + "fallback"], cancelled_as=cancelled_as)
    done = run_call(call, fetcher, APP + "answer", fallback_url=APP + "fallback", clock=clock)
    results: list[Outcome] = []
    done.addCallback(results.append)
    assert [u for u, _, _ in fetcher.fetched] == [APP + "answer", APP + "fallback"]
    done.cancel()
    assert fetcher.cancelled == [APP + "fallback"]
    assert results == [Outcome(EndedBy.FAR_END, documents=0)]
    assert call.hangups == []
    assert call.ops == []


#: The URL whose fetch the tests below hold pending.
HELD = APP + "held"


def held_run(
    clock: Clock, xml: str, cancelled_as: Exception | None
) -> tuple[FakeCall, FakeFetcher, Execution]:
    call = FakeCall(clock)
    fetcher = FakeFetcher(held=[HELD], cancelled_as=cancelled_as)
    ex = execute(call, fetcher, parse(xml.encode()), clock=clock)
    return call, fetcher, ex


@CANCELLED_FETCHES
@pytest.mark.parametrize(
    ("xml", "keys"),
    [
        (f"<Response><Redirect>{HELD}</Redirect></Response>", ""),
        (f'<Response><GetDigits action="{HELD}" numDigits="1"/></Response>', "5"),
    ],
    ids=["Redirect", "action"],
)
def test_far_end_hangup_during_a_document_fetch_is_only_a_far_end_hangup(
    clock: Clock, cancelled_as: Exception | None, xml: str, keys: str
) -> None:
    call, fetcher, ex = held_run(clock, xml, cancelled_as)
    call.press(keys)
    assert list(fetcher.pending) == [HELD]
    ex.far_end_hangup()
    assert fetcher.cancelled == [HELD]
    assert outcome(ex) == Outcome(EndedBy.FAR_END, documents=2)
    assert call.hangups == [], "the far end is gone: nothing to hang up, no cause"


@CANCELLED_FETCHES
def test_run_call_cancelled_during_a_redirect_fetch_is_only_a_far_end_hangup(
    clock: Clock, cancelled_as: Exception | None
) -> None:
    """The call layer cancels run_call for a REST transfer too: the new document then
    runs on the call, which the old one must not have hung up."""
    from xml_dsl import run_call

    call = FakeCall(clock)
    fetcher = FakeFetcher(
        {APP + "answer": f"<Response><Redirect>{HELD}</Redirect></Response>".encode()},
        held=[HELD],
        cancelled_as=cancelled_as,
    )
    done = run_call(call, fetcher, APP + "answer", clock=clock)
    results: list[Outcome] = []
    done.addCallback(results.append)
    done.cancel()
    assert fetcher.cancelled == [HELD]
    assert results == [Outcome(EndedBy.FAR_END, documents=2)]
    assert call.hangups == []
    assert call.ops == []


@CANCELLED_FETCHES
def test_a_scheduled_hangup_during_a_redirect_fetch_hangs_up_as_scheduled(
    clock: Clock, cancelled_as: Exception | None
) -> None:
    xml = f'<Response><Hangup schedule="5"/><Redirect>{HELD}</Redirect></Response>'
    call, fetcher, ex = held_run(clock, xml, cancelled_as)
    clock.advance(5)
    assert fetcher.cancelled == [HELD]
    assert outcome(ex) == Outcome(EndedBy.DOCUMENT, HangupCause.SCHEDULED, documents=2)
    assert call.hangups == [HangupCause.SCHEDULED]


@CANCELLED_FETCHES
def test_far_end_hangup_during_a_dial_sound_fetch_dials_nothing(
    clock: Clock, cancelled_as: Exception | None
) -> None:
    xml = (
        f'<Response><Dial confirmSound="{HELD}" confirmKey="1"><Number>1</Number></Dial></Response>'
    )
    call, fetcher, ex = held_run(clock, xml, cancelled_as)
    ex.far_end_hangup()
    assert fetcher.cancelled == [HELD]
    assert outcome(ex) == Outcome(EndedBy.FAR_END, documents=1)
    assert call.dials == [], "no B leg rung for a caller who is gone"
    assert call.hangups == []


def test_get_digits_without_redirect_notifies_and_goes_on(clock: Clock) -> None:
    xml = (
        b'<Response><GetDigits action="http://127.0.0.1:9/d" redirect="false" '
        b'numDigits="2"/><Speak>next</Speak></Response>'
    )
    call, fetcher, _ = run(clock, xml)
    call.press("42")
    assert fetcher.fetched == []
    assert fetcher.notified[0][2]["Digits"] == "42"
    assert call.ops[-1][1:] == ("speak", "next")
    drain(clock)


def test_dial_digits_match_on_both_legs(clock: Clock) -> None:
    xml = (
        b'<Response><Dial callbackUrl="http://127.0.0.1:9/ev" digitsMatch="12" '
        b'digitsMatchBLeg="#9"><Number>1</Number></Dial></Response>'
    )
    call, fetcher, _ = run(clock, xml)
    attempt = call.dials[0]
    assert attempt.spec.report_b_leg_digits
    attempt.answer()
    call.press("512")
    attempt.on_event(DialEvent(DialEventKind.DIGITS, "b-leg-1", digits="#"))
    attempt.on_event(DialEvent(DialEventKind.DIGITS, "b-leg-1", digits="9"))
    matches = [
        (n[2]["DialDigitsMatch"], n[2]["DialDigitsPressedBy"])
        for n in fetcher.notified
        if n[2]["DialAction"] == "digits"
    ]
    assert matches == [("12", "ALeg"), ("#9", "BLeg")]
    attempt.end(DialEnd.TIME_LIMIT)
