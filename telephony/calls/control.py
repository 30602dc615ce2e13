"""``ICallControl`` for a live call: what XML verbs do, in terms of its leg and media.

Every operation returns a cancellable Deferred; cancelling stops the media operation
and never hangs up.  When the call ends, the leg's media session closes and whatever
runs on it fails, which ends the document.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from media import (
    AudioFrame,
    EventFrame,
    IMediaListener,
    IMediaSession,
    MediaError,
)
from telephony.calls.causes import Cause
from telephony.calls.leg import Leg
from xml_dsl import (
    ConferenceEvent,
    ConferenceResult,
    ConferenceSpec,
    DialEvent,
    DialSpec,
    ExecutionError,
    HangupCause,
    ICallControl,
    IDialAttempt,
    RecordMode,
    RecordResult,
    RecordSpec,
    SpeechResult,
    SpeechSpec,
    WaitUntil,
)
from xml_dsl.verbs import ChannelType

if TYPE_CHECKING:
    from telephony.calls.call import Call

__all__ = ("CallControl", "DigitTap", "espeak_voice")

log = Logger()

_HANGUP_CAUSES = {
    HangupCause.NORMAL: Cause.NORMAL,
    HangupCause.END_OF_XML: Cause.END_OF_XML,
    HangupCause.REJECTED: Cause.REJECTED,
    HangupCause.BUSY: Cause.BUSY,
    HangupCause.SCHEDULED: Cause.NORMAL,
    HangupCause.INVALID_XML: Cause.INVALID_XML,
    HangupCause.URL_UNREACHABLE: Cause.URL_UNREACHABLE,
    HangupCause.LIMIT_REACHED: Cause.INVALID_XML,
    HangupCause.INTERNAL_ERROR: Cause.INTERNAL_ERROR,
}


@implementer(IMediaListener)
class DigitTap:
    """Forwards the digits a session hears to a callback."""

    #: Audio frames are of no interest: a session need not build them for us.
    wants_audio = False

    def __init__(self, on_digit: Callable[[str], None]) -> None:
        self.on_digit = on_digit

    def audio_received(self, session: IMediaSession, frame: AudioFrame) -> None:
        pass

    def event_received(self, session: IMediaSession, frame: EventFrame) -> None:
        pass

    def digit_received(self, session: IMediaSession, digit: str) -> None:
        self.on_digit(digit)


def espeak_voice(voice: str) -> str:
    """Plivo's voices for eSpeak NG: MAN, else WOMAN (Polly.* names included)."""
    return "MAN" if voice.upper() == "MAN" else "WOMAN"


