"""The executor's view of a call (CallControl) on a fake leg and media session:
causes, media operations, their errors and cancellation, and the call's end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from media import MediaError, RecordEnd, RecordingResult
from telephony.calls.call import Call
from telephony.calls.causes import Cause
from telephony.calls.control import CallControl, espeak_voice
from tests.calls.fakes import FakeLeg, FakeSession, make_services
from xml_dsl import (
    ExecutionError,
    HangupCause,
    ICallControl,
    RecordMode,
    RecordResult,
    RecordSpec,
    SpeechSpec,
    WaitUntil,
)
from xml_dsl.verbs import FileFormat


class FakeConferences:
    """Records the joins."""

    def __init__(self) -> None:
        self.joined: list[tuple[Any, Any]] = []

    def join(self, call: Any, spec: Any, on_event: Any) -> Deferred[Any]:
        self.joined.append((call, spec))
        return Deferred()


def _control(clock: Clock, tmp_path: Path) -> tuple[CallControl, FakeLeg, FakeConferences]:
    conferences = FakeConferences()
    services, _, _, _ = make_services(clock, tmp_path, conferences=conferences)
    leg = FakeLeg("a-leg", clock)
    call = Call(
        services=services,
        leg=leg,  # type: ignore[arg-type]
        direction="inbound",
        caller="alice",
        called="1800",
    )
    return call.control, leg, conferences


def _answered(clock: Clock, tmp_path: Path) -> tuple[CallControl, FakeLeg, FakeSession]:
    control, leg, _ = _control(clock, tmp_path)
    control.answer()
    assert leg.media is not None
    return control, leg, leg.media


def _error(d: Deferred[Any]) -> str:
    failures: list[str] = []
    d.addErrback(lambda f: failures.append(f.trap(ExecutionError) and f.getErrorMessage()))
    assert len(failures) == 1, "failed with an ExecutionError"
    return failures[0]


def test_it_is_an_icallcontrol(clock: Clock, tmp_path: Path) -> None:
    control, _, _ = _control(clock, tmp_path)
    assert verifyObject(ICallControl, control)
    assert control.call_uuid == "a-leg"


def test_answer_and_pre_answer_go_to_the_leg(clock: Clock, tmp_path: Path) -> None:
    control, leg, _ = _control(clock, tmp_path)
    control.pre_answer()
    assert leg.state.value == "early-media"
    assert not control.answered
    clock.advance(2.0)
    control.answer()
    assert control.answered
    assert leg.answered_at == 2.0


@pytest.mark.parametrize(
    ("cause", "leg_cause"),
    [
        (HangupCause.NORMAL, Cause.NORMAL),
        (HangupCause.END_OF_XML, Cause.END_OF_XML),
        (HangupCause.SCHEDULED, Cause.NORMAL),
        (HangupCause.BUSY, Cause.BUSY),
        (HangupCause.REJECTED, Cause.REJECTED),
        (HangupCause.LIMIT_REACHED, Cause.INVALID_XML),
        (HangupCause.URL_UNREACHABLE, Cause.URL_UNREACHABLE),
    ],
)
def test_a_hangup_names_its_cause_and_fires_at_the_end(
    clock: Clock, tmp_path: Path, cause: HangupCause, leg_cause: Cause
) -> None:
    control, leg, _ = _control(clock, tmp_path)
    ended = control.hangup(cause)
    assert leg.hangups == [(leg_cause, "Plivo")]
    assert ended.called


def test_media_operations_need_media(clock: Clock, tmp_path: Path) -> None:
    control, _, _ = _control(clock, tmp_path)
    assert "no media session" in _error(control.play("http://app.test/a.mp3"))
    assert "no media session" in _error(control.send_dtmf("12"))
    assert "no media session" in _error(control.collect_digits(lambda digit: None))
    assert "no media session" in _error(control.record(RecordSpec(RecordMode.FOREGROUND)))
    assert "no media session" in _error(control.wait(WaitUntil(silence_ms=500)))


def test_play_fires_with_none_when_the_media_is_done(clock: Clock, tmp_path: Path) -> None:
    control, _, media = _answered(clock, tmp_path)
    done = control.play("http://app.test/a.mp3")
    [(kind, what, output)] = media.outputs
    assert (kind, what) == ("play", ["http://app.test/a.mp3"])
    assert not done.called
    output.callback("whatever the session says")
    assert done.called
    assert done.result is None


def test_a_media_error_is_an_execution_error(clock: Clock, tmp_path: Path) -> None:
    control, _, media = _answered(clock, tmp_path)
    done = control.speak("hello", None, "Polly.Joanna", "en-US")
    media.outputs[0][2].errback(MediaError("cannot fetch the file"))
    assert _error(done) == "cannot fetch the file"


def test_a_cancelled_operation_cancels_the_media_and_does_not_hang_up(
    clock: Clock, tmp_path: Path
) -> None:
    control, leg, media = _answered(clock, tmp_path)
    done = control.beep()
    done.cancel()
    output = media.outputs[0][2]
    assert output.called
    output.addErrback(lambda f: f.trap(CancelledError))
    done.addErrback(lambda f: f.trap(CancelledError))
    assert leg.hangups == []


def test_voices() -> None:
    assert [espeak_voice(v) for v in ("MAN", "man", "WOMAN", "Polly.Joanna")] == [
        "MAN",
        "MAN",
        "WOMAN",
        "WOMAN",
    ]


def test_digits_are_collected_until_cancelled(clock: Clock, tmp_path: Path) -> None:
    control, _, media = _answered(clock, tmp_path)
    digits: list[str] = []
    collecting = control.collect_digits(digits.append)
    media.press("4")
    media.press("2")
    assert digits == ["4", "2"]
    collecting.cancel()
    collecting.addErrback(lambda f: f.trap(CancelledError))
    assert media.listeners == []
    media.press("9")
    assert digits == ["4", "2"]


def test_the_end_of_the_call_fails_a_collection(clock: Clock, tmp_path: Path) -> None:
    control, leg, media = _answered(clock, tmp_path)
    collecting = control.collect_digits(lambda digit: None)
    leg.end(Cause.NORMAL, "Caller")
    assert _error(collecting) == "the call ended"
    assert media.listeners == []


def test_the_end_of_the_call_cancels_a_watch(clock: Clock, tmp_path: Path) -> None:
    control, leg, media = _answered(clock, tmp_path)
    waiting = control.wait(WaitUntil(silence_ms=1500, beep=True))
    [(arguments, watch)] = media.watches
    assert arguments == (1500, True)
    leg.end(Cause.NORMAL, "Caller")
    assert watch.called
    waiting.addErrback(lambda f: f.trap(CancelledError))


def test_a_watch_fires_with_none(clock: Clock, tmp_path: Path) -> None:
    control, leg, media = _answered(clock, tmp_path)
    waiting = control.wait(WaitUntil(beep=True))
    media.watches[0][1].callback("beep")
    assert waiting.called
    assert waiting.result is None
    leg.end(Cause.NORMAL, "Caller")


def test_dtmf_goes_to_the_media(clock: Clock, tmp_path: Path) -> None:
    control, _, media = _answered(clock, tmp_path)
    assert control.send_dtmf("123#").called
    assert media.digits_sent == ["123#"]


def test_no_speech_recognition(clock: Clock, tmp_path: Path) -> None:
    control, _, _ = _answered(clock, tmp_path)
    spec = SpeechSpec("en-US")
    assert "not available" in _error(control.recognize_speech(spec, lambda text: None))


def test_a_foreground_recording_is_filed(clock: Clock, tmp_path: Path) -> None:
    control, _, media = _answered(clock, tmp_path)
    spec = RecordSpec(
        RecordMode.FOREGROUND,
        file_format=FileFormat.WAV,
        max_length=30,
        silence_timeout=0,
        finish_on_key=frozenset("#*"),
    )
    recording = control.record(spec)
    [(kind, arguments, made)] = media.recordings
    assert kind == "record"
    assert (arguments["max_length"], arguments["finish_on_key"]) == (30.0, "#*")
    assert arguments["silence_timeout"] == 3600.0, "0: no silence timeout"
    partial: Path = arguments["path"]
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"RIFF")
    made.callback(RecordingResult(partial, 2.5, RecordEnd.FINISH_KEY, "#", started_at=100.0))
    result = recording.result
    assert isinstance(result, RecordResult)
    assert (result.duration_ms, result.start_ms, result.end_ms, result.digits) == (
        2500,
        100_000,
        102_500,
        "#",
    )
    assert result.url == f"http://example.test/recordings/{partial.name}"
    assert (tmp_path / partial.name).read_bytes() == b"RIFF"


def test_a_dial_recording_is_not_the_controls(clock: Clock, tmp_path: Path) -> None:
    control, _, media = _answered(clock, tmp_path)
    assert "armed by the Dial" in _error(control.record(RecordSpec(RecordMode.DIAL)))
    assert media.recordings == []


def test_a_conference_needs_media(clock: Clock, tmp_path: Path) -> None:
    control, _, conferences = _control(clock, tmp_path)
    spec: Any = object()
    assert "no media session" in _error(control.join_conference(spec, lambda event: None))
    control.answer()
    control.join_conference(spec, lambda event: None)
    assert conferences.joined == [(control.call, spec)]
