"""An outgoing leg's INVITE, from the first hop to an answer or a final failure.

:class:`OutgoingInvite` sends the INVITE to the hops of a plan in turn and keeps to
itself what a caller should not see:

* a **401/407** from a hop with credentials is answered (:mod:`telephony.sip.digest_client`)
  and the INVITE sent again to the same hop: same Call-ID and From tag, the next CSeq,
  a new branch (RFC 3261 §22.2).  Refused credentials end the leg with Plivo's
  ``sip_auth_failed``; an authenticated INVITE that gets no answer, ``sip_auth_timeout``;
* **failover**: a 408, any 5xx, or no response at all within the hop's
  ``response_timeout`` (the INVITE is then abandoned) moves on to the next hop, with
  the same Call-ID and tag and the next CSeq (RFC 3263 §4.3 for 503 and timeouts; we
  also fail over on the other 5xx and 408, as carriers' dispatchers do);
* everything else, provisional responses, 2xx and the other final failures (486 busy,
  404, 6xx…) goes to the leg, which answers, rings or ends as before.

When the plan runs out, the leg is told the last failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from telephony.calls.causes import Cause, cause_for_status
from telephony.sip.digest_client import AuthRefused, DigestClient, RefusalReason
from telephony.sip.headers import Headers
from telephony.sip.ids import new_branch
from telephony.sip.message import Request, Response
from telephony.sip.peer import Peer
from telephony.sip.session_timer import offer_as_uac
from telephony.sip.stack import SipStack
from telephony.trunks.hops import Hop, HopPlan, SipCredentials

__all__ = (
    "AUTH_HEADERS",
    "InviteTemplate",
    "OutgoingInvite",
    "UacFailure",
    "build_invite",
    "send_authenticated",
)

log = Logger()

#: The credential headers a request carries; an ACK for a 2xx repeats its INVITE's
#: (RFC 3261 §13.2.2.4).
AUTH_HEADERS = ("Authorization", "Proxy-Authorization")
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"


@attrs.frozen
class InviteTemplate:
    """What stays the same in every INVITE of one outgoing leg.

    :ivar extra: headers of the application's (X-PH-…, our internal marker).
    """

    call_id: str
    from_tag: str
    via_host: str
    contact: str
    session_expires: int
    min_se: int
    extra: tuple[tuple[str, str], ...] = ()


def build_invite(
    template: InviteTemplate,
    hop: Hop,
    cseq: int,
    auth: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Request:
    """The INVITE for *hop*: a new branch, the template's dialog identifiers, *cseq*."""
    peer = hop.peer
    headers = Headers()
    headers.add(
        "Via", f"SIP/2.0/{peer.transport.upper()} {template.via_host};branch={new_branch()};rport"
    )
    headers.add("Max-Forwards", "70")
    headers.add("From", str(hop.from_.with_param("tag", template.from_tag)))
    headers.add("To", str(hop.to))
    headers.add("Call-ID", template.call_id)
    headers.add("CSeq", f"{cseq} INVITE")
    transport = ";transport=tcp" if peer.transport == "tcp" else ""
    headers.add("Contact", f"<{template.contact}{transport}>")
    headers.add("Allow", ALLOW)
    for name, value in offer_as_uac(interval=template.session_expires, min_se=template.min_se):
        headers.add(name, value)
    for name, value in template.extra:
        headers.add(name, value)
    for name, value in auth:
        headers.add(name, value)
    if body:
        headers.add("Content-Type", "application/sdp")
    return Request("INVITE", hop.request_uri, headers, body)


@attrs.frozen
class UacFailure:
    """How an outgoing INVITE failed for good: the SIP status the leg reports, the
    cause (None: the one the status implies) and a reason for logs."""

    status: int
    cause: Cause | None = None
    reason: str = ""

    @property
    def effective_cause(self) -> Cause:
        return self.cause or cause_for_status(self.status)


def _digest_client(credentials: SipCredentials | None) -> DigestClient:
    """A client answering challenges with *credentials* (refusing all without)."""
    if credentials is None:
        return DigestClient(None, None)
    return DigestClient(credentials.username, credentials.password, realm=credentials.realm)


def _failover(status: int) -> bool:
    """Whether a final response sends the INVITE on to the next hop."""
    return status == 408 or 500 <= status < 600


