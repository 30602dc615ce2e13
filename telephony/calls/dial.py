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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from media import MediaBridge
from telephony.calls.causes import Cause
from telephony.calls.control import DigitTap
from telephony.calls.leg import Leg, LegEnd, LegState
from xml_dsl import (
    DialEnd,
    DialEvent,
    DialEventKind,
    DialResult,
    DialSpec,
    DialStatus,
    IDialAttempt,
    Ringback,
)
from xml_dsl.verbs import Number, Play, Speak, User

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
}


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

    # -- start ------------------------------------------------------------------------

    def start(self) -> None:
        """Place every target's leg."""
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
        if self._ending is not None:  # ended while it was answering
            self.end(self._ending)

    def _send_digits(self, leg: Leg, *, early: bool) -> None:
        target = self.spec.targets[self.legs[leg] - 1]
        if not target.send_digits or target.send_on_preanswer != early or leg.media is None:
            return
        if getattr(leg, "_digits_sent", False):
            return
        leg._digits_sent = True  # type: ignore[attr-defined]
        d = leg.media.send_digits(target.send_digits)
        d.addErrback(
            lambda f: log.info("sendDigits on {uuid}: {e}", uuid=leg.uuid, e=f.getErrorMessage())
        )

    def _leg_ended(self, end: LegEnd, leg: Leg) -> LegEnd:
        position = self.legs.get(leg, 0)
        if leg is self.winner:
            if self.bridge is not None:
                self.bridge.stop()
                self.bridge = None
            self._event(DialEventKind.HANGUP, leg, position, end)
            self._finish(
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
            leg.hangup(
                Cause.NO_ANSWER if reason is DialEnd.NO_ANSWER else Cause.ORIGINATOR_CANCEL, "Plivo"
            )
        if not self.legs:
            self._finish(DialResult(DialStatus.NO_ANSWER, rang=self.rang))

    def _finish(self, result: DialResult) -> None:
        self._stop_ringback()
        if not self.result.called:
            self.result.callback(result)
