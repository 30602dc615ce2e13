"""``<Dial>``: ring every target at once, bridge the first to answer, report the rest.

Each target becomes an outgoing :class:`~telephony.calls.leg.Leg` (a B leg): a
``<Number>`` through the gateway, a ``<User>`` at its endpoint's latest registered
device.  While they ring the caller hears a ringback (a 180, so the phone plays its
own), the called party's early media (``Ringback.REAL``, bridged on the first 183), or
the dialMusic prompts.  The first 2xx wins: the others are cancelled, the caller is
answered if needed, the media of the two legs is bridged (transcoding PCMU/PCMA and
passing RFC 4733 events), and the target's ``sendDigits`` go out on the B leg.  The
executor ends the attempt (ring timeout, timeLimit, hangupOnStar, caller hangup)
through :meth:`DialAttempt.end`; when the bridged B leg hangs up the attempt is over
and the document goes on.

**Call screening** (``confirmSound``/``confirmKey``): a 2xx does not win at once.  The
called party hears the confirm prompts; with a ``confirmKey`` they must press it
(RFC 4733 from the B leg) within ``confirmTimeout`` seconds of answering.  The first
leg to confirm is bridged and every other leg fails; a wrong key hangs that leg up
(``Rejected``), silence until the timeout too (``No Answer``), and the other targets
go on ringing.  Without a key the leg is bridged once the prompts are over (or at
``confirmTimeout``, should they loop).  The caller hears ringback throughout and is
answered only when a leg is bridged: the events ``answer`` and ``connected`` are
reported then, so the executor's ``timeLimit`` counts from the bridge.

The ring ``timeout`` (``DialEnd.NO_ANSWER``) stops the legs that still ring, but a leg
being screened has answered in time: its screening runs to its own end, bridged if
confirmed, failed otherwise; no half-bridged call (caller answered, callee gone) can
come of it.  Any other end (caller gone, ``hangupOnStar``) hangs up screened legs too.

``callType="whatsapp"`` cannot be placed here: such an attempt fails at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from media import IMediaSession, MediaBridge
from telephony.calls.causes import Cause
from telephony.calls.control import DigitTap, espeak_voice
from telephony.calls.leg import Leg, LegEnd, LegState
from xml_dsl import (
    DialEnd,
    DialEvent,
    DialEventKind,
    DialResult,
    DialSpec,
    DialStatus,
    IDialAttempt,
    RecordResult,
    Ringback,
)
from xml_dsl.verbs import CallType, ChannelType, Number, Play, Prompt, Speak, User

if TYPE_CHECKING:
    from telephony.calls.call import Call

__all__ = ("DialAttempt", "PlaceLeg")

log = Logger()

#: Places a B leg for a target (1-based position): returns it started, or a Cause.
PlaceLeg = Callable[[Number | User, int, DialSpec], "Leg | Cause"]

_STATUS_FOR_CAUSE = {
    Cause.BUSY: DialStatus.BUSY,
    Cause.NO_ANSWER: DialStatus.NO_ANSWER,
    Cause.ORIGINATOR_CANCEL: DialStatus.NO_ANSWER,
    # Plivo: a provider that never answered the authenticated INVITE is a timeout.
    Cause.SIP_AUTH_TIMEOUT: DialStatus.TIMEOUT,
}


@attrs.define
class _Screening:
    """A B leg that answered and is being screened: its prompts, key tap and timer."""

    tap: DigitTap | None = None
    timer: IDelayedCall | None = None
    prompts: Deferred[None] | None = None
    prompts_over: bool = False


@implementer(IDialAttempt)
class DialAttempt:
    """One ``<Dial>`` in progress on a call."""

    def __init__(
        self, call: Call, spec: DialSpec, on_event: Callable[[DialEvent], None], place: PlaceLeg
    ) -> None:
        self.call = call
        self.spec = spec
        self.on_event = on_event
        self._place = place
        self.result: Deferred[DialResult] = Deferred()
        self.legs: dict[Leg, int] = {}
        self.winner: Leg | None = None
        self.rang = False
        self.bridge: MediaBridge | None = None
        self._early: Leg | None = None
        self._failures: list[Cause] = []
        self._ending: DialEnd | None = None
        self._ringback: Deferred[Any] | None = None
        #: B legs whose sendDigits went out already (on early media or at the answer).
        self._digits_sent: set[Leg] = set()
        self._screening: dict[Leg, _Screening] = {}
        #: The startOnDialAnswer recording: its file, and its filing (None on failure).
        self._recording: tuple[Path, Deferred[RecordResult | None]] | None = None

    @property
    def screens(self) -> bool:
        """Whether answering legs are screened before one is bridged."""
        return bool(self.spec.confirm_prompts) or self.spec.confirm_key is not None

    # -- start ------------------------------------------------------------------------

    def start(self) -> None:
        """Place every target's leg."""
        if self.spec.call_type is CallType.WHATSAPP:
            log.warn(
                "call {call_uuid}: Dial callType=whatsapp: this server cannot place WhatsApp "
                "calls (no WhatsApp Business connection); the Dial fails",
                call_uuid=self.call.leg.uuid,
            )
            self._finish(DialResult(DialStatus.FAILED, hangup_cause=Cause.FAILED.cause_name))
            return
        for position, target in enumerate(self.spec.targets, 1):
            placed = self._place(target, position, self.spec)
            if isinstance(placed, Cause):
                self._failures.append(placed)
                continue
            self.legs[placed] = position
            placed.listeners.append(self._leg_state)
            placed.ended.addCallback(self._leg_ended, placed)
        if not self.legs:
            self._finish(DialResult(DialStatus.FAILED, hangup_cause=self._worst().cause_name))
            return
        self._start_ringback()

    def _start_ringback(self) -> None:
        a = self.call.leg
        if a.answered or isinstance(self.spec.ringback, Ringback):
            return
        a.pre_answer()
        if a.media is None:
            return
        prompts = [p for p in self.spec.ringback if isinstance(p, Play | Speak)]
        if not prompts:
            return
        first = prompts[0]
        if isinstance(first, Play):
            ringback = a.media.play([first.url], loop=0)
        else:
            ringback = a.media.speak(first.text, loop=0)
        ringback.addErrback(lambda _: None)
        self._ringback = ringback

    def _stop_ringback(self) -> None:
        if self._ringback is not None and not self._ringback.called:
            self._ringback.cancel()
        self._ringback = None

    # -- B leg events ---------------------------------------------------------------------

    def _leg_state(self, leg: Leg, state: LegState) -> None:
        a = self.call.leg
        if state in (LegState.RINGING, LegState.EARLY) and self.winner is None:
            self.rang = True
            if not a.answered and self.spec.ringback is Ringback.DEFAULT and self._ringback is None:
                a.ring()
            if (
                state is LegState.EARLY
                and self._early is None
                and self.spec.ringback is Ringback.REAL
            ):
                self._bridge_early(leg)
            self._send_digits(leg, early=True)
        elif state is LegState.ANSWERED and self.winner is None:
            if self.screens:
                self._screen(leg)
            else:
                self._answered(leg)

    def _bridge_early(self, leg: Leg) -> None:
        a = self.call.leg
        a.pre_answer()
        if a.media is not None and leg.media is not None:
            self._early = leg
            self.bridge = MediaBridge(a.media, leg.media)
            self.bridge.start()

    def _answered(self, leg: Leg) -> None:
        self.winner = leg
        self.rang = True
        for other in list(self.legs):
            if other is not leg:
                other.hangup(Cause.ORIGINATOR_CANCEL, "Plivo")
        self._stop_ringback()
        a = self.call.leg
        if not a.answered:
            a.answer()
        if self.bridge is not None and self._early is not leg:
            self.bridge.stop()
            self.bridge = None
        if self.bridge is None and a.media is not None and leg.media is not None:
            self.bridge = MediaBridge(a.media, leg.media)
            self.bridge.start()
        self._start_recording()
        position = self.legs[leg]
        for kind in (DialEventKind.ANSWER, DialEventKind.CONNECTED):
            self._event(kind, leg, position)
        if self.spec.report_b_leg_digits and leg.media is not None:
            leg.media.add_listener(
                DigitTap(
                    lambda digit: self._event(DialEventKind.DIGITS, leg, position, digits=digit)
                )
            )
        self._send_digits(leg, early=False)
        # Ended while it was answering (caller gone, *): hang the winner up at once.
        # Not the ring timeout: a screened leg answered in time, and is bridged.
        if self._ending is not None and self._ending is not DialEnd.NO_ANSWER:
            self.end(self._ending)

    def _send_digits(self, leg: Leg, *, early: bool) -> None:
        target = self.spec.targets[self.legs[leg] - 1]
        if not target.send_digits or target.send_on_preanswer != early or leg.media is None:
            return
        if leg in self._digits_sent:
            return
        self._digits_sent.add(leg)
        d = leg.media.send_digits(target.send_digits)
        d.addErrback(
            lambda f: log.info("sendDigits on {uuid}: {e}", uuid=leg.uuid, e=f.getErrorMessage())
        )

    def _leg_ended(self, end: LegEnd, leg: Leg) -> LegEnd:
        self._stop_screening(leg)
        position = self.legs.get(leg, 0)
        if leg is self.winner:
            if self.bridge is not None:
                self.bridge.stop()
                self.bridge = None
            self._event(DialEventKind.HANGUP, leg, position, end)
            self._finish_recorded(
                DialResult(
                    DialStatus.COMPLETED,
                    rang=True,
                    hangup_cause=end.cause.cause_name,
                    b_leg_uuid=leg.uuid,
                    duration=leg.duration(),
                    bill_duration=leg.bill_duration(),
                )
            )
        elif self.winner is None:
            if leg is self._early and self.bridge is not None:
                self.bridge.stop()
                self.bridge = None
                self._early = None
            self._failures.append(end.cause)
            if all(other.state is LegState.ENDED for other in self.legs):
                self._stop_ringback()
                status = DialStatus.NO_ANSWER if self._ending is DialEnd.NO_ANSWER else None
                self._finish(
                    DialResult(
                        status or _STATUS_FOR_CAUSE.get(self._worst(), DialStatus.FAILED),
                        rang=self.rang,
                        hangup_cause=self._worst().cause_name,
                    )
                )
        return end

    def _worst(self) -> Cause:
        """The failure that best describes the attempt: busy beats no answer beats failed."""
        for cause in (Cause.BUSY, Cause.NO_ANSWER, Cause.ORIGINATOR_CANCEL):
            if cause in self._failures:
                return cause
        return self._failures[0] if self._failures else Cause.FAILED

    def _event(
        self,
        kind: DialEventKind,
        leg: Leg,
        position: int,
        end: LegEnd | None = None,
        digits: str = "",
    ) -> None:
        event = DialEvent(
            kind,
            b_leg_uuid=leg.uuid,
            b_leg_from=self.call.caller_id_for(self.spec),
            b_leg_to=str(leg.invite.uri),
            position=position,
            digits=digits,
            hangup_cause=end.cause.cause_name if end else "",
            duration=leg.duration() if end else 0,
            bill_duration=leg.bill_duration() if end else 0,
        )
        try:
            self.on_event(event)
        except Exception:
            log.failure("Dial event handler failed")

    # -- the executor's side ----------------------------------------------------------------

    def end(self, reason: DialEnd) -> None:
        """Stop ringing (no answer) or hang up the bridged leg (time limit, *, caller gone)."""
        self._ending = reason
        if self.winner is not None:
            cause = {DialEnd.TIME_LIMIT: Cause.TIME_LIMIT}.get(reason, Cause.NORMAL)
            self.winner.hangup(cause, "Plivo")
            return
        for leg in list(self.legs):
            if reason is DialEnd.NO_ANSWER and leg in self._screening:
                continue  # answered in time: its screening ends by itself
            leg.hangup(
                Cause.NO_ANSWER if reason is DialEnd.NO_ANSWER else Cause.ORIGINATOR_CANCEL, "Plivo"
            )
        if not self.legs:
            self._finish(DialResult(DialStatus.NO_ANSWER, rang=self.rang))

    # -- startOnDialAnswer -------------------------------------------------------------------

    def _start_recording(self) -> None:
        """Record both parties from the answer (``<Record startOnDialAnswer>``): the
        caller's session hears the caller and sends the callee."""
        spec, media = self.spec.record, self.call.leg.media
        if spec is None or media is None or self._recording is not None:
            return
        recordings = self.call.services.recordings
        pending = recordings.begin(spec.file_format.value)
        try:
            recording = media.record_call(
                path=pending.partial,
                file_format=pending.file_format,
                stereo=spec.channels is ChannelType.STEREO,
            )
        except Exception as exc:  # the session closed meanwhile
            log.warn("call {call_uuid}: Dial recording not started: {error}",
                     call_uuid=self.call.uuid, error=str(exc))  # fmt: skip
            return
        info = self.call.recording_info()
        filed = recording.addCallback(lambda result: recordings.file(info, pending, result))

        def failed(failure: Failure) -> None:
            log.failure(
                "call {call_uuid}: Dial recording failed", failure, call_uuid=self.call.uuid
            )

        self._recording = (pending.partial, filed.addErrback(failed))

    def _finish_recorded(self, result: DialResult) -> None:
        """The bridge is over: stop its recording, and finish once the file is filed."""
        if self._recording is None:
            self._finish(result)
            return
        path, filed = self._recording
        media = self.call.leg.media
        if media is not None:
            media.stop_recording(path)

        def done(report: RecordResult | None) -> None:
            self._finish(attrs.evolve(result, recording=report))

        filed.addCallback(done)

    def _finish(self, result: DialResult) -> None:
        self._stop_ringback()
        if not self.result.called:
            self.result.callback(result)

    # -- call screening ---------------------------------------------------------------------

    def _screen(self, leg: Leg) -> None:
        """``leg`` answered: play it the confirm prompts and wait for its key."""
        position = self.legs[leg]
        media = leg.media
        if media is None:  # an answer without media cannot be screened
            self._fail_screening(leg, Cause.MEDIA_FAILURE, "it answered without media")
            return
        self.rang = True
        a = self.call.leg
        if self._early is leg and self.bridge is not None:
            # The caller heard this leg's early media; what it says now is not for them.
            self.bridge.stop()
            self.bridge = None
            self._early = None
            self._play_ringback_tone()
        elif not a.answered and self.spec.ringback is Ringback.DEFAULT:
            a.ring()  # a callee that answered without ringing: the caller rings meanwhile
        screening = _Screening()
        self._screening[leg] = screening
        key = self.spec.confirm_key
        log.info(
            "call {call_uuid}: Dial target {position} answered (B leg {b_leg}); screening it: "
            "{prompts} prompt(s), confirm key {key}, {timeout} s",
            call_uuid=self.call.leg.uuid,
            position=position,
            b_leg=leg.uuid,
            prompts=len(self.spec.confirm_prompts),
            key=key or "none",
            timeout=self.spec.confirm_timeout,
        )
        if key is not None:
            screening.tap = DigitTap(lambda digit: self._screen_key(leg, digit))
            media.add_listener(screening.tap)
        clock = leg.clock
        screening.timer = clock.callLater(self.spec.confirm_timeout, self._screen_timeout, leg)
        playing = Deferred.fromCoroutine(self._prompt_b_leg(media, self.spec.confirm_prompts))
        screening.prompts = playing
        playing.addCallbacks(lambda _: self._prompts_over(leg), self._prompts_stopped)

    async def _prompt_b_leg(self, media: IMediaSession, prompts: tuple[Prompt, ...]) -> None:
        """Play the confirm prompts to the called party, one after the other."""
        for prompt in prompts:
            try:
                if isinstance(prompt, Play):
                    await media.play([prompt.url], loop=prompt.loop)
                elif isinstance(prompt, Speak):
                    await media.speak(
                        prompt.text,
                        voice=espeak_voice(prompt.voice),
                        language=prompt.language,
                        loop=prompt.loop,
                    )
                else:
                    await deferLater(self.call.leg.clock, prompt.length, lambda: None)
            except CancelledError:
                raise
            except Exception as exc:  # a prompt that cannot play is skipped, as Plivo does
                log.info("confirmSound prompt skipped: {error}", error=str(exc))

    def _prompts_stopped(self, failure: Failure) -> None:
        failure.trap(CancelledError)

    def _prompts_over(self, leg: Leg) -> None:
        screening = self._screening.get(leg)
        if screening is None:
            return
        screening.prompts = None
        screening.prompts_over = True
        if self.spec.confirm_key is None:
            self._confirmed(leg, "its prompts are over")

    def _screen_key(self, leg: Leg, digit: str) -> None:
        if leg not in self._screening:
            return
        if digit == self.spec.confirm_key:
            self._confirmed(leg, f"it pressed {digit}")
        else:
            self._fail_screening(leg, Cause.REJECTED, f"it pressed {digit}, not the confirm key")

    def _screen_timeout(self, leg: Leg) -> None:
        screening = self._screening.get(leg)
        if screening is None:
            return
        screening.timer = None
        if self.spec.confirm_key is None:
            self._confirmed(leg, f"confirmTimeout ({self.spec.confirm_timeout} s) is over")
        else:
            self._fail_screening(
                leg,
                Cause.NO_ANSWER,
                f"no key within confirmTimeout ({self.spec.confirm_timeout} s)",
            )

    def _confirmed(self, leg: Leg, why: str) -> None:
        self._stop_screening(leg)
        if self.winner is not None or leg.state is not LegState.ANSWERED:
            return
        log.info(
            "call {call_uuid}: B leg {b_leg} confirmed ({why}); bridging it",
            call_uuid=self.call.leg.uuid,
            b_leg=leg.uuid,
            why=why,
        )
        self._answered(leg)

    def _fail_screening(self, leg: Leg, cause: Cause, why: str) -> None:
        self._stop_screening(leg)
        log.info(
            "call {call_uuid}: B leg {b_leg} not confirmed ({why}); hanging it up",
            call_uuid=self.call.leg.uuid,
            b_leg=leg.uuid,
            why=why,
        )
        leg.hangup(cause, "Plivo")

    def _stop_screening(self, leg: Leg) -> None:
        """Forget ``leg``'s screening: stop its prompts, its key tap and its timer."""
        screening = self._screening.pop(leg, None)
        if screening is None:
            return
        if screening.timer is not None and screening.timer.active():
            screening.timer.cancel()
        media = leg.media
        if media is not None and screening.tap is not None:
            media.remove_listener(screening.tap)
        if screening.prompts is not None:
            screening.prompts.cancel()
            if media is not None:
                media.stop_output()

    def _play_ringback_tone(self) -> None:
        """Ringback on the caller's own media, once early media from a callee stopped."""
        a = self.call.leg
        if a.answered or a.media is None or self._ringback is not None:
            return
        ringback = a.media.play_tone("ringback")
        ringback.addErrback(lambda _: None)
        self._ringback = ringback
