"""Play, Record and Wait in the executor: what reaches the call, the callbacks, errors."""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock

from tests.xml_dsl.fakes import MEDIA_SECONDS, FakeCall, FakeFetcher
from xml_dsl import ExecutionError, parse
from xml_dsl.control import (
    DialResult,
    DialStatus,
    EndedBy,
    HangupCause,
    RecordMode,
    RecordResult,
)
from xml_dsl.executor import Execution, Limits, execute


class _BrokenPlay(FakeCall):
    """A call on which one URL cannot be played (its file does not decode)."""

    def play(self, url: str) -> Deferred[None]:
        if url.endswith("bad.mp3"):
            self._op("play", url)
            return fail(ExecutionError(f"play {url}: mp3: cannot be decoded"))
        return super().play(url)


def _run(call: FakeCall, xml: str, clock: Clock) -> Execution:
    return execute(call, FakeFetcher({}), parse(xml.encode()), clock=clock, limits=Limits())


def test_a_play_that_cannot_be_decoded_is_skipped_and_the_call_goes_on(clock: Clock) -> None:
    call = _BrokenPlay(clock)
    ex = _run(
        call,
        "<Response><Play>http://a.test/bad.mp3</Play><Play>http://a.test/ok.mp3</Play></Response>",
        clock,
    )
    clock.advance(MEDIA_SECONDS)
    assert ex.done.called
    assert call.names() == ["answer", "play", "play", "hangup"]
    assert call.hangups == [HangupCause.END_OF_XML]  # not Internal Error
    assert ex.done.result.ended_by is EndedBy.DOCUMENT


def test_a_caller_hanging_up_mid_message_still_delivers_the_recording(clock: Clock) -> None:
    call = FakeCall(clock)
    fetcher = FakeFetcher({})
    xml = (
        '<Response><Record action="http://a.test/done" callbackUrl="http://a.test/cb"'
        ' playBeep="false"/></Response>'
    )
    ex = execute(call, fetcher, parse(xml.encode()), clock=clock, limits=Limits())
    ((spec, recording),) = call.records
    assert spec.mode is RecordMode.FOREGROUND
    ex.far_end_hangup()  # the caller hangs up: the verb is cancelled...
    assert ex.done.called
    assert not recording.called  # ...not the recording: the call layer ends it
    recording.callback(RecordResult("http://s.test/r.mp3", "r-1", 4200, 1000, 5200))
    told = {url: params for url, _, params in fetcher.notified}
    assert told["http://a.test/cb"]["RecordingDurationMs"] == "4200"
    assert told["http://a.test/done"]["RecordUrl"] == "http://s.test/r.mp3"
    assert fetcher.fetched == []  # the action is told, not run: the call is gone


def test_a_dial_recording_is_told_even_when_the_caller_hung_up(clock: Clock) -> None:
    call = FakeCall(clock)
    fetcher = FakeFetcher({})
    xml = (
        '<Response><Record startOnDialAnswer="true" callbackUrl="http://a.test/cb"/>'
        "<Dial><Number>15550001234</Number></Dial></Response>"
    )
    ex = execute(call, fetcher, parse(xml.encode()), clock=clock, limits=Limits())
    (attempt,) = call.dials
    assert attempt.spec.record is not None
    # The call layer finishes later, once the file is filed.
    attempt.end = lambda reason: None  # type: ignore[method-assign]
    attempt.answer()
    ex.far_end_hangup()
    assert ex.done.called
    report = RecordResult("http://s.test/d.wav", "d-1", 2000, 1000, 3000)
    attempt.result.callback(DialResult(DialStatus.COMPLETED, recording=report))
    told = {url: params for url, _, params in fetcher.notified}
    assert told["http://a.test/cb"]["RecordingID"] == "d-1"
