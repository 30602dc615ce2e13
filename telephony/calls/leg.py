"""One call leg: a SIP dialog, as UAS (the caller's leg) or UAC (a leg we place), and
the media session anchored for it.

A leg knows SIP and media, not applications: it rings, pre-answers, answers,
rejects, cancels and hangs up; it answers re-INVITEs, UPDATEs and BYEs from its
peer; it retransmits its 2xx until the ACK (§13.3.1.4, on the schedule of
:mod:`telephony.sip.reliable_2xx`) and runs the RFC 4028 session timer, ending the
call when a session expires unrefreshed.  What the call should do (run an
application, bridge to another leg) is decided by its owner, which listens to the
leg's events and its :attr:`Leg.ended` Deferred.

Which event a leg acts on in which state, and which state may follow which, is the
table of :mod:`telephony.calls.leg_state`: each method here first asks it, and does
nothing where the table says the event does not apply (a ring after the answer, a
hangup after the end).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from media import Direction, IMediaSession, MediaEngine, SDPError, SessionDescription, parse_sdp
from telephony.calls.causes import Cause, cause_for_status
from telephony.calls.leg_state import LegEvent, LegState, Role, accepts, may_move
from telephony.calls.uac import (
    AUTH_HEADERS,
    InviteTemplate,
    OutgoingInvite,
    UacFailure,
    build_invite,
    send_authenticated,
)
from telephony.sip.dialog import Dialog
from telephony.sip.errors import SipError
from telephony.sip.headers import Headers
from telephony.sip.message import Request, Response
from telephony.sip.reliable_2xx import Reliable2xx, Step, StepKind
from telephony.sip.session_timer import (
    SessionTimer,
    TooSmallError,
    negotiate_as_uas,
    result_as_uac,
)
from telephony.sip.transport import Peer, ServerTransactionHandle, SipStack, new_tag
from telephony.sip.uri import NameAddr, SipURI
from telephony.trunks.hops import FixedPlan, Hop, HopPlan, SipCredentials

__all__ = ("Leg", "LegEnd", "LegEvent", "LegState", "Role", "SipContext")

log = Logger()

SDP = "application/sdp"


@attrs.frozen
class LegEnd:
    """How a leg ended: the cause, who ended it, and the SIP status if one said it."""

    cause: Cause
    source: str
    sip_status: int | None = None


@attrs.frozen
class SipContext:
    """What every leg needs from the SIP side.

    :ivar via_host: our sent-by (``host:port``) for Via headers.
    :ivar contact: our Contact URI for dialogs.
    :ivar min_se: the shortest session interval we accept, seconds (RFC 4028 Min-SE).
    :ivar session_expires: the interval we ask for, seconds.
    """

    stack: SipStack
    via_host: str
    contact: str
    domain: str
    min_se: int = 90
    session_expires: int = 1800


@attrs.define
class _Outgoing:
    """An outgoing leg's INVITE.

    :ivar template, first: how the first INVITE is built and where it goes; dropped
        once it is sent (the leg's ``invite`` then names the call).
    :ivar plan: the hops, until the INVITE starts (then the ``uac`` has it).
    :ivar credentials: the answered hop's, for in-dialog requests (BYE, re-INVITE).
    """

    template: InviteTemplate | None
    first: Hop | None
    plan: HopPlan | None
    credentials: SipCredentials | None
    uac: OutgoingInvite | None = None


class Leg:
    """A SIP dialog plus its media session.  Use :meth:`incoming` or :meth:`outgoing`.

    :ivar uuid: the leg's CallUUID.
    :ivar ended: fires once with a :class:`LegEnd` when the leg is over.
    """

    def __init__(
        self,
        *,
        uuid: str,
        role: Role | str,
        ctx: SipContext,
        media: MediaEngine,
        clock: IReactorTime,
        peer: Peer,
        invite: Request | None,
    ) -> None:
        self.uuid = uuid
        self.role = Role(role)
        self.ctx = ctx
        self.media_engine = media
        self.clock = clock
        self.peer = peer
        self._invite = invite
        self.state = LegState.NEW
        self.dialog: Dialog | None = None
        self.media: IMediaSession | None = None
        self.started_at = clock.seconds()
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.ended: Deferred[LegEnd] = Deferred()
        self.end_info: LegEnd | None = None
        self.listeners: list[Callable[[Leg, LegState], None]] = []
        self.on_reoffer: Callable[[Leg, SessionDescription], SessionDescription] | None = None
        self.session_timer: SessionTimer | None = None
        self._timer_call: IDelayedCall | None = None
        self._retransmit: IDelayedCall | None = None
        self._txn: ServerTransactionHandle | None = None
        self._offer: SessionDescription | None = None
        self._local_answer: SessionDescription | None = None
        self._final_2xx: Response | None = None
        self._acked = True
        self._cancel_pending = False
        self._provisional_seen = False
        self.local_tag = ""
        #: An outgoing leg's INVITE: how it is built and where it goes (one
        #: attribute: CPython shares the key table of instances with at most 30).
        self._out: _Outgoing | None = None

    def __repr__(self) -> str:
        return f"<Leg {self.role} {self.uuid} {self.state.value}>"

    # -- construction --------------------------------------------------------------

    @classmethod
    def incoming(
        cls,
        invite: Request,
        txn: ServerTransactionHandle,
        *,
        uuid: str,
        ctx: SipContext,
        media: MediaEngine,
        clock: IReactorTime,
    ) -> Leg:
        """The caller's leg, for an INVITE we received.

        :raises SipError: the INVITE cannot start a dialog (no Contact: 400; bad SDP:
            400 or 488), to be answered by the caller.
        """
        leg = cls(
            uuid=uuid, role="uas", ctx=ctx, media=media, clock=clock, peer=txn.peer, invite=invite
        )
        leg._txn = txn
        leg.local_tag = txn.to_tag
        leg.dialog = Dialog.as_uas(invite, txn.to_tag, ctx.contact, ctx.via_host)
        if invite.body:
            try:
                leg._offer = parse_sdp(invite.body)
            except SDPError as exc:
                raise SipError(f"Bad SDP: {exc}", exc.status_hint) from None
        return leg

    @classmethod
    def outgoing(
        cls,
        *,
        uuid: str,
        ctx: SipContext,
        media: MediaEngine,
        clock: IReactorTime,
        peer: Peer,
        request_uri: SipURI,
        from_: NameAddr,
        to: NameAddr,
        extra_headers: Headers | None = None,
        credentials: SipCredentials | None = None,
        plan: HopPlan | None = None,
    ) -> Leg:
        """A leg we place (a Dial target, an API call); call :meth:`start` to send it.

        Without a *plan* the INVITE goes to *peer* alone (answering a challenge with
        *credentials*); with one, it goes to the plan's hops in turn (gateways, with
        failover), and *peer*, *request_uri*, *from_* and *to* only name the call
        until the first hop is known.
        """
        first = Hop(peer, request_uri, from_, to, credentials)
        template = InviteTemplate(
            call_id=f"{secrets.token_hex(12)}@{ctx.domain}",
            from_tag=new_tag(),
            via_host=ctx.via_host,
            contact=ctx.contact,
            session_expires=ctx.session_expires,
            min_se=ctx.min_se,
            extra=tuple(extra_headers or ()),
        )
        leg = cls(uuid=uuid, role="uac", ctx=ctx, media=media, clock=clock, peer=peer, invite=None)
        leg.local_tag = template.from_tag
        leg._out = _Outgoing(template, first, plan or FixedPlan(first), credentials)
        return leg

    @property
    def invite(self) -> Request:
        """The INVITE: the caller's (UAS); ours as last sent (UAC), or before the first
        is sent, the one the first hop would get (built only if asked for)."""
        if self._invite is None:
            out = self._out
            if out is None or out.template is None or out.first is None:
                raise SipError("an outgoing leg without its first hop", 500)
            self._invite = build_invite(out.template, out.first, 1)
        return self._invite

    @invite.setter
    def invite(self, request: Request) -> None:
        self._invite = request

    @property
    def call_id(self) -> str:
        """The SIP Call-ID, without building an outgoing leg's INVITE to read it."""
        if self._invite is None and self._out is not None and self._out.template is not None:
            return self._out.template.call_id
        return self.invite.call_id

    # -- events ---------------------------------------------------------------------

    def _accepts(self, event: LegEvent) -> bool:
        """Whether this leg acts on *event* in its state (:data:`~.leg_state.ACCEPTS`)."""
        return accepts(self.role, event, self.state)

    def _set_state(self, state: LegState) -> None:
        """Move to *state* and tell the listeners; staying put is no move, and a
        move the table forbids is logged and not made."""
        if self.state is state:
            return
        if not may_move(self.state, state):
            if self.state is not LegState.ENDED:
                log.warn(
                    "Leg {uuid}: no move from {old} to {new}",
                    uuid=self.uuid,
                    old=self.state.value,
                    new=state.value,
                )
            return
        self.state = state
        for listener in list(self.listeners):
            try:
                listener(self, state)
            except Exception:
                log.failure("Leg listener failed ({uuid})", uuid=self.uuid)

    @property
    def answered(self) -> bool:
        """Whether the leg has been answered (and not ended before)."""
        return self.answered_at is not None

    def ensure_media(self) -> IMediaSession:
        """The leg's media session, created on first use."""
        if self.media is None:
            self.media = self.media_engine.create_session(call_uuid=self.uuid)
        return self.media

    # -- UAS ------------------------------------------------------------------------

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
        if not self._accepts(LegEvent.ANSWER) or self._txn is None:
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
        if self._txn is None:
            raise SipError("not a UAS leg", 500)
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
        if self._txn is not None:
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

    # -- UAC ------------------------------------------------------------------------

    def start(self) -> None:
        """Send the INVITE with our SDP offer (UAC), to the plan's hops in turn."""
        out = self._out
        if out is None or out.template is None or out.plan is None:
            return
        if not self._accepts(LegEvent.START):
            return
        offer = self.ensure_media().create_offer()
        plan, out.plan = out.plan, None
        out.uac = OutgoingInvite(
            stack=self.ctx.stack,
            clock=self.clock,
            plan=plan,
            template=out.template,
            body=offer.to_bytes(),
            on_sent=self._invite_sent,
            on_response=self._uac_response,
            on_failed=self._uac_failed,
            uuid=self.uuid,
        )
        out.uac.start()

    def _invite_sent(self, invite: Request, peer: Peer, hop: Hop) -> None:
        """A new INVITE went out (a first try, an authenticated resend, a failover)."""
        self.invite = invite
        self.peer = peer
        if self._out is not None:
            self._out.credentials = hop.credentials
            self._out.template = self._out.first = None  # the INVITE now names the call
        self._provisional_seen = False

    def _uac_failed(self, failure: UacFailure) -> None:
        """Every hop failed, or our credentials were refused."""
        log.info(
            "Outgoing leg {uuid} failed: {cause} ({reason})",
            uuid=self.uuid,
            cause=failure.effective_cause.cause_name,
            reason=failure.reason,
        )
        self._end(failure.effective_cause, "Callee", failure.status)

    def _uac_response(self, response: Response) -> None:
        """A response to our INVITE: the event it is depends on its class and on
        whether we are answered already (then a 2xx is a retransmission)."""
        status = response.status
        if status < 200:
            # Any provisional, 100 included, allows the CANCEL we may be holding (§9.1),
            # even once we ended: the CANCEL still has to go out.
            self._provisional_seen = True
            if self._cancel_pending:
                self._send_cancel()
            event = LegEvent.PROVISIONAL
        elif status < 300:
            if self.state is LegState.ENDED:
                if self.dialog is None:
                    self._ack_and_bye(response)  # a 2xx crossing our CANCEL
                return
            answered = self.state is LegState.ANSWERED
            event = LegEvent.RETRANSMITTED_2XX if answered else LegEvent.PEER_ANSWERED
        else:
            event = LegEvent.FAILED
        if self._accepts(event):
            _RESPONSE_HANDLERS[event](self, response)

    def _provisional(self, response: Response) -> None:
        """A 1xx: an early dialog, maybe early media (a 183 with SDP)."""
        if response.status == 100:
            return
        if response.to.tag and self.dialog is None:
            self.dialog = Dialog.as_uac(self.invite, response, self.ctx.via_host)
        if response.body and self.media is not None and self.media.negotiated is None:
            self._accept_answer(response)
        self._set_state(LegState.EARLY if response.body else LegState.RINGING)

    def _answered_by_peer(self, response: Response) -> None:
        """The first 2xx: ACK it, then answered, unless we were cancelling meanwhile."""
        self.dialog = Dialog.as_uac(self.invite, response, self.ctx.via_host)
        self._send_ack(response)
        if self._cancel_pending:
            self._send_bye(Cause.ORIGINATOR_CANCEL, "Plivo")
            return
        needs_answer = self.media is not None and self.media.negotiated is None
        if response.body and needs_answer and not self._accept_answer(response):
            return
        self.session_timer = result_as_uac(response, asked=self.ctx.session_expires)
        self.answered_at = self.clock.seconds()
        self._set_state(LegState.ANSWERED)
        self._restart_session_timer()

    def _retransmitted_2xx(self, response: Response) -> None:
        """Our ACK was lost: the peer resends its 2xx, and we ACK again (§13.2.2.4)."""
        self._send_ack(response)

    def _refused(self, response: Response) -> None:
        """A 3xx to 6xx final answer (the last hop's): the leg ends with its cause."""
        status = response.status
        cause = Cause.ORIGINATOR_CANCEL if status == 487 else cause_for_status(status)
        self._end(cause, "Callee", status)

    def _accept_answer(self, response: Response) -> bool:
        if self.media is None:
            return False
        try:
            self.media.accept_answer(parse_sdp(response.body))
        except SDPError as exc:
            log.warn("Bad SDP answer on {uuid}: {error}", uuid=self.uuid, error=exc)
            if response.status >= 200:
                self._send_bye(Cause.MEDIA_FAILURE, "Plivo")
            return False
        return True

    def _ack(self, dialog: Dialog) -> Request:
        """The ACK of our INVITE's 2xx, with the INVITE's credentials (§13.2.2.4)."""
        ack = dialog.ack(self.invite.cseq.number)
        if self._out is not None and self._out.credentials is not None:
            for name in AUTH_HEADERS:
                for value in self.invite.headers.get_all(name):
                    ack.headers.add(name, value)
        return ack

    def _send_ack(self, response: Response) -> None:
        dialog = self.dialog or Dialog.as_uac(self.invite, response, self.ctx.via_host)
        self.ctx.stack.send_stateless(self._ack(dialog), self.peer)

    def _ack_and_bye(self, response: Response) -> None:
        dialog = Dialog.as_uac(self.invite, response, self.ctx.via_host)
        self.ctx.stack.send_stateless(self._ack(dialog), self.peer)
        self._request_in(dialog, "BYE").addErrback(self._crashed)

    def _request_in(self, dialog: Dialog, method: str, **kwargs: Any) -> Deferred[Response]:
        """Send an in-dialog request, answering a challenge with the hop's credentials."""
        return send_authenticated(
            self.ctx.stack,
            self.peer,
            lambda auth: dialog.request(method, extra=auth or None, **kwargs),
            self._out.credentials if self._out is not None else None,
        )

    def cancel(self) -> None:
        """Stop ringing (UAC): CANCEL once a provisional response came (§9.1)."""
        if not self._accepts(LegEvent.CANCEL):
            return
        if self._provisional_seen:
            self._send_cancel()
        else:
            self._cancel_pending = True

    def _send_cancel(self) -> None:
        headers = Headers()
        headers.add("Via", self.invite.headers.values("Via")[0])
        for route in self.invite.headers.get_all("Route"):
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", self.invite.headers.get("From") or "")
        headers.add("To", self.invite.headers.get("To") or "")
        headers.add("Call-ID", self.invite.call_id)
        headers.add("CSeq", f"{self.invite.cseq.number} CANCEL")
        cancel = Request("CANCEL", self.invite.uri, headers)
        self._cancel_pending = False
        self.ctx.stack.send_request(cancel, self.peer).addErrback(self._crashed)

    # -- both -------------------------------------------------------------------------

    def hangup(self, cause: Cause = Cause.NORMAL, source: str = "Plivo") -> None:
        """End the leg whatever its state: BYE, reject, or CANCEL."""
        if not self._accepts(LegEvent.HANGUP):
            return
        if self.answered:
            self._send_bye(cause, source)
        elif self.role is Role.UAS:
            self.reject(cause.sip_status, cause=cause)
        else:
            self.cancel()
            self._end(cause, source)

    def _send_bye(self, cause: Cause, source: str) -> None:
        if self.dialog is not None and self.state is not LegState.ENDED:
            self._request_in(self.dialog, "BYE").addErrback(self._crashed)
        self._end(cause, source)

    def handle_request(self, request: Request, txn: ServerTransactionHandle) -> None:
        """A request inside this leg's dialog."""
        if self.dialog is None or not self._accepts(LegEvent.PEER_REQUEST):
            txn.respond(481)
            return
        try:
            self.dialog.check_remote_request(request)
        except SipError as exc:
            txn.respond(exc.status_hint, exc.reason)
            return
        method = request.method
        if method == "BYE":
            txn.respond(200)
            self._end(Cause.NORMAL, "Caller" if self.role is Role.UAS else "Callee")
        elif method in ("INVITE", "UPDATE"):
            self._reoffer(request, txn)
        elif method in ("INFO", "OPTIONS"):
            txn.respond(200)
        else:
            txn.respond(501)

    def _reoffer(self, request: Request, txn: ServerTransactionHandle) -> None:
        """A re-INVITE or UPDATE: new SDP (hold, resume, a new address) and/or a refresh."""
        headers = Headers([("Contact", f"<{self.ctx.contact}>"), ("Supported", "timer")])
        body = b""
        session = self.ensure_media()
        try:
            if request.body:
                offer = parse_sdp(request.body)
                answer = (
                    self.on_reoffer(self, offer) if self.on_reoffer else session.accept_offer(offer)
                )
                body = answer.to_bytes()
            elif request.method == "INVITE":
                body = session.create_offer().to_bytes()
            timer, timer_headers = negotiate_as_uas(
                request, min_se=self.ctx.min_se, default=self.ctx.session_expires
            )
        except SDPError as exc:
            txn.respond(exc.status_hint, f"Bad SDP: {exc}"[:100])
            return
        except TooSmallError as exc:
            txn.respond(422, None, Headers([("Min-SE", str(exc.min_se))]))
            return
        for name, value in timer_headers:
            headers.add(name, value)
        if body:
            headers.add("Content-Type", SDP)
        txn.respond(200, None, headers, body)
        self.session_timer = timer
        self._restart_session_timer()

    # -- session timer ------------------------------------------------------------------

    def _restart_session_timer(self) -> None:
        if self._timer_call is not None and self._timer_call.active():
            self._timer_call.cancel()
        self._timer_call = None
        timer = self.session_timer
        if timer is None or self.state is not LegState.ANSWERED:
            return
        if timer.we_refresh:
            self._timer_call = self.clock.callLater(timer.refresh_after, self._refresh)
        else:
            self._timer_call = self.clock.callLater(timer.expire_after, self._expired)

    def _expired(self) -> None:
        self._timer_call = None
        log.info("Session of {uuid} expired unrefreshed: BYE", uuid=self.uuid)
        self._send_bye(Cause.SESSION_TIMEOUT, "Plivo")

    def _refresh(self) -> None:
        """Refresh the session with a re-INVITE carrying our current SDP."""
        self._timer_call = None
        self.reinvite()

    def reinvite(self, direction: Direction = Direction.SENDRECV) -> None:
        """Send a re-INVITE with a new offer: a session refresh, or hold (sendonly)/resume."""
        if self.dialog is None or not self._accepts(LegEvent.REINVITE) or self.media is None:
            return
        timer = self.session_timer
        extra = Headers([("Supported", "timer")])
        if timer is not None:
            extra.add("Session-Expires", f"{timer.interval};refresher={timer.refresher}")
        body = self.media.create_offer().to_bytes()
        credentials = self._out.credentials if self._out is not None else None
        dialog = self.dialog
        sent: list[Request] = []

        def build(auth: Headers) -> Request:
            headers = Headers([*extra, *auth])
            sent.append(dialog.request("INVITE", body=body, content_type=SDP, extra=headers))
            return sent[-1]

        def answered(response: Response) -> None:
            if self.state is not LegState.ANSWERED or self.dialog is None:
                return
            if 200 <= response.status < 300:
                ack = self.dialog.ack(sent[-1].cseq.number)
                for name in AUTH_HEADERS:
                    for value in sent[-1].headers.get_all(name):
                        ack.headers.add(name, value)
                self.ctx.stack.send_stateless(ack, self.peer)
                if response.body and self.media is not None:
                    with contextlib.suppress(SDPError):
                        self.media.accept_answer(parse_sdp(response.body))
                self._restart_session_timer()
            elif response.status in (408, 481):
                self._send_bye(Cause.SESSION_TIMEOUT, "Plivo")
            else:
                self._restart_session_timer()  # 491 glare and the like: try again later

        send_authenticated(self.ctx.stack, self.peer, build, credentials).addCallback(
            answered
        ).addErrback(self._crashed)

    # -- the end ----------------------------------------------------------------------

    def _end(self, cause: Cause, source: str, sip_status: int | None = None) -> None:
        if self.state is LegState.ENDED:
            return
        self._set_state(LegState.ENDED)
        self.ended_at = self.clock.seconds()
        for call in (self._timer_call, self._retransmit):
            if call is not None and call.active():
                call.cancel()
        out = self._out
        if out is not None:
            if out.uac is not None:
                out.uac.stop()
            out.uac = out.plan = out.template = out.first = None
        self._timer_call = self._retransmit = None
        self.end_info = LegEnd(cause, source, sip_status)
        # The owners hear of the end first, so that what runs on the leg is cancelled
        # (a hangup) rather than failed by its closing media session.
        self.ended.callback(self.end_info)
        if self.media is not None:
            self.media.close()

    def _crashed(self, failure: Failure) -> None:
        log.failure("Leg {uuid} failed", failure, uuid=self.uuid)
        if self.state is not LegState.ENDED:
            self._end(Cause.INTERNAL_ERROR, "Plivo")

    # -- figures ------------------------------------------------------------------------

    def duration(self) -> int:
        """Whole seconds from the start to the end (or now)."""
        end = self.ended_at if self.ended_at is not None else self.clock.seconds()
        return int(end - self.started_at)

    def bill_duration(self) -> int:
        """Whole seconds from the answer to the end (or now); 0 if never answered."""
        if self.answered_at is None:
            return 0
        end = self.ended_at if self.ended_at is not None else self.clock.seconds()
        return int(end - self.answered_at)

    def info(self) -> dict[str, Any]:
        """A summary for logs and the status page."""
        return {
            "uuid": self.uuid,
            "role": self.role,
            "state": self.state.value,
            "peer": f"{self.peer.host}:{self.peer.port}",
            "call_id": self.invite.call_id,
        }


#: What :meth:`Leg._uac_response` does with each response event, once the state
#: table accepts it.
_RESPONSE_HANDLERS: dict[LegEvent, Callable[[Leg, Response], None]] = {
    LegEvent.PROVISIONAL: Leg._provisional,
    LegEvent.PEER_ANSWERED: Leg._answered_by_peer,
    LegEvent.RETRANSMITTED_2XX: Leg._retransmitted_2xx,
    LegEvent.FAILED: Leg._refused,
}
