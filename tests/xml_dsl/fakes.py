"""A fake call and a fake fetcher implementing the real interfaces."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock, deferLater
from zope.interface import implementer

from xml_dsl import FetchError, parse
from xml_dsl._values import Method
from xml_dsl.control import (
    ConferenceEvent,
    ConferenceResult,
    ConferenceSpec,
    DialEnd,
    DialEvent,
    DialEventKind,
    DialResult,
    DialSpec,
    DialStatus,
    HangupCause,
    RecordResult,
    RecordSpec,
    SpeechResult,
    SpeechSpec,
    WaitUntil,
)
from xml_dsl.interfaces import ICallControl, IDialAttempt, IFetcher
from xml_dsl.verbs import Response

#: Seconds one Speak or Play pass takes on the fake call.
MEDIA_SECONDS = 3.0


@implementer(IDialAttempt)
class FakeAttempt:
    def __init__(self, spec: DialSpec, on_event: Callable[[DialEvent], None]) -> None:
        self.spec = spec
        self.on_event = on_event
        self.result: Deferred[DialResult] = Deferred()
        self.ended: list[DialEnd] = []
        self.answered = False

    def answer(self, b_leg: str = "b-leg-1") -> None:
        self.answered = True
        self.on_event(DialEvent(DialEventKind.ANSWER, b_leg, "+1555", "+1666", 1))

    def end(self, reason: DialEnd) -> None:
        self.ended.append(reason)
        if self.result.called:
            return
        if reason is DialEnd.NO_ANSWER:
            self.result.callback(
                DialResult(DialStatus.NO_ANSWER, rang=True, hangup_cause="NO_ANSWER")
            )
        else:
            self.result.callback(
                DialResult(
                    DialStatus.COMPLETED,
                    rang=True,
                    hangup_cause="NORMAL_CLEARING",
                    b_leg_uuid="b-leg-1",
                    duration=5,
                )
            )


@implementer(ICallControl)
class FakeCall:
    """Records every operation as ``(time, name, args)``; media takes clock time."""

    call_uuid = "a-leg-uuid"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.answered = False
        self.ops: list[tuple[float, str, Any]] = []
        self.listeners: list[Callable[[str], None]] = []
        self.dials: list[FakeAttempt] = []
        self.records: list[tuple[RecordSpec, Deferred[RecordResult]]] = []
        self.speech: list[Deferred[SpeechResult]] = []
        self.waits: list[Deferred[None]] = []
        self.conferences: list[
            tuple[ConferenceSpec, Callable[[ConferenceEvent], None], Deferred[ConferenceResult]]
        ] = []
        self.cancelled: list[str] = []
        self.hangups: list[HangupCause] = []

    def _op(self, name: str, arg: Any = None) -> None:
        self.ops.append((self.clock.seconds(), name, arg))

    def names(self) -> list[str]:
        return [name for _, name, _ in self.ops]

    def params(self) -> Mapping[str, str]:
        return {
            "CallUUID": self.call_uuid,
            "From": "+15550001111",
            "To": "+15550002222",
            "Direction": "inbound",
            "CallStatus": "in-progress" if self.answered else "ringing",
        }

    def answer(self) -> Deferred[None]:
        self._op("answer")
        self.answered = True
        return succeed(None)

    def pre_answer(self) -> Deferred[None]:
        self._op("pre_answer")
        return succeed(None)

    def hangup(self, cause: HangupCause) -> Deferred[None]:
        self._op("hangup", cause)
        self.hangups.append(cause)
        return succeed(None)

    def _media(self, name: str, arg: Any, seconds: float = MEDIA_SECONDS) -> Deferred[None]:
        self._op(name, arg)
        d = deferLater(self.clock, seconds, lambda: None)
        d.addErrback(self._note_cancel, name)
        return d

    def _note_cancel(self, failure: Any, name: str) -> Any:
        self.cancelled.append(name)
        return failure

    def play(self, url: str) -> Deferred[None]:
        return self._media("play", url)

    def speak(self, text: str, ssml: str | None, voice: str, language: str) -> Deferred[None]:
        return self._media("speak", text)

    def beep(self) -> Deferred[None]:
        return self._media("beep", None, 0.5)

    def wait(self, until: WaitUntil) -> Deferred[None]:
        self._op("wait", until)
        d: Deferred[None] = Deferred()
        self.waits.append(d)
        return d

    def collect_digits(self, on_digit: Callable[[str], None]) -> Deferred[None]:
        self.listeners.append(on_digit)
        return Deferred(lambda _: self.listeners.remove(on_digit))

    def press(self, keys: str) -> None:
        for key in keys:
            for listener in list(self.listeners):
                listener(key)

    def recognize_speech(
        self, spec: SpeechSpec, on_interim: Callable[[str], None]
    ) -> Deferred[SpeechResult]:
        self._op("recognize", spec)
        d: Deferred[SpeechResult] = Deferred()
        self.speech.append(d)
        return d

    def send_dtmf(self, keys: str) -> Deferred[None]:
        self._op("dtmf", keys)
        return succeed(None)

    def record(self, spec: RecordSpec) -> Deferred[RecordResult]:
        self._op("record", spec.mode)
        d: Deferred[RecordResult] = Deferred()
        self.records.append((spec, d))
        return d

    def dial(self, spec: DialSpec, on_event: Callable[[DialEvent], None]) -> FakeAttempt:
        self._op("dial", spec)
        attempt = FakeAttempt(spec, on_event)
        self.dials.append(attempt)
        return attempt

    def join_conference(
        self, spec: ConferenceSpec, on_event: Callable[[ConferenceEvent], None]
    ) -> Deferred[ConferenceResult]:
        self._op("conference", spec.room)
        d: Deferred[ConferenceResult] = Deferred()
        self.conferences.append((spec, on_event, d))
        return d


@implementer(IFetcher)
class FakeFetcher:
    """Serves documents from a dict ``url -> XML bytes`` (or an exception).

    The URLs in ``held`` are not answered: their fetch stays pending (in ``pending``)
    until a test fires it or cancels it.  A cancelled fetch fails with
    ``CancelledError``, or with ``cancelled_as`` if given: callers must stand a fetcher
    that reports a request aborted by a cancellation as a ``FetchError`` ("connection
    failed"), as the real one did until it learned to tell the two apart.
    """

    def __init__(
        self,
        documents: dict[str, bytes | Exception] | None = None,
        *,
        held: Iterable[str] = (),
        cancelled_as: Exception | None = None,
    ) -> None:
        self.documents = documents or {}
        self.held = frozenset(held)
        self.cancelled_as = cancelled_as
        self.fetched: list[tuple[str, Method, dict[str, str]]] = []
        self.notified: list[tuple[str, Method, dict[str, str]]] = []
        self.pending: dict[str, Deferred[Response]] = {}
        #: The URLs whose pending fetch was cancelled.
        self.cancelled: list[str] = []

    def fetch(self, url: str, method: Method, params: Mapping[str, str]) -> Deferred[Response]:
        self.fetched.append((url, method, dict(params)))
        if url in self.held:
            return self._hold(url)
        body = self.documents.get(url)
        if body is None:
            return fail(FetchError(url, "HTTP status 404", status=404))
        if isinstance(body, Exception):
            return fail(body)
        try:
            return succeed(parse(body))
        except Exception as exc:
            return fail(exc)

    def _hold(self, url: str) -> Deferred[Response]:
        def cancel(d: Deferred[Response]) -> None:
            self.cancelled.append(url)
            if self.cancelled_as is not None:
                d.errback(self.cancelled_as)

        d: Deferred[Response] = Deferred(cancel)
        self.pending[url] = d
        return d

    def notify(self, url: str, method: Method, params: Mapping[str, str]) -> Deferred[None]:
        self.notified.append((url, method, dict(params)))
        return succeed(None)
