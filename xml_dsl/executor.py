"""Runs a document's verbs against a call, one Deferred per verb.

The call layer starts an :class:`Execution` with the first document and cancels it
(or calls :meth:`Execution.far_end_hangup`) when the far end hangs up: the running
verb is cancelled, nothing else runs, and :attr:`Execution.done` fires with an
:class:`~xml_dsl.control.Outcome`. Every wait runs on the injected clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from itertools import count
from typing import Any

from attrs import frozen
from twisted.internet.defer import CancelledError, Deferred, race
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from xml_dsl import params as cbp
from xml_dsl._dialing import run_conference, run_dial
from xml_dsl._values import Method
from xml_dsl.context import RunContext
from xml_dsl.control import (
    EndedBy,
    HangupCause,
    Outcome,
    RecordMode,
    RecordResult,
    RecordSpec,
    SpeechSpec,
    WaitUntil,
)
from xml_dsl.dtmf import Collected, CollectEnd, DigitCollector, send_keys
from xml_dsl.errors import ExecutionError, FetchError, XMLError
from xml_dsl.interfaces import ICallControl, IFetcher
from xml_dsl.verbs import (
    DTMF,
    Conference,
    Dial,
    GetDigits,
    GetInput,
    Hangup,
    InputType,
    Play,
    PreAnswer,
    Prompt,
    Record,
    Redirect,
    Response,
    Speak,
    Wait,
)

__all__ = [
    "AUTO_DIGIT_END_TIMEOUT",
    "DEFAULT_RING_TIMEOUT",
    "MAX_DOCUMENTS_PER_CALL",
    "MAX_REDIRECT_CHAIN",
    "Execution",
    "Limits",
    "execute",
]

#: Documents one call may run, the first included [ours]: a menu that loops through
#: its action 100 times is a caller stuck in a loop.
MAX_DOCUMENTS_PER_CALL = 100

#: Documents fetched in a row (Redirect, or an action) without any verb reaching the
#: caller in between [ours]: a redirect loop ends the call after this many.
MAX_REDIRECT_CHAIN = 10

#: Seconds a ``<Dial>`` without ``timeout`` rings [ours; Plivo documents no default].
DEFAULT_RING_TIMEOUT = 60

#: Seconds between keys for ``<GetInput digitEndTimeout="auto">`` [ours].
AUTO_DIGIT_END_TIMEOUT = 5

log = Logger(namespace="xml_dsl.executor")

_ALL_KEYS = frozenset("0123456789*#")


@frozen
class Limits:
    """The executor's named limits (see the module constants)."""

    max_documents: int = MAX_DOCUMENTS_PER_CALL
    max_redirect_chain: int = MAX_REDIRECT_CHAIN
    default_ring_timeout: int = DEFAULT_RING_TIMEOUT
    auto_digit_end_timeout: int = AUTO_DIGIT_END_TIMEOUT


