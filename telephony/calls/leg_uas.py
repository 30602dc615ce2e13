"""The caller's leg: the UAS side of an INVITE dialog usage.

It rings (180), pre-answers (183 with our SDP answer), answers (200, with the RFC
4028 session timer negotiated) or refuses (a final response naming its cause), and
answers the caller's CANCEL with 487.  Its 2xx is resent until the ACK comes, on the
schedule of :mod:`telephony.sip.reliable_2xx` (§13.3.1.4): the schedule says when,
this module arms the timers; 64·T1 without an ACK ends the call with a BYE.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from media import MediaEngine, SDPError, SessionDescription, parse_sdp
from telephony.calls.causes import Cause, cause_for_status
from telephony.calls.leg import SDP, Leg, SipContext
from telephony.calls.leg_state import LegEvent, LegState, Role
from telephony.sip.dialog import Dialog
from telephony.sip.errors import SipError
from telephony.sip.headers import Headers
from telephony.sip.message import Request, Response
from telephony.sip.reliable_2xx import Reliable2xx, Step, StepKind
from telephony.sip.session_timer import TooSmallError, negotiate_as_uas
from telephony.sip.stack import ServerTransactionHandle

__all__ = ("IncomingLeg",)

log = Logger()


class IncomingLeg(Leg):
    """The caller's leg, for an INVITE we received.

    :raises SipError: the INVITE cannot start a dialog (no Contact: 400; bad SDP: 400
        or 488), to be answered by the caller.
    """

    def __init__(
        self,
        invite: Request,
        txn: ServerTransactionHandle,
        *,
        uuid: str,
        ctx: SipContext,
        media: MediaEngine,
        clock: IReactorTime,
    ) -> None:
        super().__init__(
            uuid=uuid,
            role=Role.UAS,
            ctx=ctx,
            media=media,
            clock=clock,
            peer=txn.peer,
            invite=invite,
        )
        self._txn = txn
        self.local_tag = txn.to_tag
        self.dialog = Dialog.as_uas(invite, txn.to_tag, ctx.contact, ctx.via_host)
        self._offer: SessionDescription | None = None
        if invite.body:
            try:
                self._offer = parse_sdp(invite.body)
            except SDPError as exc:
                raise SipError(f"Bad SDP: {exc}", exc.status_hint) from None
        self._local_answer: SessionDescription | None = None
        self._final_2xx: Response | None = None
        self._retransmit: IDelayedCall | None = None
        self._acked = True

    def ring(self) -> None:
        """180 Ringing (UAS, before an answer)."""
        if self._accepts(LegEvent.RING):
            self._respond(180)
            self._set_state(LegState.RINGING)

    def pre_answer(self) -> Deferred[None]:
        """183 Session Progress with our SDP answer: early media (UAS)."""
        if not self._accepts(LegEvent.PRE_ANSWER):
            return succeed(None)
        if self._offer is None:
            self.ring()  # a delayed offer leaves no room for early media
            return succeed(None)
        self._local_answer = self.ensure_media().accept_offer(self._offer)
        self._respond(183, body=self._local_answer.to_bytes())
        self._set_state(LegState.EARLY)
        return succeed(None)

    def answer(self) -> Deferred[None]:
        """200 OK with SDP (UAS); fires once sent.  An outgoing leg is answered by its peer."""
        if not self._accepts(LegEvent.ANSWER):
            return succeed(None)
        try:
            timer, timer_headers = negotiate_as_uas(
                self.invite, min_se=self.ctx.min_se, default=self.ctx.session_expires
            )
        except TooSmallError as exc:
            self.reject(422, headers=Headers([("Min-SE", str(exc.min_se))]))
            return succeed(None)
        session = self.ensure_media()
        if self._offer is not None:
            # The 200 repeats the answer of a 183, if one was sent (§13.2.1).
            if self._local_answer is None:
                self._local_answer = session.accept_offer(self._offer)
            body = self._local_answer.to_bytes()
        else:
            body = session.create_offer().to_bytes()  # delayed offer: the ACK answers
        headers = Headers([("Supported", "timer")])
        for name, value in timer_headers:
            headers.add(name, value)
        response = self._respond(200, body=body, headers=headers)
        self._final_2xx = response
        self._acked = False
        if self.dialog is not None:
            self.dialog.confirmed = True
        self.session_timer = timer
        self.answered_at = self.clock.seconds()
        timers = self.ctx.stack.timers
        schedule = Reliable2xx(self.answered_at, timers.t1, timers.t2)
        self._2xx_at(schedule, schedule.first())
        self._set_state(LegState.ANSWERED)
        self._restart_session_timer()
        return succeed(None)

    def reject(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | None = None,
        cause: Cause | None = None,
    ) -> None:
        """Refuse the call with a final response (UAS, not answered), its cause named
        in a ``Reason`` header (RFC 3326)."""
        if not self._accepts(LegEvent.REJECT):
            return
        cause = cause or cause_for_status(status)
        all_headers = Headers(list(headers or ()))
        all_headers.add("Reason", cause.reason_header(status))
        self._respond(status, reason, headers=all_headers)
        self._end(cause, "Plivo", status)

    def cancelled(self, cancel_txn: ServerTransactionHandle) -> None:
        """The caller sent CANCEL: 200 to it, 487 to the INVITE (§9.2)."""
        cancel_txn.respond(200)
        if self._accepts(LegEvent.CANCELLED):
            self._respond(487)
            self._end(Cause.ORIGINATOR_CANCEL, "Caller", 487)

    def _respond(
        self,
        status: int,
        reason: str | None = None,
        *,
        body: bytes = b"",
        headers: Headers | None = None,
    ) -> Response:
        all_headers = Headers()
        if 100 < status < 300:
            all_headers.add("Contact", f"<{self.ctx.contact}>")
            all_headers.add("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO")
        for name, value in headers or ():
            all_headers.add(name, value)
        if body:
            all_headers.add("Content-Type", SDP)
        return self._txn.respond(status, reason, all_headers, body)

    def _2xx_at(self, schedule: Reliable2xx, step: Step) -> None:
        """Arm the timer for *step* of the 2xx's schedule (§13.3.1.4): its time is
        absolute, so a late timer does not delay the steps after it."""
        delay = max(0.0, step.at - self.clock.seconds())
        self._retransmit = self.clock.callLater(delay, self._2xx_due, schedule, step)

    def _2xx_due(self, schedule: Reliable2xx, step: Step) -> None:
        """Resend the 2xx, or, at 64·T1 without an ACK, end the call with a BYE."""
        self._retransmit = None
        if self._acked or self.state is LegState.ENDED or self._final_2xx is None:
            return
        if step.kind is StepKind.GIVE_UP:
            log.warn("No ACK for the 200 OK of {uuid}: ending the call", uuid=self.uuid)
            self._send_bye(Cause.ACK_TIMEOUT, "Plivo")
            return
        self._txn.send(self._final_2xx)
        following = schedule.after(step)
        if following is not None:
            self._2xx_at(schedule, following)

    def handle_ack(self, ack: Request) -> None:
        """The ACK of our 2xx arrived (with the SDP answer, after a delayed offer)."""
        if self._acked or not self._accepts(LegEvent.ACK):
            return
        self._acked = True
        if self._retransmit is not None and self._retransmit.active():
            self._retransmit.cancel()
        self._retransmit = None
        if ack.body and self.media is not None and self.media.negotiated is None:
            try:
                self.media.accept_answer(parse_sdp(ack.body))
            except SDPError as exc:
                log.warn("Bad SDP in the ACK of {uuid}: {error}", uuid=self.uuid, error=exc)
                self._send_bye(Cause.MEDIA_FAILURE, "Plivo")

    def _hangup_unanswered(self, cause: Cause, source: str) -> None:
        self.reject(cause.sip_status, cause=cause)

    def _stop(self) -> None:
        if self._retransmit is not None and self._retransmit.active():
            self._retransmit.cancel()
        self._retransmit = None