@implementer(ICallControl)
class CallControl:
    """The executor's view of one call."""

    def __init__(self, call: Call) -> None:
        self.call = call

    @property
    def leg(self) -> Leg:
        """The leg the document runs on."""
        return self.call.leg

    @property
    def call_uuid(self) -> str:
        return self.call.uuid

    @property
    def answered(self) -> bool:
        return self.leg.answered

    def params(self) -> Mapping[str, str]:
        return self.call.params()

    def answer(self) -> Deferred[None]:
        return self.leg.answer()

    def pre_answer(self) -> Deferred[None]:
        return self.leg.pre_answer()

    def hangup(self, cause: HangupCause) -> Deferred[None]:
        ended: Deferred[None] = self.call.when_ended()
        self.leg.hangup(_HANGUP_CAUSES.get(cause, Cause.NORMAL), "Plivo")
        return ended

    def _media(self) -> IMediaSession:
        if self.leg.media is None:
            raise ExecutionError("the call has no media session (not answered)")
        return self.leg.media

    def _run(self, op: Callable[[IMediaSession], Deferred[Any]]) -> Deferred[None]:
        try:
            media = self._media()
            d = op(media)
        except Exception as exc:  # MediaArgumentError, SessionClosedError, ExecutionError
            return fail(ExecutionError(str(exc)))

        def media_failed(failure: Failure) -> None:
            # A file that cannot be fetched or decoded, speech that cannot be made:
            # the executor skips the verb (the call goes on); cancellation passes.
            failure.trap(MediaError)
            raise ExecutionError(failure.getErrorMessage())

        return d.addCallbacks(lambda _: None, media_failed)

    def play(self, url: str) -> Deferred[None]:
        return self._run(lambda media: media.play([url]))

    def speak(self, text: str, ssml: str | None, voice: str, language: str) -> Deferred[None]:
        # eSpeak NG speaks the plain text; SSML markup is reduced to its text.
        return self._run(
            lambda media: media.speak(text, voice=espeak_voice(voice), language=language)
        )

    def beep(self) -> Deferred[None]:
        return self._run(lambda media: media.play_tone("beep"))

    def wait(self, until: WaitUntil) -> Deferred[None]:
        """Fire once the caller has been silent ``silence_ms`` or a beep was heard
        (:meth:`IMediaSession.watch`); the executor bounds it by ``<Wait length>``."""
        try:
            watching = self._media().watch(silence_ms=until.silence_ms, beep=until.beep)
        except Exception as exc:
            return fail(ExecutionError(str(exc)))

        def ended(_: object) -> None:
            if not watching.called:
                watching.cancel()

        self.call.when_ended().addCallback(ended)
        return watching.addCallback(lambda _: None)

    def collect_digits(self, on_digit: Callable[[str], None]) -> Deferred[None]:
        try:
            media = self._media()
        except ExecutionError as exc:
            return fail(exc)
        tap = DigitTap(on_digit)
        media.add_listener(tap)

        def cancel(_: Deferred[None]) -> None:
            media.remove_listener(tap)

        d: Deferred[None] = Deferred(cancel)

        def ended(_: object) -> None:
            media.remove_listener(tap)
            if not d.called:
                d.errback(ExecutionError("the call ended"))

        self.call.when_ended().addCallback(ended)
        return d

    def recognize_speech(
        self, spec: SpeechSpec, on_interim: Callable[[str], None]
    ) -> Deferred[SpeechResult]:
        return fail(ExecutionError("speech recognition is not available on this server"))

    def send_dtmf(self, keys: str) -> Deferred[None]:
        return self._run(lambda media: media.send_digits(keys))

    def record(self, spec: RecordSpec) -> Deferred[RecordResult]:
        """A foreground recording of the caller (mono), or the whole session in the
        background (both directions until the call ends, stereo or mixed); the
        file is filed once the media side is done.  ``DIAL`` recordings are armed
        through the Dial's spec instead (:class:`~telephony.calls.dial.DialAttempt`)."""
        try:
            media = self._media()
        except ExecutionError as exc:
            return fail(exc)
        recordings = self.call.services.recordings
        pending = recordings.begin(spec.file_format.value)
        try:
            if spec.mode is RecordMode.FOREGROUND:
                keys = "".join(sorted(spec.finish_on_key))
                d = media.record(
                    path=pending.partial,
                    file_format=pending.file_format,
                    max_length=float(spec.max_length),
                    finish_on_key=keys,
                    silence_timeout=float(spec.silence_timeout) if spec.silence_timeout else 3600.0,
                    beep=False,
                )
            elif spec.mode is RecordMode.SESSION:
                d = media.record_call(
                    path=pending.partial,
                    file_format=pending.file_format,
                    stereo=spec.channels is ChannelType.STEREO,
                )
            else:
                return fail(ExecutionError("a Dial recording is armed by the Dial's spec"))
        except Exception as exc:
            return fail(ExecutionError(str(exc)))
        info = self.call.recording_info()
        return d.addCallback(lambda result: recordings.file(info, pending, result))

    def dial(self, spec: DialSpec, on_event: Callable[[DialEvent], None]) -> IDialAttempt:
        return self.call.dial(spec, on_event)

    def join_conference(
        self, spec: ConferenceSpec, on_event: Callable[[ConferenceEvent], None]
    ) -> Deferred[ConferenceResult]:
        try:
            self._media()
        except ExecutionError as exc:
            return fail(exc)
        return self.call.services.conferences.join(self.call, spec, on_event)