class OutgoingInvite:
    """Drives one leg's INVITE through its plan (see the module docstring).

    :param on_sent: told each INVITE sent and where (the leg's current request).
    :param on_response: responses the leg should see (provisional, 2xx, final failures
        that are not retried).
    :param on_failed: the INVITE failed for good (auth refused, every hop failed).
    """

    __slots__ = (
        "_authenticated",
        "_client",
        "_finding",
        "_heard",
        "_in_flight",
        "_last",
        "_stopped",
        "_timer",
        "body",
        "clock",
        "cseq",
        "hop",
        "hops_tried",
        "on_failed",
        "on_response",
        "on_sent",
        "plan",
        "request",
        "stack",
        "template",
        "uuid",
    )

    def __init__(
        self,
        *,
        stack: SipStack,
        clock: IReactorTime,
        plan: HopPlan,
        template: InviteTemplate,
        body: bytes,
        on_sent: Callable[[Request, Peer, Hop], None],
        on_response: Callable[[Response], None],
        on_failed: Callable[[UacFailure], None],
        uuid: str = "",
    ) -> None:
        self.stack = stack
        self.clock = clock
        #: Both dropped once the INVITE is settled (see :meth:`_settled`).
        self.plan: HopPlan | None = plan
        self.template: InviteTemplate | None = template
        self.body = body
        self.on_sent = on_sent
        self.on_response = on_response
        self.on_failed = on_failed
        self.uuid = uuid
        self.cseq = 0
        self.hop: Hop | None = None
        self.request: Request | None = None
        self.hops_tried = 0
        self._client: DigestClient | None = None
        self._authenticated = False
        self._heard = False
        self._timer: IDelayedCall | None = None
        self._in_flight: Deferred[Response] | None = None
        self._finding: Deferred[Hop | None] | None = None
        self._last: UacFailure | None = None
        self._stopped = False

    # -- the leg's side -------------------------------------------------------------

    def start(self) -> None:
        """Find the first hop and send it the INVITE."""
        self._next_hop()

    def stop(self) -> None:
        """The leg is over: no more hops, no more resends.  Responses to the INVITE in
        flight still reach the leg (its CANCEL waits for a provisional)."""
        self._stopped = True
        self._cancel_timer()
        if self._finding is not None:
            finding, self._finding = self._finding, None
            finding.cancel()
        self._settled()

    def _settled(self) -> None:
        """Nothing more will be sent: drop what only sending needed.  The INVITE's
        client transaction keeps this object for 32 s after a 2xx (RFC 6026's
        Accepted state, to pass on 2xx retransmissions); it need not keep the plan,
        the template and the credentials for that long."""
        self.plan = None
        self.template = None
        self._client = None

    # -- hops ---------------------------------------------------------------------------

    def _next_hop(self) -> None:
        if self._stopped or self.plan is None:
            return
        finding = self.plan.next_hop()
        self._finding = finding
        finding.addCallbacks(self._got_hop, self._plan_failed)

    def _got_hop(self, hop: Hop | None) -> None:
        self._finding = None
        if self._stopped:
            return
        if hop is None:
            self._give_up()
            return
        self.hop = hop
        self.hops_tried += 1
        self._client = None  # made when the hop challenges
        self._authenticated = False
        self._send(())

    def _plan_failed(self, failure: Failure) -> None:
        self._finding = None
        if failure.check(CancelledError) or self._stopped:
            return
        log.failure("Outgoing leg {uuid}: finding a hop failed", failure, uuid=self.uuid)
        self._last = UacFailure(503, Cause.FAILED, "no hop could be found")
        self._give_up()

    def _give_up(self) -> None:
        failure, unreached = self._last, self.plan.describe_failure() if self.plan else ""
        if failure is None:
            failure = UacFailure(503, Cause.FAILED, unreached or "no destination")
        elif unreached:
            failure = attrs.evolve(failure, reason=f"{failure.reason}; {unreached}")
        self._settled()
        self.on_failed(failure)

    # -- one INVITE ---------------------------------------------------------------------

    def _send(self, auth: Iterable[tuple[str, str]]) -> None:
        hop, template = self.hop, self.template
        if hop is None or template is None:
            return
        self.cseq += 1
        request = build_invite(template, hop, self.cseq, auth, self.body)
        self.request = request
        self._heard = False
        self.on_sent(request, hop.peer, hop)
        # Responses to an earlier INVITE of this leg (an earlier CSeq) are ignored.
        d = self.stack.send_request(request, hop.peer, on_response=self._provisional)
        self._in_flight = d
        d.addCallbacks(self._final, self._error)
        self._cancel_timer()
        if hop.response_timeout is not None and not self._stopped:
            self._timer = self.clock.callLater(hop.response_timeout, self._silent, self.cseq)

    def _provisional(self, response: Response) -> None:
        if response.cseq.number != self.cseq:
            return
        self._heard = True
        self._cancel_timer()
        self.on_response(response)

    def _final(self, response: Response) -> None:
        if response.cseq.number != self.cseq:
            return
        self._in_flight = None
        self._heard = True
        self._cancel_timer()
        status = response.status
        if self._stopped or status < 300:
            self._settled()
            self.on_response(response)
        elif status in (401, 407):
            self._challenged(response)
        elif _failover(status):
            cause = Cause.SIP_AUTH_TIMEOUT if self._authenticated and status == 408 else None
            self._failed_here(UacFailure(status, cause, f"{status} {response.reason}"))
        else:
            self._settled()
            self.on_response(response)

    def _error(self, failure: Failure) -> None:
        if failure.check(CancelledError):  # an INVITE abandoned for the next hop
            return
        log.failure("Outgoing leg {uuid}: INVITE failed", failure, uuid=self.uuid)
        self._failed_here(UacFailure(503, Cause.FAILED, "could not send the INVITE"))

    def _silent(self, cseq: int) -> None:
        """The hop said nothing within its response timeout: abandon it, try the next."""
        self._timer = None
        if cseq != self.cseq or self._heard or self._stopped:
            return
        hop = self.hop
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            in_flight.cancel()
        cause = Cause.SIP_AUTH_TIMEOUT if self._authenticated else None
        seconds = hop.response_timeout if hop is not None else 0
        self._failed_here(UacFailure(408, cause, f"no response in {seconds:g} s"))

    def _failed_here(self, failure: UacFailure) -> None:
        hop = self.hop
        log.info(
            "Outgoing leg {uuid}: {label} ({host}:{port}) failed: {reason}; trying the next",
            uuid=self.uuid,
            label=hop.label if hop else "",
            host=hop.peer.host if hop else "",
            port=hop.peer.port if hop else 0,
            reason=failure.reason,
        )
        self._last = failure
        self._next_hop()

    def _challenged(self, response: Response) -> None:
        request, hop = self.request, self.hop
        if request is None or hop is None:
            return
        if self._client is None:
            self._client = _digest_client(hop.credentials)
        client = self._client
        answer = client.answer(response, method="INVITE", uri=str(request.uri), body=request.body)
        if isinstance(answer, AuthRefused):
            log.warn(
                "Outgoing leg {uuid}: {label} ({host}:{port}) answered {status}: {why}",
                uuid=self.uuid,
                label=hop.label or str(request.uri),
                host=hop.peer.host,
                port=hop.peer.port,
                status=response.status,
                why=str(answer),
            )
            self._settled()
            self.on_failed(UacFailure(response.status, Cause.SIP_AUTH_FAILED, str(answer)))
            return
        self._authenticated = True
        self._send(answer)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


def send_authenticated(
    stack: SipStack,
    peer: Peer,
    build: Callable[[Headers], Request],
    credentials: SipCredentials | None,
) -> Deferred[Response]:
    """Send an in-dialog request (BYE, re-INVITE) built by *build*, answering one
    401/407 with *credentials*: carriers may challenge these too.  Fires with the
    final response (the challenge itself when it cannot be answered)."""
    first = build(Headers())

    def answered(response: Response) -> Response | Deferred[Response]:
        if response.status not in (401, 407) or credentials is None:
            return response
        client = _digest_client(credentials)
        answer = client.answer(response, method=first.method, uri=str(first.uri), body=first.body)
        if isinstance(answer, AuthRefused):
            if answer.reason is not RefusalReason.NO_CREDENTIALS:
                log.warn("{method} refused: {why}", method=first.method, why=str(answer))
            return response
        return stack.send_request(build(answer), peer)

    return stack.send_request(first, peer).addCallback(answered)