class _StopRunError(Exception):
    """Unwinds the run with an outcome (the call has been hung up if it had to be)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome)
        self.outcome = outcome


def _swallow(d: Deferred[Any]) -> Deferred[Any]:
    d.addErrback(lambda _: None)
    return d


def execute(
    call: ICallControl,
    fetcher: IFetcher,
    document: Response,
    *,
    clock: IReactorTime,
    limits: Limits = Limits(),
) -> Execution:
    """Start running ``document`` on ``call``; see :class:`Execution`."""
    execution = Execution(call, fetcher, clock=clock, limits=limits)
    execution.start(document)
    return execution


class Execution:
    """One call's run through its documents.

    :param call: the call, as :class:`ICallControl`.
    :param fetcher: fetches action and Redirect documents, sends callbacks.
    :param clock: every timer runs on it.
    """

    def __init__(
        self,
        call: ICallControl,
        fetcher: IFetcher,
        *,
        clock: IReactorTime,
        limits: Limits = Limits(),
    ) -> None:
        self.call = call
        self.fetcher = fetcher
        self.clock = clock
        self.limits = limits
        self.done: Deferred[Outcome] = Deferred(lambda _: self.far_end_hangup())
        self._main: Deferred[Outcome] | None = None
        self._end_request: Outcome | None = None
        self._documents = 0
        self._chain = 0
        self._reached_caller = False
        self._early = False
        self._first_verb = True
        self._scheduled: IDelayedCall | None = None
        self._background: list[Deferred[Any]] = []
        self._armed_dial_record: Record | None = None
        self._handlers: dict[type, Callable[[Any], Awaitable[Response | None]]] = {
            Speak: self._speak,
            Play: self._play,
            Wait: self._wait,
            DTMF: self._dtmf,
            Redirect: self._redirect,
            Hangup: self._hangup,
            GetDigits: self._get_digits,
            GetInput: self._get_input,
            Record: self._record,
            Conference: lambda verb: run_conference(self.context, verb),
            Dial: self._dial,
            PreAnswer: self._pre_answer,
        }
        #: What the verb runners of other modules (Dial, Conference) may use.
        self.context = RunContext(
            call=call,
            fetcher=fetcher,
            clock=clock,
            limits=limits,
            answered=self._answered,
            reached_caller=self._reach_caller,
            params=self._params,
            notify=self._notify,
            fetch_prompts=self._fetch_prompts,
            after=self._after,
            recorded=self._recorded,
            armed_dial_record=lambda: self._armed_dial_record,
        )

    @property
    def call_uuid(self) -> str:
        return self.call.call_uuid

    # ---------------------------------------------------------------- lifecycle

    def start(self, document: Response) -> Deferred[Outcome]:
        """Run ``document``; returns :attr:`done`."""
        if self._main is not None:
            raise RuntimeError("an Execution runs once")
        self._documents = 1
        self._main = Deferred.fromCoroutine(self._run(document))
        self._main.addBoth(self._finish)
        return self.done

    def far_end_hangup(self) -> None:
        """The far end hung up: cancel the running verb and stop (no hangup is sent)."""
        self._stop_with(Outcome(EndedBy.FAR_END, documents=self._documents))

    def _stop_with(self, outcome: Outcome) -> None:
        if self._end_request is None and not self.done.called:
            self._end_request = outcome
            if self._main is not None:
                self._main.cancel()

    def _finish(self, result: Outcome | Failure) -> None:
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        for d in self._background:
            d.cancel()
        if isinstance(result, Failure):
            if result.check(_StopRunError):
                outcome = result.value.outcome
            elif self._end_request is not None:
                outcome = self._end_request
            else:
                log.failure("executor failed on call {call_uuid}", result, call_uuid=self.call_uuid)
                outcome = Outcome(
                    EndedBy.ERROR,
                    HangupCause.INTERNAL_ERROR,
                    result.getErrorMessage(),
                    self._documents,
                )
                _swallow(self.call.hangup(HangupCause.INTERNAL_ERROR))
        else:
            outcome = result
        if outcome.cause is HangupCause.SCHEDULED and self._end_request is not None:
            _swallow(self.call.hangup(HangupCause.SCHEDULED))
        log.debug(
            "call {call_uuid} execution ended: {ended_by} ({cause}) after {documents} document(s)",
            call_uuid=self.call_uuid,
            ended_by=outcome.ended_by.value,
            cause=outcome.cause.value if outcome.cause else "-",
            documents=outcome.documents,
        )
        if not self.done.called:
            self.done.callback(outcome)

    def _log_ignored(self, document: Response) -> None:
        """One warning per attribute the document's parse skipped, against the call."""
        for item in document.ignored:
            log.warn(
                "call {call_uuid}: line {line}: <{element}> has no attribute {attribute} "
                '(value "{value}") in Plivo XML; ignored',
                call_uuid=self.call_uuid,
                line=item.line,
                element=item.element,
                attribute=item.attribute,
                value=item.value,
            )

    async def _run(self, document: Response) -> Outcome:
        current: Response | None = document
        while current is not None:
            self._log_ignored(current)
            nxt: Response | None = None
            for verb in current.verbs:
                nxt = await self._verb(verb)
                if nxt is not None:
                    break
            if nxt is None:
                break
            current = nxt
        await self.call.hangup(HangupCause.END_OF_XML)
        return Outcome(EndedBy.DOCUMENT, HangupCause.END_OF_XML, documents=self._documents)

    async def _verb(self, verb: Any) -> Response | None:
        self._unless_stopping()
        first, self._first_verb = self._first_verb, False
        handler = self._handlers[type(verb)]
        log.debug(
            "call {call_uuid} runs <{verb}> (line {line})",
            call_uuid=self.call_uuid,
            verb=type(verb).__name__,
            line=verb.line,
        )
        if isinstance(verb, Wait) and first:
            await self._wait(verb, answer=False)
            return None
        return await handler(verb)

    # ---------------------------------------------------------------- helpers

    def _unless_stopping(self) -> None:
        """Raise :class:`CancelledError` once a stop has been requested (far-end
        hangup, transfer, scheduled hangup): nothing more is to be done on the call.

        Also called where a fetch failed: a stop cancels the pending fetch, and a
        fetcher may report that as a :class:`FetchError` ("connection failed"),
        which is then the stop's doing, not a dead URL to end the call for.
        """
        if self._end_request is not None:
            raise CancelledError()

    def _reach_caller(self) -> None:
        self._reached_caller = True

    async def _answered(self) -> None:
        self._reached_caller = True
        if not self._early and not self.call.answered:
            await self.call.answer()

    def _params(self, extra: Mapping[str, str] = {}) -> dict[str, str]:
        out = dict(self.call.params())
        out.update(extra)
        return out

    def _notify(self, url: str | None, method: Method, params: Mapping[str, str]) -> None:
        if url is not None:
            _swallow(self.fetcher.notify(url, method, params))

    async def _goto(self, url: str, method: Method, params: Mapping[str, str]) -> Response:
        """Fetch the next document, within the limits; on failure end the call (unless
        a stop was requested meanwhile: the stop's outcome stands)."""
        self._unless_stopping()
        self._chain = 0 if self._reached_caller else self._chain + 1
        self._reached_caller = False
        self._documents += 1
        if self._documents > self.limits.max_documents:
            await self._fail(
                HangupCause.LIMIT_REACHED,
                f"more than {self.limits.max_documents} documents in one call",
            )
        if self._chain > self.limits.max_redirect_chain:
            await self._fail(
                HangupCause.LIMIT_REACHED,
                f"redirect loop: {self._chain} documents fetched in a row without any verb "
                f"reaching the caller (limit {self.limits.max_redirect_chain})",
            )
        try:
            return await self.fetcher.fetch(url, method, params)
        except XMLError as exc:
            await self._fail(HangupCause.INVALID_XML, f"invalid XML from {url}: {exc}")
        except FetchError as exc:
            await self._fail(HangupCause.URL_UNREACHABLE, str(exc))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _fail(self, cause: HangupCause, error: str) -> None:
        self._unless_stopping()
        log.error("call {call_uuid}: {error}; hanging up", call_uuid=self.call_uuid, error=error)
        await self.call.hangup(cause)
        raise _StopRunError(Outcome(EndedBy.ERROR, cause, error, self._documents))

    async def _after(
        self, action: str | None, method: Method, redirect: bool, extra: Mapping[str, str]
    ) -> Response | None:
        """Request a verb's action: continue with its document, or notify and go on."""
        if action is None:
            return None
        if redirect:
            return await self._goto(action, method, self._params(extra))
        self._notify(action, method, self._params(extra))
        return None

    async def _loop(self, times: int, once: Callable[[], Deferred[None]]) -> None:
        for i in count():
            if times and i >= times:
                return
            await once()

    async def _prompt(self, prompt: Prompt) -> None:
        self._reached_caller = True
        try:
            if isinstance(prompt, Speak):
                await self._loop(
                    prompt.loop,
                    lambda: self.call.speak(
                        prompt.text, prompt.ssml, prompt.voice, prompt.language
                    ),
                )
            elif isinstance(prompt, Play):
                await self._loop(prompt.loop, lambda: self.call.play(prompt.url))
            else:
                await self._wait(prompt, answer=False)
        except ExecutionError as exc:
            # A file that cannot be fetched or decoded (or speech that cannot be
            # synthesised) is skipped, as Plivo skips it: the call goes on.
            log.warn(
                "call {call_uuid}: line {line}: <{verb}> skipped: {error}",
                call_uuid=self.call_uuid,
                line=prompt.line,
                verb=type(prompt).__name__,
                error=str(exc),
            )

    async def _prompts(self, prompts: tuple[Prompt, ...], beep: bool) -> None:
        for prompt in prompts:
            await self._prompt(prompt)
        if beep:
            await self.call.beep()

    async def _fetch_prompts(self, url: str, what: str) -> tuple[Prompt, ...]:
        """Play/Speak/Wait from a sound URL (confirmSound, dialMusic, …); others ignored."""
        try:
            doc = await self.fetcher.fetch(url, Method.POST, self._params())
        except (FetchError, XMLError) as exc:
            self._unless_stopping()
            log.warn(
                "call {call_uuid}: {what} {url} unusable: {error}",
                call_uuid=self.call_uuid,
                what=what,
                url=url,
                error=str(exc),
            )
            return ()
        self._log_ignored(doc)
        return tuple(v for v in doc.verbs if isinstance(v, Speak | Play | Wait))

    # ---------------------------------------------------------------- simple verbs

    async def _speak(self, verb: Speak) -> None:
        await self._answered()
        await self._prompt(verb)

    async def _play(self, verb: Play) -> None:
        await self._answered()
        await self._prompt(verb)

    async def _wait(self, verb: Wait, *, answer: bool = True) -> None:
        if answer:
            await self._answered()
        timer = deferLater(self.clock, verb.length, lambda: None)
        if not (verb.silence or verb.beep):
            await timer
            return
        until = WaitUntil(silence_ms=verb.min_silence_ms if verb.silence else None, beep=verb.beep)
        await race([timer, self.call.wait(until)])

    async def _dtmf(self, verb: DTMF) -> None:
        await self._answered()
        first: Deferred[None] = Deferred()
        sending = Deferred.fromCoroutine(
            send_keys(self.call.send_dtmf, verb.digits, clock=self.clock, first_sent=first)
        )
        if not verb.async_:
            await sending
            return

        def unblock(result: object) -> object:
            if not first.called:
                first.callback(None)
            return result

        sending.addBoth(unblock)
        self._background.append(_swallow(sending))
        await first

    async def _redirect(self, verb: Redirect) -> Response:
        return await self._goto(verb.url, verb.method, self._params())

    async def _hangup(self, verb: Hangup) -> None:
        if verb.schedule is not None:
            if self._scheduled is not None and self._scheduled.active():
                self._scheduled.cancel()
            self._scheduled = self.clock.callLater(verb.schedule, self._scheduled_hangup)
            return
        cause = HangupCause.for_reason(verb.reason, first=not self.call.answered)
        await self.call.hangup(cause)
        raise _StopRunError(Outcome(EndedBy.DOCUMENT, cause, documents=self._documents))

    def _scheduled_hangup(self) -> None:
        log.info("call {call_uuid}: scheduled hangup", call_uuid=self.call_uuid)
        self._stop_with(Outcome(EndedBy.DOCUMENT, HangupCause.SCHEDULED, documents=self._documents))

    async def _pre_answer(self, verb: PreAnswer) -> Response | None:
        if not self.call.answered:
            await self.call.pre_answer()
            self._early = True
        try:
            for inner in verb.verbs:
                nxt = await self._handlers[type(inner)](inner)
                if nxt is not None:
                    return nxt
        finally:
            self._early = False
        return None

    # ---------------------------------------------------------------- input

    async def _collect(
        self, collector: DigitCollector, prompts: tuple[Prompt, ...], beep: bool
    ) -> Collected:
        """Play ``prompts`` while collecting keys; the first key stops the prompts."""
        listener = _swallow(self.call.collect_digits(collector.feed))
        try:
            playing = Deferred.fromCoroutine(self._prompts(prompts, beep))
            barged: list[bool] = []

            def barge_in() -> None:
                barged.append(True)
                playing.cancel()

            collector.on_first_key = barge_in
            try:
                await playing
            except CancelledError:
                if not barged:
                    raise
            collector.start()
            return await collector.result
        finally:
            collector.stop()
            listener.cancel()

    async def _get_digits(self, verb: GetDigits) -> Response | None:
        await self._answered()
        for attempt in range(1, verb.retries + 1):
            collector = DigitCollector(
                clock=self.clock,
                first_timeout=verb.timeout,
                digit_timeout=verb.digit_timeout,
                finish_key=verb.finish_on_key,
                max_digits=verb.num_digits,
                valid=verb.valid_digits,
            )
            got = await self._collect(collector, verb.prompts, verb.play_beep)
            log.info(
                "call {call_uuid} GetDigits attempt {attempt}: {n} key(s), {end}",
                call_uuid=self.call_uuid,
                attempt=attempt,
                n=len(got.digits),
                end=got.end.value,
            )
            if got.end is CollectEnd.INVALID:
                if verb.invalid_digits_sound is not None:
                    await self.call.play(verb.invalid_digits_sound)
                continue
            if got.digits:
                return await self._after(
                    verb.action, verb.method, verb.redirect, cbp.digits_params(got.digits)
                )
        return None

    async def _get_input(self, verb: GetInput) -> Response | None:
        await self._answered()
        collector = DigitCollector(
            clock=self.clock,
            first_timeout=verb.execution_timeout,
            digit_timeout=verb.digit_end_timeout or self.limits.auto_digit_end_timeout,
            finish_key=verb.finish_on_key,
            max_digits=verb.num_digits,
            valid=_ALL_KEYS,
        )
        wants_dtmf = InputType.DTMF in verb.input_types
        listener = _swallow(self.call.collect_digits(collector.feed)) if wants_dtmf else None
        try:
            playing = Deferred.fromCoroutine(self._prompts(verb.prompts, False))
            barged: list[bool] = []

            def barge_in() -> None:
                barged.append(True)
                playing.cancel()

            collector.on_first_key = barge_in
            try:
                await playing
            except CancelledError:
                if not barged:
                    raise
            waits: list[Deferred[Any]] = []
            if wants_dtmf:
                collector.start()
                waits.append(collector.result)
            if InputType.SPEECH in verb.input_types and not barged:
                spec = SpeechSpec(
                    verb.language,
                    verb.speech_model,
                    verb.hints,
                    verb.speech_end_timeout,
                    verb.profanity_filter,
                )
                waits.append(self.call.recognize_speech(spec, self._interim(verb)))
                waits.append(deferLater(self.clock, verb.execution_timeout, lambda: None))
            _, value = await race(waits)
        finally:
            collector.stop()
            if listener is not None:
                listener.cancel()
        if isinstance(value, Collected):
            if not value.digits:
                return None
            extra = {"InputType": "dtmf", **cbp.digits_params(value.digits)}
        elif value is None:
            return None
        else:
            extra = cbp.speech_params(value)
        return await self._after(verb.action, verb.method, verb.redirect, extra)

    def _interim(self, verb: GetInput) -> Callable[[str], None]:
        def report(text: str) -> None:
            self._notify(
                verb.interim_speech_results_callback,
                verb.interim_speech_results_callback_method,
                self._params({"StableSpeech": text}),
            )

        return report

    # ---------------------------------------------------------------- record

    def _recorded(self, verb: Record) -> Callable[[RecordResult], None]:
        def deliver(result: RecordResult) -> None:
            self._notify(
                verb.callback_url, verb.callback_method, self._params(cbp.record_params(result))
            )

        return deliver

    async def _record(self, verb: Record) -> Response | None:
        await self._answered()
        if verb.transcription_type is not None or verb.transcription_url is not None:
            log.warn(
                "call {call_uuid}: transcription is not available; recording only",
                call_uuid=self.call_uuid,
            )
        if verb.start_on_dial_answer:
            self._armed_dial_record = verb
            return None
        if verb.record_session:
            d = self.call.record(RecordSpec.of(verb, RecordMode.SESSION))
            d.addCallback(self._recorded(verb))
            _swallow(d)
            return None
        if verb.play_beep:
            await self.call.beep()
        recording = self.call.record(RecordSpec.of(verb, RecordMode.FOREGROUND))
        # Shielded: when the caller hangs up mid-message (the usual end of a voicemail)
        # the call layer ends the recording with what was said; it is still filed and
        # its callbackUrl and action told (the action without a document to run).
        shield: Deferred[RecordResult] = Deferred()

        def relay(result: object) -> object:
            if not shield.called:
                shield.callback(result)  # type: ignore[arg-type]
            return result

        recording.addBoth(relay)
        try:
            result = await shield
        except CancelledError:

            def late(result: RecordResult) -> None:
                self._recorded(verb)(result)
                self._notify(verb.action, verb.method, self._params(cbp.record_params(result)))

            recording.addCallbacks(late, lambda _: None)
            raise
        except Exception:
            recording.addErrback(lambda _: None)  # its failure went to the shield
            raise
        self._recorded(verb)(result)
        return await self._after(verb.action, verb.method, verb.redirect, cbp.record_params(result))

    # ---------------------------------------------------------------- dial

    async def _dial(self, verb: Dial) -> Response | None:
        result = await run_dial(self.context, verb)
        armed, self._armed_dial_record = self._armed_dial_record, None
        if armed is not None and result.recording is not None:
            self._recorded(armed)(result.recording)
        return await self._after(
            verb.action, verb.method, verb.redirect, cbp.dial_action_params(self.call_uuid, result)
        )
