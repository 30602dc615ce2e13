"""One call leg: a SIP dialog, as UAS (the caller's leg) or UAC (a leg we place), and
the media session anchored for it.  This module holds what both sides share; the
UAS's part is :mod:`telephony.calls.leg_uas`, the UAC's :mod:`telephony.calls.leg_uac`.

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
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from media import Direction, IMediaSession, MediaEngine, SDPError, SessionDescription, parse_sdp
from telephony.calls.causes import Cause
from telephony.calls.leg_state import LegEvent, LegState, Role, accepts, may_move
from telephony.calls.uac import (
    AUTH_HEADERS,
    send_authenticated,
)
from telephony.sip.dialog import Dialog
from telephony.sip.errors import SipError
from telephony.sip.headers import Headers
from telephony.sip.message import Request, Response
from telephony.sip.peer import Peer
from telephony.sip.session_timer import (
    SessionTimer,
    TooSmallError,
    negotiate_as_uas,
)
from telephony.sip.stack import ServerTransactionHandle, SipStack
from telephony.trunks.hops import SipCredentials

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


class Leg:
    """A SIP dialog plus its media session: made as an :class:`~.leg_uas.IncomingLeg`
    (the caller's) or an :class:`~.leg_uac.OutgoingLeg` (one we place).

    What only one side does (ring and answer; send the INVITE and cancel it) is a
    no-op here, as the state table has no entry for it in the other role: callers
    may ask any leg.

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
        self.local_tag = ""

    def __repr__(self) -> str:
        return f"<Leg {self.role} {self.uuid} {self.state.value}>"

    @property
    def invite(self) -> Request:
        """The INVITE: the caller's (UAS); ours as last sent (UAC), or before the first
        is sent, the one the first hop would get (built only if asked for)."""
        if self._invite is None:
            self._invite = self._first_invite()
        return self._invite

    @invite.setter
    def invite(self, request: Request) -> None:
        self._invite = request

    def _first_invite(self) -> Request:
        """The INVITE an outgoing leg would send first (before it has sent one)."""
        raise SipError("an outgoing leg without its first hop", 500)

    @property
    def call_id(self) -> str:
        """The SIP Call-ID, without building an outgoing leg's INVITE to read it."""
        return self.invite.call_id

    def _credentials(self) -> SipCredentials | None:
        """What answers a challenge to our in-dialog requests (an outgoing leg's hop's)."""
        return None

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

    # -- one side's events: nothing on the other side (see leg_uas, leg_uac) -------------

    def ring(self) -> None:
        """180 Ringing (UAS)."""

    def pre_answer(self) -> Deferred[None]:
        """183 with our SDP answer: early media (UAS)."""
        return succeed(None)

    def answer(self) -> Deferred[None]:
        """200 OK (UAS); an outgoing leg is answered by its peer."""
        return succeed(None)

    def reject(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | None = None,
        cause: Cause | None = None,
    ) -> None:
        """Refuse the call with a final response (UAS)."""

    def cancelled(self, cancel_txn: ServerTransactionHandle) -> None:
        """The caller sent CANCEL (UAS): 200 to it, whatever became of the INVITE."""
        cancel_txn.respond(200)

    def handle_ack(self, ack: Request) -> None:
        """The ACK of our 2xx (UAS)."""

    def start(self) -> None:
        """Send the INVITE (UAC)."""

    def cancel(self) -> None:
        """Stop ringing (UAC)."""

    def _hangup_unanswered(self, cause: Cause, source: str) -> None:
        """End the leg before any answer: a refusal (UAS) or a CANCEL (UAC)."""
        self._end(cause, source)

    def _stop(self) -> None:
        """Stop what one side runs (2xx retransmissions, an INVITE's hops) at the end."""

    # -- both -------------------------------------------------------------------------

    def hangup(self, cause: Cause = Cause.NORMAL, source: str = "Plivo") -> None:
        """End the leg whatever its state: BYE, reject, or CANCEL."""
        if not self._accepts(LegEvent.HANGUP):
            return
        if self.answered:
            self._send_bye(cause, source)
        else:
            self._hangup_unanswered(cause, source)

    def _send_bye(self, cause: Cause, source: str) -> None:
        if self.dialog is not None and self.state is not LegState.ENDED:
            self._request_in(self.dialog, "BYE").addErrback(self._crashed)
        self._end(cause, source)

    def _request_in(self, dialog: Dialog, method: str, **kwargs: Any) -> Deferred[Response]:
        """Send an in-dialog request, answering a challenge with the hop's credentials."""
        return send_authenticated(
            self.ctx.stack,
            self.peer,
            lambda auth: dialog.request(method, extra=auth or None, **kwargs),
            self._credentials(),
        )

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
        credentials = self._credentials()
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
        if self._timer_call is not None and self._timer_call.active():
            self._timer_call.cancel()
        self._timer_call = None
        self._stop()
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
