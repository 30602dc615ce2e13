"""A leg we place: the UAC side of an INVITE dialog usage.

It sends the INVITE with our SDP offer to its plan's hops in turn (gateways with
failover, answering digest challenges: :mod:`telephony.calls.uac`), follows the
responses (ringing, early media, the answer it ACKs, or the failure that ends it),
and cancels (§9.1: only once a provisional response came, so a CANCEL asked for
earlier is held until then).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from media import MediaEngine, SDPError, parse_sdp
from telephony.calls.causes import Cause, cause_for_status
from telephony.calls.leg import Leg, SipContext
from telephony.calls.leg_state import LegEvent, LegState, Role
from telephony.calls.uac import (
    AUTH_HEADERS,
    InviteTemplate,
    OutgoingInvite,
    UacFailure,
    build_invite,
)
from telephony.sip.dialog import Dialog
from telephony.sip.headers import Headers
from telephony.sip.ids import new_tag
from telephony.sip.message import Request, Response
from telephony.sip.peer import Peer
from telephony.sip.session_timer import result_as_uac
from telephony.sip.uri import NameAddr, SipURI
from telephony.trunks.hops import FixedPlan, Hop, HopPlan, SipCredentials

__all__ = ("OutgoingLeg",)

log = Logger()


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


class OutgoingLeg(Leg):
    """A leg we place (a Dial target, an API call); call :meth:`start` to send it.

    Without a *plan* the INVITE goes to *peer* alone (answering a challenge with
    *credentials*); with one, it goes to the plan's hops in turn (gateways, with
    failover), and *peer*, *request_uri*, *from_* and *to* only name the call until
    the first hop is known.
    """

    def __init__(
        self,
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
    ) -> None:
        super().__init__(
            uuid=uuid, role=Role.UAC, ctx=ctx, media=media, clock=clock, peer=peer, invite=None
        )
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
        self.local_tag = template.from_tag
        #: How the INVITE is built and where it goes.
        self._out = _Outgoing(template, first, plan or FixedPlan(first), credentials)
        self._cancel_pending = False
        self._provisional_seen = False

    def _first_invite(self) -> Request:
        out = self._out
        if out.template is None or out.first is None:
            return super()._first_invite()
        return build_invite(out.template, out.first, 1)

    @property
    def call_id(self) -> str:
        if self._invite is None and self._out.template is not None:
            return self._out.template.call_id
        return self.invite.call_id

    def _credentials(self) -> SipCredentials | None:
        return self._out.credentials

    def start(self) -> None:
        """Send the INVITE with our SDP offer (UAC), to the plan's hops in turn."""
        out = self._out
        if out.template is None or out.plan is None:
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
        if self._out.credentials is not None:
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

    def _hangup_unanswered(self, cause: Cause, source: str) -> None:
        self.cancel()
        self._end(cause, source)

    def _stop(self) -> None:
        out = self._out
        if out.uac is not None:
            out.uac.stop()
        out.uac = out.plan = out.template = out.first = None


#: What :meth:`OutgoingLeg._uac_response` does with each response event, once the
#: state table accepts it.
_RESPONSE_HANDLERS: dict[LegEvent, Callable[[OutgoingLeg, Response], None]] = {
    LegEvent.PROVISIONAL: OutgoingLeg._provisional,
    LegEvent.PEER_ANSWERED: OutgoingLeg._answered_by_peer,
    LegEvent.RETRANSMITTED_2XX: OutgoingLeg._retransmitted_2xx,
    LegEvent.FAILED: OutgoingLeg._refused,
}
